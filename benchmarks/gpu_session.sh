#!/usr/bin/env bash
# One prepared GPU benchmark session (JAX and the PyTorch reference on the same
# GPU). Expects a Python with jax[cuda], flax, optax and torch; ml_collections may
# be installed from wheels in .whl/ (machines without it). Results go to $OUT
# (default ./bench_out).
set -uo pipefail
OUT=${OUT:-bench_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, flax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
B=${BATCHES:-1,16,64}
python3 benchmarks/compare.py --device=cuda --precision=bfloat16 --batch_sizes=$B \
  --steps=20 --warmup=5 --torch_args="--channels_last" --output="$OUT/bf16.json" 2>"$OUT/bf16.log" | tee "$OUT/bf16.md"
# The perceptual loss's cost at the largest batch (JAX only; the reference has none).
python3 benchmarks/compare.py --device=cuda --precision=bfloat16 --batch_sizes=${B##*,} \
  --steps=20 --warmup=5 --perceptual_weight=10 --skip_torch --output="$OUT/bf16_vgg.json" \
  2>"$OUT/bf16_vgg.log" | tee "$OUT/bf16_vgg.md"
