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
from shopstyle_jax import style_mix
from shopstyle_jax import styles as styles_lib
from shopstyle_jax import workdir as workdir_lib
from shopstyle_jax.methods import cut
from shopstyle_jax.models import generators
from shopstyle_jax.models import layers

PRECISIONS = layers.PRECISIONS
# Keys that may differ between the processes of one run: each host's own paths.
PER_HOST_KEYS = ('data.data_dir', 'data.cache_dir', 'data.manual_dir')


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


def _style_folders(data: ml_collections.ConfigDict) -> dict:
  """`config.data.style_folders` as a dict ({} when unset: None or empty)."""
  return dict(data.get('style_folders') or {})


def _check_style_folder(key: str, value, data: ml_collections.ConfigDict) -> None:
  """One folder of style images: an existing directory, not the photo folder."""
  if not isinstance(value, str) or not value:
    raise ValueError(f'config.{key}={value!r} must be the path of a folder of style images.')
  path = os.path.realpath(os.path.expanduser(value))
  if not os.path.isdir(path):
    what = 'is not a directory' if os.path.exists(path) else 'does not exist'
    raise ValueError(f'config.{key}={value!r} {what}; it must be a folder of style images.')
  if data.folder and path == os.path.realpath(os.path.expanduser(data.folder)):
    raise ValueError(
      f'config.{key}={value!r} is config.data.folder: '
      'the style images must be other images than the photos.'
    )


def _check_unpaired_data(data: ml_collections.ConfigDict) -> None:
  """The unpaired-data keys: one source of style images, existing folders."""
  folders = _style_folders(data)
  if data.style_folder and folders:
    raise ValueError(
      'config.data.style_folder and config.data.style_folders are both set: use '
      'style_folder for one style, or style_folders ({name: folder}) for several; '
      'unset the other.'
    )
  if data.style_folder:
    _check_style_folder('data.style_folder', data.style_folder, data)
  for name, value in folders.items():
    _check_style_folder(f'data.style_folders.{name}', value, data)


# Loss terms that compare the output with a paired target, and those of each method.
PAIRED_TERMS = ('mse_weight', 'l1_weight', 'perceptual_weight')
# The methods whose style discriminator can judge a smoothed page (`common.surface`).
_SURFACE_METHODS = ('cut', 'fastcut', 'cyclegan')
ANY_METHOD_TERMS = ('adversarial_weight', 'content_weight', 'style_weight', 'tv_weight')
METHOD_TERMS = {
  'paired': PAIRED_TERMS,
  'cyclegan': ('cycle_weight', 'identity_weight', 'tone_weight'),
  'cut': ('nce_weight', 'tone_weight'),
  'fastcut': ('nce_weight', 'tone_weight'),
  'neural_style': ('tone_weight',),
}


def _vgg_layers(key: str, names, weights_key: Optional[str] = None, weights=None) -> None:
  from shopstyle_jax.models import vgg  # pylint: disable=g-import-not-at-top

  try:
    vgg.check_layers(names)
  except ValueError as e:
    raise ValueError(f'config.loss.{key}: {e}') from e
  if weights_key and len(names) != len(weights):
    raise ValueError(
      f'config.loss.{key} has {len(names)} entries but '
      f'config.loss.{weights_key} has {len(weights)}.'
    )


