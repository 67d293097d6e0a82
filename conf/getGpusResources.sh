#!/usr/bin/env bash
# Spark GPU discovery script (spark.{executor,driver,worker}.resource.gpu.discoveryScript): prints
# the GPUs this machine (or container) offers as the JSON Spark expects, e.g.
#   {"name": "gpu", "addresses": ["0", "1"]}
# It lists every GPU nvidia-smi sees, so it suits a node or container whose GPUs all belong to the
# one executor (or worker) that runs it, as Spark's own example script assumes. Where the resource
# manager already isolates GPUs per container (YARN, Kubernetes), nvidia-smi sees only those.
set -euo pipefail
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "getGpusResources.sh: nvidia-smi not found on $(hostname): no NVIDIA driver here" >&2
  exit 1
fi
indices=$(nvidia-smi --query-gpu=index --format=csv,noheader)
addresses=""
for i in $indices; do
  addresses="${addresses:+$addresses, }\"$i\""
done
echo "{\"name\": \"gpu\", \"addresses\": [$addresses]}"
