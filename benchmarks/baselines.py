"""The baselines a learnt style must beat, on a config's held-out test split.

  python benchmarks/baselines.py --config=configs/sketch.py \
      [--out=benchmarks/results/sketch_baselines.json]

Scores, with the same PSNR/SSIM as eval/* and `python -m shopstyle_jax.evaluate`
(the test split resized to `config.image_size`): the identity (the photo itself),
a blank white page and the global tone curve (`tone.fit_tone_curve`: the
best monotone map from photo luminance to the target, fitted on the train
split's true pairs, which an unpaired method never sees); and, as what an
unpaired method gets without learning anything, the histogram match
(`tone.match_histogram`: photos of the train split's even examples onto the
targets of its odd ones, no pairs; the target of `config.loss.tone_weight`).
Prints one JSON line.
"""

import json
import os
import sys

import jax
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shopstyle_jax import evaluation  # noqa: E402
from shopstyle_jax import images as image_lib  # noqa: E402
from shopstyle_jax import tone  # noqa: E402
from shopstyle_jax.data import pipeline  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', None, 'The run config.', lock_config=True)
_OUT = flags.DEFINE_string('out', None, 'Also write the JSON here.')


def train_pairs(config, limit: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """The train split's first `limit` true pairs at the config's size, in [-1, 1]."""
  source = pipeline.pairs(config, 'train')
  size = config.image_size
  load = lambda image: image_lib.uint8_to_model(image_lib.resize(image, size, size))
  photos, targets = [], []
  for i in range(min(limit, len(source))):
    example = source[i]
    photos.append(load(example['photo']))
    targets.append(load(example['target']))
  return np.stack(photos), np.stack(targets)


def baselines(config) -> dict:
  pipeline.prepare(config)
  photos, targets = train_pairs(config)
  curve = tone.fit_tone_curve(photos, targets)
  # Without pairs: the photos of one half onto the targets of the other (as the
  # unpaired catalogue splits them).
  matched = tone.match_histogram(photos[0::2], targets[1::2])
  sums, count = {}, 0.0
  for batch in pipeline.create_eval_batches(config, 0, 1):
    valid = np.asarray(batch['valid'], bool)
    photo, target = batch['photo'][valid], batch['target'][valid]
    per_image = evaluation.scores(photo, target, photo)
    per_image.pop('psnr'), per_image.pop('ssim')
    t_psnr, t_ssim = evaluation.psnr_ssim(tone.apply_curve(curve, photo), target)
    m_psnr, m_ssim = evaluation.psnr_ssim(tone.apply_curve(matched, photo), target)
    per_image.update(
      tone_curve_psnr=t_psnr,
      tone_curve_ssim=t_ssim,
      histogram_match_psnr=m_psnr,
      histogram_match_ssim=m_ssim,
    )
    for k, v in jax.device_get(per_image).items():
      sums[k] = sums.get(k, 0.0) + float(np.sum(v))
    count += float(valid.sum())
  return {
    **{k: v / count for k, v in sorted(sums.items())},
    'num_examples': int(count),
    'num_train_pairs': len(photos),
    'dataset': config.data.name,
    'style': config.data.style,
    'image_size': config.image_size,
  }


def main(argv):
  del argv
  config = _CONFIG.value.copy_and_resolve_references()
  config.data.unpaired = False  # The tone curve is fitted on the true pairs.
  result = baselines(config)
  line = json.dumps(result)
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      f.write(json.dumps(result, indent=1) + '\n')
  print(line)


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main)