def _check_method_and_losses(config: ml_collections.ConfigDict) -> None:
  """The method, its data and its loss terms: weights >= 0, at least one term on,
  no term that needs a paired target under a method without pairs."""
  lc, data = config.loss, config.data
  _choice('method', config.method, tuple(METHOD_TERMS))
  terms = ANY_METHOD_TERMS + METHOD_TERMS[config.method]
  all_terms = set(ANY_METHOD_TERMS).union(*METHOD_TERMS.values())
  for k in sorted(all_terms):
    if not _number(lc[k]) or not lc[k] >= 0:
      raise ValueError(f'config.loss.{k}={lc[k]!r} must be a number >= 0 (0 = off).')
  unpaired_data = bool(data.style_folder or _style_folders(data) or data.unpaired)
  if config.method == 'paired':
    if lc.tone_weight:
      raise ValueError(
        f'config.loss.tone_weight={lc.tone_weight} is the reconstruction term of the '
        'unpaired methods; paired training has its targets: use config.loss.mse_weight or '
        'l1_weight and set tone_weight to 0.'
      )
    if unpaired_data:
      key = (
        'style_folder'
        if data.style_folder
        else ('style_folders' if _style_folders(data) else 'unpaired')
      )
      raise ValueError(
        'config.method=paired learns from (photo, target) pairs, but config.data.'
        f'{key} gives style images without pairs; pick an unpaired method: --config.method=cut (or cyclegan, fastcut, '
        'neural_style).'
      )
  else:
    on = [k for k in PAIRED_TERMS if lc[k]]
    if on:
      raise ValueError(
        f'config.method={config.method} learns without pairs, so config.loss.{on[0]}='
        f'{lc[on[0]]} has no target to compare with; set it to 0 (e.g. '
        f'--config.loss.{on[0]}=0) or use config.method=paired.'
      )
    if not unpaired_data:
      raise ValueError(
        f'config.method={config.method} needs style images: set config.data.style_folder '
        '(a folder of images in the style) or config.data.unpaired=True (the catalogue '
        "split in two halves: photos from one, the other's renderings as style images)."
      )
  if not any(lc[k] for k in terms) and not _per_style_terms(config):
    raise ValueError(
      f'All loss weights are 0 for config.method={config.method} (config.loss.'
      f'{", ".join(terms)}): the generator would learn nothing.'
    )
  if lc.perceptual_weight:
    _vgg_layers('vgg_layers', lc.vgg_layers, 'vgg_layer_weights', lc.vgg_layer_weights)
  if lc.content_weight:
    _vgg_layers('content_layers', lc.content_layers)
  if lc.style_weight:
    _vgg_layers('style_layers', lc.style_layers, 'style_layer_weights', lc.style_layer_weights)
  if config.method == 'cyclegan' and (not _integer(lc.pool_size) or lc.pool_size < 0):
    raise ValueError(
      f'config.loss.pool_size={lc.pool_size!r} must be an integer >= 0 '
      '(0 = no history of generated images).'
    )
  if not _number(lc.tone_blur) or not lc.tone_blur >= 0:
    raise ValueError(
      f'config.loss.tone_blur={lc.tone_blur!r} must be a number >= 0 (a blur sigma in '
      'pixels; 0 = the tone term compares pixels as they are).'
    )
  if not _number(lc.disc_blur) or not lc.disc_blur >= 0:
    raise ValueError(
      f'config.loss.disc_blur={lc.disc_blur!r} must be a number >= 0 (a blur sigma in '
      'pixels; 0 = the discriminator sees images as they are).'
    )
  if lc.disc_blur and config.method not in _SURFACE_METHODS:
    raise ValueError(
      f'config.loss.disc_blur={lc.disc_blur} is built for config.method=cut, fastcut '
      f'and cyclegan, not {config.method}; set it to 0.'
    )
  sharp = lc.sharp_disc_weight
  if not _number(sharp) or not sharp >= 0:
    raise ValueError(
      f'config.loss.sharp_disc_weight={sharp!r} must be a number >= 0 (the weight of the '
      'discriminator that sees the unsmoothed page; 0 = off).'
    )
  if sharp and config.method not in ('cut', 'fastcut'):
    raise ValueError(
      f'config.loss.sharp_disc_weight={sharp} is built for config.method=cut and fastcut, '
      f'not {config.method}; set it to 0.'
    )
  if sharp and not (lc.disc_blur or lc.disc_guided_radius):
    raise ValueError(
      f'config.loss.sharp_disc_weight={sharp} adds a discriminator of the unsmoothed page '
      'beside the one of the smoothed page, but config.loss.disc_blur and '
      'disc_guided_radius are 0, so both would see the same page: set disc_blur '
      '(e.g. 1.0) or sharp_disc_weight=0.'
    )
  radius = lc.disc_guided_radius
  if not _integer(radius) or radius < 0:
    raise ValueError(
      f'config.loss.disc_guided_radius={radius!r} must be an integer >= 0 (the guided '
      "filter's radius in pixels; 0 = off)."
    )
  if radius and config.method not in _SURFACE_METHODS:
    raise ValueError(
      f'config.loss.disc_guided_radius={radius} is built for config.method=cut, '
      f'fastcut and cyclegan, not {config.method}; set it to 0.'
    )
  eps = lc.disc_guided_eps
  if radius and (not _number(eps) or not eps > 0):
    raise ValueError(
      f"config.loss.disc_guided_eps={eps!r} must be a number > 0 (the guided filter's "
      'regulariser: edges whose variance is well above it are kept; e.g. 0.5).'
    )
  if config.method in ('cut', 'fastcut'):
    _positive('loss.nce_patches', lc.nce_patches)
    _positive('model.nce_mlp_channels', config.model.nce_mlp_channels)
    layers_ = cut.nce_layers(config) or ()
    generator = generators.create_generator(config.model)
    allowed = generator.tap_names
    unknown = [t for t in layers_ if t not in allowed]
    if unknown or len(set(layers_)) != len(layers_):
      raise ValueError(
        f'config.model.nce_layers={layers_!r}: {"unknown " + str(unknown) if unknown else "repeated"}; '
        f'the {config.model.generator} generator has taps {allowed} (empty = its default '
        f'{generator.nce_taps}).'
      )
    if not _number(lc.nce_temperature) or not lc.nce_temperature > 0:
      raise ValueError(
        f'config.loss.nce_temperature={lc.nce_temperature!r} must be > 0 (CUT: 0.07).'
      )


