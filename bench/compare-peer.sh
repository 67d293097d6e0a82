#!/usr/bin/env bash
# bench/compare-peer.sh MODEL_DIR [ROUNDS]
# Ours (jobs/lt bench-runtime) against the Python peer (bench/peer.py: transformers + PEFT on
# torch) on the same workloads: scoring as the score stage runs it (expert + amateur, B 32 x 128),
# sampled generation (batch 32 x 128 new tokens, KV cache) and LoRA training (batch 16 x 128),
# plus peak RSS. ROUNDS (default 3) rounds, each running both back to back, the order swapped
# every round so that neither side always gets the quieter slot; prints every round's figures and
# then the medians side by side with ours / peer.
#
# Environment: PEER_PYTHON (default /work/venv-peer/bin/python: a venv with torch, transformers
# and peft, see bench/peer.py), THREADS (intra-op threads for both; default: the cores, which is
# what ours uses outside Spark), TRAIN_STEPS (default 4; the rate is over steps 2..N),
# REPEATS (timed repeats per figure inside one round, default 1; each round also warms up),
# EXPERT_BATCH (32), GEN_BATCH (32), NEW_TOKENS (128), TRAIN_BATCH (16): the workload sizes;
# TRAIN_ANSWER (0): the loss on the last N tokens of each training sequence alone (0: all);
# PRECISION (fp32 or bf16: ours, --precision) and PEER_DTYPE (float32, bfloat16 or autocast-bf16:
# the peer's --inference-dtype) for scoring and generation. The peer trains in float32; ours
# with PRECISION=bf16 loads the products' weights in bf16, so its training products run in bf16
# too (float32 accumulation, activations and LoRA).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:?usage: bench/compare-peer.sh MODEL_DIR [ROUNDS]}
rounds=${2:-3}
peer_python=${PEER_PYTHON:-/work/venv-peer/bin/python}
threads=${THREADS:-$(nproc)}
steps=${TRAIN_STEPS:-4}
repeats=${REPEATS:-1}
expert_batch=${EXPERT_BATCH:-32}
gen_batch=${GEN_BATCH:-32}
new_tokens=${NEW_TOKENS:-128}
train_batch=${TRAIN_BATCH:-16}
train_answer=${TRAIN_ANSWER:-0}
precision=${PRECISION:-fp32}
peer_dtype=${PEER_DTYPE:-float32}
[ -d "$model" ] || { echo "compare-peer: $model is not a directory" >&2; exit 2; }
[ -x "$peer_python" ] || { echo "compare-peer: $peer_python not found (set PEER_PYTHON)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ours() {
  LT_JAVA_OPTS="-Dai.djl.pytorch.num_threads=$threads" "$root/jobs/lt" bench-runtime \
    --model "$model" --precision "$precision" --json --lanes 1 --score-batches "" --generate-batches "$gen_batch" \
    --new-tokens "$new_tokens" --expert-batches "$expert_batch" --train-batches "$train_batch" \
    --train-steps "$steps" --train-answer "$train_answer" --repeats "$repeats" 2>/dev/null \
    | grep '^{' | sed 's/^{/{"side":"ours",/' >> "$out/rows"
}
peer() {
  "$peer_python" "$root/bench/peer.py" "$model" --threads "$threads" --repeats "$repeats" \
    --expert-batch "$expert_batch" --generate-batch "$gen_batch" --new-tokens "$new_tokens" \
    --train-batch "$train_batch" --train-steps "$steps" --train-answer "$train_answer" --inference-dtype "$peer_dtype" 2>/dev/null | grep '^{' | sed 's/^{/{"side":"peer",/' >> "$out/rows"
}

echo "model $model, $rounds rounds, $threads threads, train steps $steps, inference: ours $precision, peer $peer_dtype; $(uptime)"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then ours; peer; else peer; ours; fi
  echo "round $r done; $(uptime)"
done

python3 - "$out/rows" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
figs = {}
for r in rows:
    if "progress" in r:
        continue
    key = (r["workload"], r.get("batch", 0), r.get("seq_len", 0))
    val = r["mb"] if r["workload"] == "peak_rss" else r["tokens_per_s"]
    figs.setdefault(key, {}).setdefault(r["side"], []).append(val)
print(f"{'workload':<22} {'batch':>5} {'len':>4} {'ours':>10} {'peer':>10} {'ours/peer':>9}  rounds (ours | peer)")
order = ["score-expert+amateur", "generate", "train", "peak_rss"]
for key in sorted(figs, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[1])):
    o, p = figs[key].get("ours", []), figs[key].get("peer", [])
    mo = statistics.median(o) if o else float("nan")
    mp = statistics.median(p) if p else float("nan")
    ratio = mo / mp if o and p and mp else float("nan")
    if key[0] == "peak_rss":
        ratio = mp / mo if o and p and mo else float("nan")  # memory: peer / ours, > 1 is ours smaller
    unit = " MB" if key[0] == "peak_rss" else ""
    fmt = lambda xs: " ".join(f"{x:.0f}" for x in xs)
    print(f"{key[0]:<22} {key[1]:>5} {key[2]:>4} {mo:>10.0f} {mp:>10.0f} {ratio:>9.2f}  {fmt(o)} | {fmt(p)}{unit}")
print("tokens/s; ours/peer > 1 means ours is faster; for peak_rss the ratio is peer/ours (> 1: ours uses less)")
EOF
