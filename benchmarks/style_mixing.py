"""The mixing checks of a trained multi-style model, on its held-out test photos.

  python benchmarks/style_mixing.py --workdir=runs/multistyle \
      [--num_examples=64] [--out=benchmarks/results/multistyle_mixing.json]

Three checks, each a mean over the test split's first photos at the run's
`config.image_size` (the same PSNR/SSIM as `evaluate`):

- `identity_ssim_to_photo`: `style={'identity': 1}` against the photo (>= 0.95).
- `dial_ssim_to_photo`: SSIM to the photo along `{'identity': 1 - a, <dial>: a}`
  for a = 0, 0.1, ..., 1 (it should never increase; `dial_monotone` says).
- `mix`: the even mix of two styles (`--mix`, default oil and watercolor)
  against each pure style, and the two pure styles against each other (the
  mix should be closer to each than they are to each other).

Prints one JSON line.
"""

import json
import os
import sys

import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shopstyle_jax import evaluation  # noqa: E402
from shopstyle_jax import images as image_lib  # noqa: E402
from shopstyle_jax import inference  # noqa: E402
from shopstyle_jax.data import pipeline  # noqa: E402

_WORKDIR = flags.DEFINE_string('workdir', None, 'A multi-style training workdir.')
_NUM = flags.DEFINE_integer('num_examples', 64, 'Test photos to use.', lower_bound=1)
_DIAL = flags.DEFINE_string('dial', 'oil', 'The style dialled up from identity.')
_MIX = flags.DEFINE_list('mix', ['oil', 'watercolor'], 'The two styles mixed evenly.')
_OUT = flags.DEFINE_string('out', None, 'Also write the JSON here.')


def test_photos(config, limit: int) -> np.ndarray:
  """The test split's first `limit` photos at the run's size, uint8 [N, H, W, 3]."""
  source = pipeline.pairs(config, 'test')
  size = config.image_size
  return np.stack(
    [image_lib.resize(source[i]['photo'], size, size) for i in range(min(limit, len(source)))]
  )


def mean_ssim(a: np.ndarray, b: np.ndarray) -> float:
  to_model = image_lib.uint8_to_model
  return float(np.mean(evaluation.psnr_ssim(to_model(a), to_model(b))[1]))


def checks(stylizer, photos: np.ndarray, dial: str, mix: tuple[str, str]) -> dict:
  run = lambda style: stylizer(photos, style=style)
  identity = run({'identity': 1.0})
  amounts = [round(0.1 * i, 1) for i in range(11)]
  dial_ssim = [mean_ssim(run({'identity': 1.0 - a, dial: a}), photos) for a in amounts]
  first, second = (run(name) for name in mix)
  even = run({mix[0]: 0.5, mix[1]: 0.5})
  return {
    'identity_ssim_to_photo': mean_ssim(identity, photos),
    'dial': dial,
    'dial_amounts': amounts,
    'dial_ssim_to_photo': dial_ssim,
    'dial_monotone': all(b <= a for a, b in zip(dial_ssim, dial_ssim[1:])),
    'mix': list(mix),
    'mix_ssim_to_first': mean_ssim(even, first),
    'mix_ssim_to_second': mean_ssim(even, second),
    'first_ssim_to_second': mean_ssim(first, second),
  }


def main(argv):
  del argv
  stylizer = inference.load_stylizer(_WORKDIR.value)
  config = stylizer.config
  photos = test_photos(config, _NUM.value)
  result = checks(stylizer, photos, _DIAL.value, tuple(_MIX.value))
  result.update(
    workdir=_WORKDIR.value, step=stylizer.step, num_examples=len(photos), size=config.image_size
  )
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      f.write(json.dumps(result, indent=1) + '\n')
  print(json.dumps(result))


if __name__ == '__main__':
  flags.mark_flag_as_required('workdir')
  app.run(main)