RECONSTRUCTION_TERMS = ('mse_weight', 'l1_weight')
# What `config.loss.per_style.<style>` may set (paired multi-style training).
PER_STYLE_TERMS = RECONSTRUCTION_TERMS + ('adversarial_weight',)


def _per_style_terms(config: ml_collections.ConfigDict) -> bool:
  """Whether `config.loss.per_style` turns a reconstruction term on for any of
  the run's styles."""
  per_style = config.loss.get('per_style') or {}
  styles = style_mix.config_styles(config)
  return any(per_style[s].get(k) for s in per_style if s in styles for k in RECONSTRUCTION_TERMS)


def _check_style_folders(config: ml_collections.ConfigDict) -> None:
  """`config.data.style_folders`: several styles' images, one folder each, named as
  `config.data.styles` names them (free-form names), for the unpaired methods."""
  folders = _style_folders(config.data)
  styles = tuple(config.data.get('styles') or ())
  if config.method == 'paired':
    return  # Refused with the other unpaired data keys (_check_method_and_losses).
  if len(folders) < 2:
    raise ValueError(
      f'config.data.style_folders={folders} names {len(folders)} style: for one style set '
      'config.data.style_folder=<folder> instead.'
    )
  if set(styles) != set(folders):
    raise ValueError(
      f'config.data.style_folders names the styles {tuple(folders)}, config.data.styles='
      f'{styles or None}: set config.data.styles to the same names (its order is the order '
      f'of the style rows), e.g. --config.data.styles="{tuple(folders)}" '
      f'--config.data.style={next(iter(folders))}.'
    )
  bad = [n for n in styles if not isinstance(n, str) or not n.strip() or n != n.strip()]
  if bad:
    raise ValueError(f'config.data.styles={styles}: {bad[0]!r} is not a usable style name.')


def _check_styles(config: ml_collections.ConfigDict) -> None:
  """`config.data.styles` and `config.loss.per_style`: known styles, agreeing with
  `config.data.style`; several styles only where they are supported. With
  `config.data.style_folders` the names are free-form (the folders define them)."""
  folders = _style_folders(config.data)
  if folders:
    _check_style_folders(config)
  styles = style_mix.config_styles(config)
  allowed = tuple(styles_lib.RENDERERS) + (style_mix.IDENTITY,)
  for name in () if folders else styles:
    if name not in allowed:
      raise ValueError(
        f'config.data.styles names {name!r}, which is not a style; choose from {allowed} '
        '(or name your own styles with config.data.style_folders and an unpaired method).'
      )
  # per_style may also set the losses of known styles this run does not train
  # (unused here): a config's settings for styles a fine-tune may add, and
  # multi-style configs trained on fewer of their styles.
  per_style = config.loss.get('per_style') or {}
  for name in per_style:
    if name not in styles and name not in allowed:
      raise ValueError(
        f"config.loss.per_style.{name} is neither one of the run's styles {styles} nor a "
        f'known style {allowed}; remove it or add the style to config.data.styles.'
      )
    for key, value in per_style[name].items():
      if key not in PER_STYLE_TERMS:
        raise ValueError(
          f'config.loss.per_style.{name}.{key}: only {PER_STYLE_TERMS} may be set per style.'
        )
      if not _number(value) or not value >= 0:
        raise ValueError(f'config.loss.per_style.{name}.{key}={value!r} must be a number >= 0.')
  if per_style and config.method != 'paired':
    raise ValueError(
      f'config.loss.per_style sets per-style loss weights of paired training, which '
      f'config.method={config.method} does not use; leave it empty.'
    )
  if len(styles) == 1:
    return
  if config.method != 'paired' and not folders:
    raise ValueError(
      f'config.data.styles={styles}: with config.method={config.method} several styles '
      'learn from one folder of style images each: set config.data.style_folders='
      "\"{'<style>': '<folder>', ...}\" (config.method=paired renders them instead)."
    )
  if config.batch_size < len(styles):
    raise ValueError(
      f'config.batch_size={config.batch_size} is smaller than the {len(styles)} styles of '
      'config.data.styles: every global batch holds every style; raise the batch size.'
    )


