"""Runs the JAX train-step benchmark and the PyTorch reference side by side.

  python benchmarks/compare.py --batch_sizes=1,4 --torch_python=/path/to/venv-torch/bin/python
  python benchmarks/compare.py --device=cuda --precision=bfloat16 --batch_sizes=16,64
  python benchmarks/compare.py --method=cut --batch_sizes=1 --torch_python=...

For each batch size it runs `python -m shopstyle_jax.benchmark` on
configs/pix2pix.py (perceptual loss off, as the reference) and then
benchmarks/torch_pix2pix.py on the same machine, each in its own process, and
prints a Markdown table with the step-time ratio JAX / PyTorch (< 1: JAX faster).
`--method=cyclegan|cut|fastcut` compares configs/<method>.py with
benchmarks/torch_unpaired.py's restatement of the official step, in our
networks' layout (`--jax_layout`: the same layers and parameter counts).
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def last_json(cmd, env=None) -> dict:
  print('$', ' '.join(cmd), file=sys.stderr, flush=True)
  proc = subprocess.run(
    cmd, cwd=ROOT, env={**os.environ, **(env or {})}, text=True, stdout=subprocess.PIPE
  )
  if proc.returncode:
    raise SystemExit(f'failed ({proc.returncode}): {" ".join(cmd)}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--method', default='pix2pix', choices=['pix2pix', 'cyclegan', 'cut', 'fastcut'])
  p.add_argument('--batch_sizes', default='1,4')
  p.add_argument('--image_size', type=int, default=256)
  p.add_argument('--precision', default='float32', choices=['float32', 'bfloat16'])
  p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--warmup', type=int, default=3)
  p.add_argument(
    '--perceptual_weight',
    type=float,
    default=0.0,
    help='JAX only: > 0 adds the VGG term (the reference has none).',
  )
  p.add_argument('--torch_python', default=sys.executable)
  p.add_argument('--torch_args', default='', help='Extra args, e.g. "--channels_last".')
  p.add_argument('--skip_torch', action='store_true')
  p.add_argument('--output', default=None, help='Write all records as JSON here.')
  args = p.parse_args()

  records = []
  for b in [int(x) for x in args.batch_sizes.split(',')]:
    jax_record = last_json(
      [
        sys.executable,
        '-m',
        'shopstyle_jax.benchmark',
        f'--config=configs/{args.method}.py',
        f'--config.batch_size={b}',
        f'--config.image_size={args.image_size}',
        f'--config.precision={args.precision}',
        f'--config.loss.perceptual_weight={args.perceptual_weight}',
        # The official code's 4x4 transposed convolutions, which the PyTorch side
        # builds (the product configs upsample with resize_conv).
        '--config.model.upsample=conv_transpose',
        f'--steps={args.steps}',
        f'--warmup={args.warmup}',
        '--stylize_batch_size=4',
      ],
      env={'PYTHONPATH': ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')},
    )
    torch_record = None
    if not args.skip_torch:
      torch_record = last_json(
        [
          args.torch_python,
          *(
            ['benchmarks/torch_pix2pix.py']
            if args.method == 'pix2pix'
            else ['benchmarks/torch_unpaired.py', f'--method={args.method}', '--jax_layout']
          ),
          f'--batch_size={b}',
          f'--image_size={args.image_size}',
          f'--precision={args.precision}',
          f'--device={args.device}',
          f'--steps={args.steps}',
          f'--warmup={args.warmup}',
          '--stylize_batch_size=4',
          *args.torch_args.split(),
        ]
      )
    records.append({'batch_size': b, 'jax': jax_record, 'torch': torch_record})

  print(
    f'\n{args.method}, {records[0]["jax"]["device"]}, {args.precision}, {args.image_size}x{args.image_size}'
    f', perceptual weight {args.perceptual_weight}\n'
  )
  print(
    '| batch | JAX step (s) | PyTorch step (s) | ratio JAX/PyTorch | JAX img/s | '
    'PyTorch img/s | JAX stylize img/s (b4) | PyTorch stylize img/s (b4) | JAX MFU |'
  )
  print('|---|---|---|---|---|---|---|---|---|')
  for r in records:
    j, t = r['jax'], r['torch'] or {}
    ratio = (j['train_step_seconds'] / t['train_step_seconds']) if t else float('nan')
    mfu = f'{100 * j["mfu"]:.1f}%' if j.get('mfu') else 'n/a'
    print(
      f'| {r["batch_size"]} | {j["train_step_seconds"]:.3f} | '
      f'{t.get("train_step_seconds", float("nan")):.3f} | {ratio:.2f} | '
      f'{j["train_images_per_second"]:.2f} | {t.get("train_images_per_second", float("nan")):.2f}'
      f' | {j["stylize_images_per_second"]:.2f} | '
      f'{t.get("stylize_images_per_second", float("nan")):.2f} | {mfu} |'
    )
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(records, f, indent=1)


if __name__ == '__main__':
  main()
