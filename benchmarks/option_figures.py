"""README's before/after figures: one catalogue product through the batch CLI with
each stylize option, each pair drawn side by side (photo | output).

  python benchmarks/option_figures.py --workdir=runs/ [--out=docs/options] \
      [--index=1] [--size=512]

Renders test-split product `index` of the synthetic catalogue at `size` px (a
studio photo, as a shop's), then runs `python -m shopstyle_jax.stylize` once per
option exactly as printed (the commands README lists), and writes
`<out>/<name>.jpg` (before | after, small JPEGs for the README) and
`<out>/commands.txt`. Transparent outputs are drawn over a checkerboard.
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shopstyle_jax import images as image_lib  # noqa: E402
from shopstyle_jax.data import synthetic  # noqa: E402

# (figure name, what it shows, the stylize flags).
OPTIONS = (
  ('style', 'the default: the whole frame stylized', []),
  ('keep', "background=keep: the photo's own backdrop", ['--background=keep']),
  ('white', 'background=white', ['--background=white']),
  ('transparent', 'background=transparent (RGBA)', ['--background=transparent']),
  (
    'preserve_color',
    "preserve_color: the photo's colours, the style's lightness",
    ['--preserve_color'],
  ),
  ('strength', 'strength=0.5: half style, half photo', ['--strength=0.5']),
  ('brightness_contrast', 'brightness=0.1, contrast=1.3', ['--brightness=0.1', '--contrast=1.3']),
)


def checkerboard(height: int, width: int, cell: int = 16) -> np.ndarray:
  yy, xx = np.mgrid[0:height, 0:width]
  light = ((yy // cell + xx // cell) % 2).astype(bool)
  return np.where(light[..., None], 235, 200).astype(np.float32) * np.ones(3, np.float32)


def flatten(image: np.ndarray) -> np.ndarray:
  """RGB uint8; RGBA composited over a checkerboard (so transparency shows)."""
  if image.shape[-1] == 3:
    return image
  alpha = image[..., 3:].astype(np.float32) / 255.0
  under = checkerboard(*image.shape[:2])
  return np.clip(image[..., :3] * alpha + under * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 6) -> np.ndarray:
  height = before.shape[0]
  spacer = np.full((height, gap, 3), 255, np.uint8)
  return np.concatenate([before, spacer, flatten(after)], axis=1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='A trained workdir.')
  parser.add_argument('--out', default=os.path.join(ROOT, 'docs', 'options'))
  parser.add_argument('--index', type=int, default=1, help='Test-split example.')
  parser.add_argument('--size', type=int, default=512, help='Photo side in pixels.')
  parser.add_argument('--figure_side', type=int, default=320, help='Each half of a figure.')
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  category = synthetic.scene.example_category(args.index)
  seed = synthetic.scene.example_seed('test', args.index)
  photo, _ = synthetic.render_scene(seed, args.size, category)
  commands = []
  with tempfile.TemporaryDirectory() as tmp:
    photo_path = os.path.join(tmp, 'photos', f'{category}.png')
    image_lib.write_image(photo, photo_path)
    small = lambda x: image_lib.resize(x, args.figure_side, args.figure_side)
    for name, what, flags in OPTIONS:
      out_dir = os.path.join(tmp, name)
      command = [
        'python', '-m', 'shopstyle_jax.stylize', f'--workdir={args.workdir}',
        f'--input={os.path.dirname(photo_path)}', f'--output={out_dir}', *flags,
      ]  # fmt: skip
      print('$', shlex.join(command), flush=True)
      subprocess.run([sys.executable, *command[1:]], cwd=ROOT, check=True)
      styled = image_lib.read_image(os.path.join(out_dir, f'{category}.png'), keep_alpha=True)
      figure = side_by_side(small(photo), small(styled))
      image_lib.write_image(figure, os.path.join(args.out, f'{name}.jpg'), quality=85)
      shown = ['--input=photos/', f'--output=out_{name}/', *flags]
      commands.append(
        f'{name}: {what}\n  python -m shopstyle_jax.stylize --workdir=runs/ {shlex.join(shown)}'
      )
  with open(os.path.join(args.out, 'commands.txt'), 'w') as f:
    f.write(
      f'Test-split product {args.index} ({category}) of the catalogue at {args.size} px, '
      f'stylized by {args.workdir}:\n\n' + '\n'.join(commands) + '\n'
    )
  print('\n'.join(commands))


if __name__ == '__main__':
  main()
