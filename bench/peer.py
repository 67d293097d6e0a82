#!/usr/bin/env python3
"""The Python peer of `jobs/lt bench-runtime`: the same workloads in transformers + PEFT on torch.

What a Python user runs instead of lora-transplant, measured the way bench-runtime measures ours
(random token ids, so any Llama checkpoint works, with or without a tokenizer):

  score-expert+amateur  teacher-forced log-probs of B x T tokens (BOS + T-1 random ids) through
                        the expert (base + a LoRA, r 8 / alpha 8 on q_proj, v_proj, random A and B)
                        and through the amateur (the same model with the adapter disabled), as the
                        score stage runs; tokens counted on both passes (2 B T per round)
  generate              sampled generation, temperature 1, top-p 0.9 (no top-k), B prompts of BOS,
                        N new tokens each (eos ignored), KV cache; on the base model
  train                 LoRA training (r 8, alpha 8, dropout 0.05, q_proj and v_proj), AdamW
                        (lr 1e-4, weight decay 0.01), gradient clipping at 1.0, batch B x T random
                        tokens, loss on every token after BOS; tokens/s over steps 2..N
  peak_rss              the process's peak resident memory

CPU, float32, eager attention, torch.set_num_threads(--threads) (bench/compare-peer.sh passes the
intra-op threads ours uses). --inference-dtype bfloat16 runs generation and scoring on a bf16 copy
of the model (what a Python user does to use AMX / AVX512-BF16: `model.to(torch.bfloat16)`;
everything in bf16), autocast-bf16 under `torch.autocast("cpu", torch.bfloat16)` (products in
bf16, the rest float32, like ours with --precision bf16); training is float32 either way.
One JSON object per line, in bench-runtime --json's format.

Set up (offline here; anywhere else drop the index options):
  python3 -m venv /work/venv-peer
  /work/venv-peer/bin/pip install --index-url file:///opt/pypi/simple --find-links /opt/wheels \\
      torch==2.13.0+cpu transformers peft
  /work/venv-peer/bin/python bench/peer.py MODEL_DIR --threads 2
Measured with torch 2.13.0+cpu, transformers 5.18.0, peft 0.21.0.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def emit(workload, batch, seq_len, tokens_per_s, **extra):
    row = {"workload": workload, "batch": batch, "seq_len": seq_len,
           "tokens_per_s": round(tokens_per_s, 1), "lanes": 1, **extra}
    print(json.dumps(row), flush=True)


def rss_mb(field="VmRSS:"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return -1.0


def random_ids(n, t, vocab, bos, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, t), generator=g)
    ids[:, 0] = bos
    return ids


def median_seconds(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def lora_config(dropout):
    from peft import LoraConfig
    return LoraConfig(r=8, lora_alpha=8, lora_dropout=dropout,
                      target_modules=["q_proj", "v_proj"], bias="none", task_type="CAUSAL_LM")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a Llama-family checkpoint directory (config.json + safetensors)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (median) after a warm-up")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--expert-batch", type=int, default=32, help="0 skips scoring")
    ap.add_argument("--generate-batch", type=int, default=32, help="0 skips generation")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--train-batch", type=int, default=16, help="0 skips training")
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--train-answer", type=int, default=0,
                    help="loss on the last N tokens of each sequence alone (labels -100 before "
                         "them), as ours --train-answer; 0: every token")
    ap.add_argument("--report-every", type=int, default=100)
    ap.add_argument("--inference-dtype", choices=["float32", "bfloat16", "autocast-bf16"],
                    default="float32", help="generation and scoring (training is float32)")
    a = ap.parse_args()
    if not 0 <= a.train_answer < a.seq_len:
        ap.error(f"--train-answer must be 0 (every token) or 1..{a.seq_len - 1}, "
                 f"got {a.train_answer}")

    torch.set_num_threads(a.threads)
    from transformers import AutoModelForCausalLM
    from peft import get_peft_model

    # Without training, a bf16 run loads the checkpoint in bf16 (a 7B model in float32 does not
    # fit in 24 GB); otherwise float32, cast below.
    load_bf16 = a.inference_dtype == "bfloat16" and a.train_batch == 0
    model = AutoModelForCausalLM.from_pretrained(
        a.model, dtype=torch.bfloat16 if load_bf16 else torch.float32,
        attn_implementation="eager")
    cfg = model.config
    vocab, bos = cfg.vocab_size, (cfg.bos_token_id if cfg.bos_token_id is not None else 1)
    log(f"peer: torch {torch.__version__}, {a.threads} threads, {a.model}, "
        f"inference {a.inference_dtype}")
    if a.inference_dtype == "bfloat16":
        model.to(torch.bfloat16)
    import contextlib
    def inference():
        if a.inference_dtype == "autocast-bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    if a.generate_batch > 0:
        model.eval()
        prompts = torch.full((a.generate_batch, 1), bos, dtype=torch.long)
        mask = torch.ones_like(prompts)

        def generate():
            with torch.inference_mode(), inference():
                return model.generate(input_ids=prompts, attention_mask=mask, do_sample=True,
                                      temperature=1.0, top_p=0.9, top_k=0,
                                      max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                                      use_cache=True, pad_token_id=0)
        secs = median_seconds(generate, a.repeats)
        emit("generate", a.generate_batch, a.new_tokens, a.generate_batch * a.new_tokens / secs,
             precision=a.inference_dtype)

    # The LoRA goes in after generation, so that generation ran on the plain base.
    peft_model = get_peft_model(model, lora_config(0.05))

    if a.expert_batch > 0:
        g = torch.Generator().manual_seed(3)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                with torch.no_grad():
                    p.copy_(torch.rand(p.shape, generator=g) * 0.1 - 0.05)
        peft_model.eval()
        ids = random_ids(a.expert_batch, a.seq_len, vocab, bos, 1)

        def logprobs():
            logits = peft_model(input_ids=ids).logits[:, :-1]
            return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)

        def score():
            with torch.inference_mode(), inference():
                expert = logprobs()
                with peft_model.disable_adapter():
                    amateur = logprobs()
            return expert, amateur
        secs = median_seconds(score, a.repeats)
        emit("score-expert+amateur", a.expert_batch, a.seq_len,
             2 * a.expert_batch * a.seq_len / secs, precision=a.inference_dtype)

    if a.train_batch > 0:
        peft_model.float()  # training runs in float32 whatever the inference dtype
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                with torch.no_grad():
                    p.zero_()
        peft_model.train()
        params = [p for p in peft_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        ids = random_ids(a.train_batch * a.train_steps, a.seq_len, vocab, bos, 2)
        t_first = None
        t0 = time.perf_counter()
        mark_t, mark_tok = t0, 0
        for step in range(a.train_steps):
            batch = ids[step * a.train_batch:(step + 1) * a.train_batch]
            labels = batch
            if a.train_answer > 0:
                labels = batch.clone()
                labels[:, :a.seq_len - a.train_answer] = -100
            loss = peft_model(input_ids=batch, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done = step + 1
            now = time.perf_counter()
            tokens = done * a.train_batch * a.seq_len
            if done == 1:
                t_first = now
            if a.report_every > 0 and (done % a.report_every == 0 or done == a.train_steps):
                rate = (tokens - mark_tok) / (now - mark_t)
                print(json.dumps({"progress": f"train step {done:5d}/{a.train_steps}  "
                                  f"{rate:8.0f} tokens/s  RSS {rss_mb():6.0f} MB"}), flush=True)
                mark_t, mark_tok = now, tokens
        end = time.perf_counter()
        if a.train_steps > 1:
            rate = (a.train_steps - 1) * a.train_batch * a.seq_len / (end - t_first)
        else:
            rate = a.train_batch * a.seq_len / (end - t0)
        emit("train", a.train_batch, a.seq_len, rate)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"workload": "peak_rss", "mb": round(peak, 1), "threads": a.threads}),
          flush=True)


if __name__ == "__main__":
    main()
