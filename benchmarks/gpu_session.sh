#!/usr/bin/env bash
# One prepared GPU benchmark session (JAX and the PyTorch reference on the same
# GPU). Expects a Python with jax[cuda], flax, optax, ml_collections and torch.
# Results go to $OUT (default ./bench_out).
set -uo pipefail
OUT=${OUT:-bench_out}; mkdir -p "$OUT"
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