def validate(config: ml_collections.ConfigDict, num_devices: Optional[int] = None) -> None:
  """Raises ValueError naming the first bad key. `num_devices` enables the batch checks."""
  m, lc = config.model, config.loss
  _choice('model.generator', m.generator, generators.GENERATORS)
  _choice('model.norm', m.norm, layers.NORMS)
  _choice('model.upsample', m.upsample, layers.UPSAMPLES)
  _choice('model.output_upsample', m.output_upsample, ('',) + layers.UPSAMPLES)
  if m.output_upsample and m.generator != 'unet':
    raise ValueError(
      f'config.model.output_upsample={m.output_upsample!r} applies to the U-Net only '
      f'(the {m.generator} generator ends in a 7x7 conv); leave it empty.'
    )
  _choice('loss.gan', lc.gan, losses.GAN_LOSSES)
  _choice('precision', config.precision, PRECISIONS)
  if not _style_folders(config.data):  # Style folders name their own styles.
    _choice('data.style', config.data.style, tuple(styles_lib.RENDERERS))
  for key in (
    'num_train_steps',
    'batch_size',
    'image_size',
    'log_every_steps',
    'eval_every_steps',
    'checkpoint_every_steps',
    'keep_checkpoints',
    'max_nonfinite_steps',
    'model.width',
    'model.depth',
    'model.disc_width',
    'model.disc_layers',
    'eval.batch_size',
    'eval.num_examples',
  ):
    value = config
    for part in key.split('.'):
      value = value[part]
    _positive(key, value)
  if not 0.0 <= config.ema_decay < 1.0:
    raise ValueError(f'config.ema_decay={config.ema_decay} must be in [0, 1) (0 = off).')
  if not 0.0 <= m.dropout < 1.0:
    raise ValueError(f'config.model.dropout={m.dropout} must be in [0, 1).')
  if not _integer(m.noise_channels) or m.noise_channels < 0:
    raise ValueError(
      f'config.model.noise_channels={m.noise_channels!r} must be an integer '
      '>= 0 (0 = no noise input).'
    )
  opt = config.optimizer
  if not (_number(opt.learning_rate) and opt.learning_rate > 0):
    raise ValueError(
      f'config.optimizer.learning_rate={opt.learning_rate!r} must be a number > 0 '
      "(Adam's step size; pix2pix's is 2e-4)."
    )
  _in_range('optimizer.b1', opt.b1, 0, 1, True, "Adam's first-moment decay; pix2pix's is 0.5")
  _in_range('optimizer.b2', opt.b2, 0, 1, True, "Adam's second-moment decay, e.g. 0.999")
  _in_range(
    'optimizer.decay_start_fraction',
    opt.decay_start_fraction,
    0,
    1,
    False,
    'the share of steps at a constant learning rate before the linear decay; 1 = none',
  )
  _check_method_and_losses(config)
  _check_styles(config)
  # The eval image grid shows the first rows of the first eval batch; past
  # eval.num_examples those are blank padding, and 0 rows fail to encode as PNG.
  rows = min(config.eval.batch_size, config.eval.num_examples)
  grid_rows = config.eval.grid_rows
  if not _integer(grid_rows) or not 1 <= grid_rows <= rows:
    raise ValueError(
      f'config.eval.grid_rows={grid_rows!r} must be an integer from 1 to {rows} '
      f'(the grid shows rows of the first eval batch: at most eval.batch_size='
      f'{config.eval.batch_size} and eval.num_examples='
      f'{config.eval.num_examples}).'
    )
  _check_unpaired_data(config.data)
  factor = generator_factor(config)
  if config.image_size % factor:
    raise ValueError(
      f'config.image_size={config.image_size} must be a multiple of {factor} (the '
      f'{m.generator} generator downsamples by {factor}); e.g. '
      f'{max(factor, config.image_size // factor * factor)}.'
    )
  if num_devices is not None:
    parallel.check_batch_size(config.batch_size, num_devices, 'config.batch_size')
    parallel.check_batch_size(config.eval.batch_size, num_devices, 'config.eval.batch_size')


def check_same_on_all_processes(config: ml_collections.ConfigDict) -> None:
  """ValueError, on every process, when the processes of a multi-process run were
  given different configs (`PER_HOST_KEYS` aside), naming the keys that differ:
  other model shapes would abort in a collective minutes later, another seed
  would train diverged replicas silently."""
  flat = {
    k: v
    for k, v in workdir_lib.flatten(json.loads(config.to_json_best_effort())).items()
    if k not in PER_HOST_KEYS
  }
  text = json.dumps(flat, sort_keys=True).encode()
  if parallel.same_on_all_processes(text):
    return
  configs = [json.loads(t) for t in parallel.gather_bytes(text)]
  keys = sorted(
    {
      k
      for c in configs
      for k in c
      if len({json.dumps(c2.get(k), sort_keys=True) for c2 in configs}) > 1
    }
  )
  shown = '; '.join(
    f'{k} (' + ', '.join(f'process {i}: {c.get(k)!r}' for i, c in enumerate(configs)) + ')'
    for k in keys[:10]
  )
  more = f'; and {len(keys) - 10} more' if len(keys) > 10 else ''
  raise ValueError(
    f'The processes were started with different configs: {shown}{more}. Every process '
    f'must run the same command (only {", ".join(PER_HOST_KEYS)} may differ between hosts).'
  )
