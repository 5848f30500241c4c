"""Config checks that run before anything is built or compiled.

Every error names the key, the value and what is allowed, so a typo costs
seconds, not a compile.
"""

from typing import Optional

import ml_collections

from shopstyle_jax import losses
from shopstyle_jax import styles
from shopstyle_jax.models import layers
from shopstyle_jax.models import generators

PRECISIONS = ('float32', 'bfloat16')


def generator_factor(config: ml_collections.ConfigDict) -> int:
  """Input sizes must be multiples of this."""
  return 2 ** config.model.depth if config.model.generator == 'unet' else 4


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
    for key in ('batch_size', 'eval.batch_size'):
      value = config.batch_size if key == 'batch_size' else config.eval.batch_size
      if value % num_devices:
        raise ValueError(f'config.{key}={value} is not divisible by the number of devices '
                         f'({num_devices}); use a multiple of {num_devices}.')
