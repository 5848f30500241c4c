"""Config checks that run before anything is built or compiled.

Every error names the key, the value and what is allowed, so a typo costs
seconds, not a compile.
"""

import json
import os
from typing import Optional

import ml_collections

from shopstyle_jax import losses
from shopstyle_jax import parallel
from shopstyle_jax import styles
from shopstyle_jax.models import layers
from shopstyle_jax.models import generators

PRECISIONS = layers.PRECISIONS
# Keys that fix the parameters' shapes: a workdir's checkpoints only fit a
# config that agrees on all of them.
MODEL_SHAPE_PREFIX = 'model.'
# Keys that pick what a run trains on: a resumed run that changes them switches data.
DATA_SOURCE_KEYS = ('data.name', 'data.folder', 'data.style')


def generator_factor(config: ml_collections.ConfigDict) -> int:
  """Input sizes must be multiples of this: the generator's own `factor`."""
  return generators.create_generator(config.model).factor


def _choice(key: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f'config.{key}={value!r} is not allowed; choose one of {tuple(allowed)}.')


def _integer(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(key: str, value) -> None:
  if not _integer(value) or value <= 0:
    raise ValueError(f'config.{key}={value!r} must be a positive integer.')


def _in_range(key: str, value, low: float, high: float, high_open: bool, meaning: str) -> None:
  """Refuses a value outside [low, high) (high_open) or [low, high], NaN included."""
  ok = _number(value) and low <= value and (value < high if high_open else value <= high)
  if not ok:
    interval = f'[{low:g}, {high:g}{")" if high_open else "]"}'
    raise ValueError(f'config.{key}={value!r} must be a number in {interval} ({meaning}).')


def validate(config: ml_collections.ConfigDict, num_devices: Optional[int] = None) -> None:
  """Raises ValueError naming the first bad key. `num_devices` enables the batch checks."""
  m, lc = config.model, config.loss
  _choice('model.generator', m.generator, generators.GENERATORS)
  _choice('model.norm', m.norm, layers.NORMS)
  _choice('model.upsample', m.upsample, layers.UPSAMPLES)
  _choice('loss.gan', lc.gan, losses.GAN_LOSSES)
  _choice('precision', config.precision, PRECISIONS)
  _choice('data.style', config.data.style, tuple(styles.RENDERERS))
  for key in ('num_train_steps', 'batch_size', 'image_size', 'log_every_steps',
              'eval_every_steps', 'checkpoint_every_steps', 'keep_checkpoints',
              'max_nonfinite_steps', 'model.width', 'model.depth', 'model.disc_width',
              'model.disc_layers', 'eval.batch_size', 'eval.num_examples'):
    value = config
    for part in key.split('.'):
      value = value[part]
    _positive(key, value)
  if not 0.0 <= config.ema_decay < 1.0:
    raise ValueError(f'config.ema_decay={config.ema_decay} must be in [0, 1) (0 = off).')
  if not 0.0 <= m.dropout < 1.0:
    raise ValueError(f'config.model.dropout={m.dropout} must be in [0, 1).')
  if not _integer(m.noise_channels) or m.noise_channels < 0:
    raise ValueError(f'config.model.noise_channels={m.noise_channels!r} must be an integer '
                     '>= 0 (0 = no noise input).')
  opt = config.optimizer
  if not (_number(opt.learning_rate) and opt.learning_rate > 0):
    raise ValueError(f'config.optimizer.learning_rate={opt.learning_rate!r} must be a number > 0 '
                     "(Adam's step size; pix2pix's is 2e-4).")
  _in_range('optimizer.b1', opt.b1, 0, 1, True, "Adam's first-moment decay; pix2pix's is 0.5")
  _in_range('optimizer.b2', opt.b2, 0, 1, True, "Adam's second-moment decay, e.g. 0.999")
  _in_range('optimizer.decay_start_fraction', opt.decay_start_fraction, 0, 1, False,
            'the share of steps at a constant learning rate before the linear decay; 1 = none')
  weights = {k: lc[k] for k in ('adversarial_weight', 'mse_weight', 'l1_weight',
                                'perceptual_weight')}
  for k, w in weights.items():
    if w < 0:
      raise ValueError(f'config.loss.{k}={w} must be >= 0.')
  if not any(weights.values()):
    raise ValueError('All loss weights are 0 (config.loss.adversarial_weight, mse_weight, '
                     'l1_weight, perceptual_weight): the generator would learn nothing.')
  if lc.perceptual_weight:
    from shopstyle_jax.models import vgg  # pylint: disable=g-import-not-at-top
    vgg.check_layers(lc.vgg_layers)
    if len(lc.vgg_layers) != len(lc.vgg_layer_weights):
      raise ValueError(f'config.loss.vgg_layers has {len(lc.vgg_layers)} entries but '
                       f'config.loss.vgg_layer_weights has {len(lc.vgg_layer_weights)}.')
  # The eval image grid shows the first rows of the first eval batch; past
  # eval.num_examples those are blank padding, and 0 rows fail to encode as PNG.
  rows = min(config.eval.batch_size, config.eval.num_examples)
  grid_rows = config.eval.grid_rows
  if not _integer(grid_rows) or not 1 <= grid_rows <= rows:
    raise ValueError(f'config.eval.grid_rows={grid_rows!r} must be an integer from 1 to {rows} '
                     f'(the grid shows rows of the first eval batch: at most eval.batch_size='
                     f'{config.eval.batch_size} and eval.num_examples='
                     f'{config.eval.num_examples}).')
  factor = generator_factor(config)
  if config.image_size % factor:
    raise ValueError(
        f'config.image_size={config.image_size} must be a multiple of {factor} (the '
        f'{m.generator} generator downsamples by {factor}); e.g. '
        f'{max(factor, config.image_size // factor * factor)}.')
  if num_devices is not None:
    parallel.check_batch_size(config.batch_size, num_devices, 'config.batch_size')
    parallel.check_batch_size(config.eval.batch_size, num_devices, 'config.eval.batch_size')


def flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  return out


def model_shape_differences(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
  """'key: saved -> new' for each model-shape key that differs."""
  old = {k: v for k, v in flatten(saved).items() if k.startswith(MODEL_SHAPE_PREFIX)}
  new = {k: v for k, v in flatten(json.loads(config.to_json_best_effort())).items()
         if k.startswith(MODEL_SHAPE_PREFIX)}
  return [f'config.{k}: {old.get(k)!r} -> {new.get(k)!r}'
          for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def data_source_differences(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
  """'key: saved -> new' for each of DATA_SOURCE_KEYS that differs (folders
  compared as real paths)."""
  old = flatten(saved)
  new = flatten(json.loads(config.to_json_best_effort()))

  def same(key, a, b):
    if key == 'data.folder' and a and b:
      a, b = (os.path.realpath(os.path.expanduser(x)) for x in (a, b))
    return a == b

  return [f'config.{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in DATA_SOURCE_KEYS
          if not same(k, old.get(k), new.get(k))]


def write_config(config: ml_collections.ConfigDict, workdir: str, extra: dict) -> None:
  """Writes `<workdir>/config.json` (the resolved config plus run facts in
  `extra`), refusing a workdir that was trained with other model shapes."""
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    diffs = model_shape_differences(saved, config)
    if diffs:
      raise ValueError(
          f'{workdir} holds a run with different model shapes ({"; ".join(diffs)}). Use a new '
          '--workdir, or the same model settings to resume (config.init_from=<that workdir> '
          'fine-tunes from it).')
  data = json.loads(config.to_json_best_effort())
  data.update(extra)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
