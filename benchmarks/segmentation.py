"""Mask IoU of the backdrop segmentation (`masks.segment_product`) on the synthetic
catalogue's test split, against the product masks the renderer emits, for the
photos as they are and for their white-on-white variants (a white product on a
white backdrop):

  python benchmarks/segmentation.py [--size=128] [--num=90]

Prints the mean and minimum IoU per category and overall, and the seconds per
segmentation. Example `i` of the test split is category `i % 9`, so `--num`
a multiple of 9 covers the categories evenly.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shopstyle_jax import masks  # noqa: E402
from shopstyle_jax.data import synthetic  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--size', type=int, default=128, help='Photo side in pixels.')
  parser.add_argument('--num', type=int, default=90, help='First N test examples.')
  args = parser.parse_args()
  rows, seconds = {}, []
  for index in range(args.num):
    category = synthetic.scene.example_category(index)
    seed = synthetic.example_seed('test', index)
    for kind, white in (('photo', False), ('white', True)):
      photo, truth = synthetic.render_scene(seed, args.size, category, white)
      start = time.perf_counter()
      mask = masks.segment_product(photo)
      seconds.append(time.perf_counter() - start)
      rows.setdefault((category, kind), []).append(masks.iou(mask, truth))
  print(f'Mask IoU on the test split, first {args.num} examples at {args.size}x{args.size}:')
  print(f'  {"category":<10}{"photo mean":>12}{"min":>7}{"white mean":>12}{"min":>7}')
  for category in synthetic.CATEGORIES:
    if (category, 'photo') not in rows:
      continue
    a, b = rows[(category, 'photo')], rows[(category, 'white')]
    print(
      f'  {category:<10}{np.mean(a):>12.3f}{np.min(a):>7.3f}{np.mean(b):>12.3f}{np.min(b):>7.3f}'
    )
  for kind in ('photo', 'white'):
    values = np.concatenate([v for (_, k), v in rows.items() if k == kind])
    print(
      f'  all {kind:<6} mean {values.mean():.3f}, median {np.median(values):.3f}, '
      f'min {values.min():.3f}, share >= 0.9: {np.mean(values >= 0.9):.0%}'
    )
  print(f'  {np.mean(seconds) * 1000:.0f} ms per segmentation')


if __name__ == '__main__':
  main()
