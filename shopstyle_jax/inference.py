"""Inference: `stylize_fn` (jitted, pure) and the stylizers built on it.

`load_stylizer(workdir)` turns a trained workdir into a callable on uint8
photos of any size; `exporting.load_exported` builds the same callable from an
exported file. Both share the host side here (`HostStylizer`: `prepare` pads
photos for the network, `finish` crops, resizes back, post-processes and
quantises), so they give the same pixels. The steps and their order are those
of `StylizeOptions`.

Only jax and numpy are imported at module level: exported stylizers use this
module without flax, orbax or ml_collections, which `load_stylizer` imports
when called.
"""

import dataclasses
import functools
import numbers
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from shopstyle_jax import images as image_lib
from shopstyle_jax import style_mix
from shopstyle_jax.options import TILE_STATS_PIXELS
from shopstyle_jax.options import StylizeOptions
from shopstyle_jax.options import resolve as resolve_options

__all__ = (
  'HostStylizer',
  'Prepared',
  'StylizeOptions',
  'Stylizer',
  'find_checkpoint',
  'finish',
  'load_stylizer',
  'norm_stats_fn',
  'prepare',
  'stylize_fn',
  'with_norm_stats_fn',
)


@functools.partial(jax.jit, static_argnames=('generator',))
def stylize_fn(
  generator: Any, variables: Any, images: jax.Array, style: Optional[jax.Array] = None
) -> jax.Array:
  """Photos -> styled images, deterministic (dropout off, noise input zero).

  Args:
    generator: the generator, a flax module (static: one compile per module and shape).
    variables: its flax variables ({'params': ..., 'batch_stats': ...}).
    images: float32 [N, H, W, 3] in [-1, 1]; H and W multiples of `generator.factor`.
    style: a multi-style generator's style weights, float32 [N, S] (one-hot picks a
      style, rows summing to 1 mix them: `style_mix.style_weights`). An array, so
      another style or mix runs the same compiled program. None for one style.
  Returns:
    float32 [N, H, W, 3] in [-1, 1].
  """
  cond = () if style is None else (style,)
  return generator.apply(variables, images, *cond, train=False).astype(jnp.float32)


# The variable collection of the generators' instance-norm statistics
# (`models.layers.NORM_STATS`): captured by `norm_stats_fn`, imposed by
# `with_norm_stats_fn`.
NORM_STATS = 'norm_stats'


@functools.partial(jax.jit, static_argnames=('generator',))
def norm_stats_fn(
  generator: Any, variables: Any, images: jax.Array, style: Optional[jax.Array] = None
) -> Any:
  """Every instance-norm layer's statistics on `images` (as `stylize_fn` computes
  them; `style` as it takes it): a tree of float32 [N, C] 'mean' and 'var', {} for
  generators without instance norm. What `with_norm_stats_fn` takes."""
  cond = () if style is None else (style,)
  _, state = generator.apply(variables, images, *cond, train=False, mutable=[NORM_STATS])
  return state.get(NORM_STATS, {})


@functools.partial(jax.jit, static_argnames=('generator',))
def with_norm_stats_fn(
  generator: Any,
  variables: Any,
  stats: Any,
  images: jax.Array,
  style: Optional[jax.Array] = None,
) -> jax.Array:
  """`stylize_fn` with every instance-norm layer normalising by `stats`
  (`norm_stats_fn`'s, for the same N photos) instead of `images`' own: a tile
  normalised as its whole frame is."""
  variables = {**variables, NORM_STATS: stats}
  cond = () if style is None else (style,)
  return generator.apply(variables, images, *cond, train=False).astype(jnp.float32)


# --- The host side: padding, cropping, post-processing ------------------------------


def padding(height: int, width: int, factor: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """Reflection padding that brings H and W to multiples of `factor`, split
  evenly between the two sides (the extra pixel, if any, after)."""

  def split(n):
    total = -n % factor
    return total // 2, total - total // 2

  return split(height), split(width)


def pad_to_multiple(images: np.ndarray, factor: int) -> tuple[np.ndarray, tuple]:
  """Pads a [N, H, W, C] batch by reflection; returns it and the padding used."""
  (top, bottom), (left, right) = pad = padding(images.shape[1], images.shape[2], factor)
  if top or bottom or left or right:
    # NumPy's 'reflect' repeats the reflection when the pad exceeds the image.
    images = np.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)), mode='reflect')
  return images, pad


def crop(images: np.ndarray, pad: tuple) -> np.ndarray:
  """Undoes `pad_to_multiple`'s padding on [N, H, W, C]."""
  (top, bottom), (left, right) = pad
  return images[:, top : images.shape[1] - bottom, left : images.shape[2] - right]


def adjust(image, brightness: float = 0.0, contrast: float = 1.0):
  """The reference method's post-processing on [-1, 1] images: contrast scales
  around mid-grey (0), brightness adds; works on NumPy and JAX arrays."""
  if brightness == 0.0 and contrast == 1.0:
    return image
  return image * contrast + brightness


def blend(photo, stylized, strength: float):
  """Step 8 of `StylizeOptions` on [-1, 1] images: `photo` at `strength` 0,
  `stylized` at 1, linear in between; NumPy and JAX arrays."""
  return photo + strength * (stylized - photo)


def fit_max_side(height: int, width: int, max_side: Optional[int]) -> tuple[int, int]:
  """(H, W) scaled down so that the longer side is at most `max_side`, aspect kept."""
  if max_side is None or max(height, width) <= max_side:
    return height, width
  scale = max_side / max(height, width)
  return max(1, round(height * scale)), max(1, round(width * scale))


@dataclasses.dataclass(frozen=True)
class Prepared:
  """Photos ready for a generator, and how to turn its output back into them.

  Attributes:
    batch: float32 [N, Hp, Wp, 3] in [-1, 1]; Hp, Wp multiples of the factor.
    pad: the reflection padding `crop` removes.
    size: (H, W) of the photos as given (restored after a `max_side` resize).
    single: whether one [H, W, C] image was given rather than a batch.
    photo: uint8 [N, H, W, 3], the photos as the network saw them before
      resizing (for `background='keep'`, `preserve_color` and `strength`), else None.
    mask: float32 [N, H, W] in [0, 1], the product (with a `background`), else None.
    alpha: uint8 [N, H, W], the photos' own alpha (RGBA photos with a
      `background`), else None.
  """

  batch: np.ndarray
  pad: tuple
  size: tuple[int, int]
  single: bool
  photo: Optional[np.ndarray] = None
  mask: Optional[np.ndarray] = None
  alpha: Optional[np.ndarray] = None


def split_alpha(images: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """Integer gray+alpha or RGBA photos [..., H, W, 2|4] -> (uint8 RGB composited
  over white, as `images.read_image` composites, uint8 alpha); others -> (uint8
  RGB, None)."""
  images = np.asarray(images)
  if images.ndim not in (3, 4) or images.shape[-1] not in (2, 4) or images.dtype.kind not in 'ui':
    return image_lib.to_rgb_uint8(images), None
  alpha = image_lib.to_rgb_uint8(np.repeat(images[..., -1:], 3, -1))[..., 0]
  if images.ndim == 3:
    composited = image_lib.over_white(images)
  else:
    composited = np.stack([image_lib.over_white(image) for image in images])
  return image_lib.to_rgb_uint8(composited), alpha


def product_masks(
  rgb: np.ndarray, alpha: Optional[np.ndarray], mask: Optional[np.ndarray]
) -> np.ndarray:
  """Step 2 of `StylizeOptions` for uint8 RGB [N, H, W, 3]: float32 [N, H, W] masks,
  from `mask` (uint8 0-255 or float [0, 1], [H, W] or [N, H, W]) when given,
  else from `alpha`, else segmented (`masks.segment_product`)."""
  from shopstyle_jax import masks  # pylint: disable=g-import-not-at-top

  shape = rgb.shape[:3]
  if mask is not None:
    mask = np.asarray(mask)
    mask = masks.from_alpha(mask) if mask.dtype.kind in 'ui' else mask.astype(np.float32)
    if mask.shape not in (shape, shape[1:]):
      raise ValueError(
        f'mask of shape {np.shape(mask)} does not fit the photo(s) {rgb.shape[:3]}: pass '
        "one [H, W] mask (or [N, H, W] for a batch) of the photo's size."
      )
    if not (np.all(np.isfinite(mask)) and mask.min() >= 0.0 and mask.max() <= 1.0):
      raise ValueError('A float mask must be in [0, 1] (1 = product); uint8 masks are 0-255.')
    return np.ascontiguousarray(np.broadcast_to(mask, shape), np.float32)
  if alpha is not None:
    return masks.from_alpha(alpha)
  return np.stack([masks.segment_product(image) for image in rgb])


def prepare(
  images: np.ndarray,
  factor: int,
  options: Optional[StylizeOptions] = None,
  mask: Optional[np.ndarray] = None,
) -> Prepared:
  """Any photo or batch (see `images.to_rgb_uint8`) -> a padded [-1, 1] batch for
  the network: steps 1-4 of `StylizeOptions`. `mask`: the product's mask (the
  shop's own), used with a `background` instead of alpha or segmentation."""
  options = resolve_options(options)
  if options.needs_mask:
    rgb, alpha = split_alpha(images)
  else:
    rgb, alpha = image_lib.to_rgb_uint8(images), None
  single = rgb.ndim == 3
  rgb = rgb[None] if single else rgb
  alpha = alpha[None] if single and alpha is not None else alpha
  masks = product_masks(rgb, alpha, mask) if options.needs_mask else None
  batch = image_lib.uint8_to_model(rgb)
  size = batch.shape[1:3]
  batch = image_lib.resize(batch, *fit_max_side(*size, options.max_side))
  padded, pad = pad_to_multiple(batch, factor)
  keeps_photo = options.preserve_color or options.blends or options.background == 'keep'
  photo = rgb if keeps_photo else None
  return Prepared(padded, pad, size, single, photo, masks, alpha)


def finish(
  outputs: np.ndarray, prepared: Prepared, options: Optional[StylizeOptions] = None
) -> np.ndarray:
  """The network's [-1, 1] output for `prepared` -> uint8 photos of the sizes given:
  steps 6-11 of `StylizeOptions` (crop, resize back, colour preservation,
  strength, brightness/contrast, background, quantise). RGB out, or RGBA for
  `background='transparent'` and for RGBA photos with `background='keep'`."""
  options = resolve_options(options)
  out = image_lib.resize(crop(np.asarray(outputs, np.float32), prepared.pad), *prepared.size)
  if options.preserve_color:
    from shopstyle_jax import color  # pylint: disable=g-import-not-at-top

    photo = prepared.photo.astype(np.float32) / 255.0
    out = color.transfer_luminance(photo, (out + 1.0) / 2.0) * 2.0 - 1.0
  if options.blends:
    out = blend(image_lib.uint8_to_model(prepared.photo), out, options.strength)
  out = adjust(out, options.brightness, options.contrast)
  alpha = None
  if options.needs_mask:
    m = prepared.mask[..., None]
    if options.background == 'keep':
      out = out * m + image_lib.uint8_to_model(prepared.photo) * (1.0 - m)
      alpha = prepared.alpha
    elif options.background == 'white':
      out = out * m + (1.0 - m)
    else:  # transparent: the photo's own alpha when it has one, exactly.
      alpha = prepared.alpha
      if alpha is None:
        alpha = np.round(prepared.mask * 255.0).astype(np.uint8)
  out = image_lib.model_to_uint8(out)
  if alpha is not None:
    out = np.concatenate([out, alpha[..., None]], -1)
  return out[0] if prepared.single else out


# --- Tiling: any resolution in bounded memory -------------------------------------


def tiles(prepared: 'Prepared', options: StylizeOptions) -> bool:
  """Whether `prepared`'s frame (after `max_side`) has more pixels than
  `options.tile_threshold`, so that step 5 runs in tiles."""
  if options.tile_threshold is None:
    return False
  height, width = fit_max_side(*prepared.size, options.max_side)
  return height * width > options.tile_threshold


def tile_layout(size: int, tile: int, factor: int) -> tuple[list[int], int, int]:
  """Tiles along one axis of `size` pixels (a multiple of `factor`):
  (their starts, their length, their edge).

  Each tile is `tile` pixels rounded up to `factor` (so tiles sample the
  frame's own grid, and every tile has one shape: one compile); neighbours
  overlap by 3 edges, an edge being tile/16 rounded up to `factor`: the outer
  edge of each is dropped (what its padding changed), the middle one blended
  (`tile_weights`). An axis no longer than a tile is one tile, no edge."""
  tile = -(-tile // factor) * factor
  if size <= tile:
    return [0], size, 0
  edge = -(-max(tile // 16, 1) // factor) * factor
  stride = tile - 3 * edge
  if stride < factor:
    raise ValueError(
      f'tile={tile} is too small for this generator (multiple {factor}): tiles '
      f'overlap by {3 * edge} pixels; use tile >= {3 * edge + factor} (1024 or more is usual).'
    )
  return list(range(0, size - tile, stride)) + [size - tile], tile, edge


def tile_weights(start: int, length: int, size: int, edge: int) -> np.ndarray:
  """float32 [length] blending weights of the tile at `start` along an axis of
  `size`: 0 over the outer `edge` of an inner side, a raised-cosine ramp over
  the next `edge` (neighbours' ramps sum to 1), 1 elsewhere and at the
  frame's own border."""
  weights = np.ones(length, np.float32)
  if edge == 0:
    return weights
  ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(edge) + 0.5) / edge)).astype(np.float32)
  if start > 0:
    weights[:edge] = 0.0
    weights[edge : 2 * edge] = ramp
  if start + length < size:
    weights[length - edge :] = 0.0
    weights[length - 2 * edge : length - edge] = ramp[::-1]
  return weights


def stats_frame(batch: np.ndarray, max_pixels: int, factor: int) -> np.ndarray:
  """The padded frame [N, H, W, 3] shrunk (area averaging) to at most
  `max_pixels` pixels, sides multiples of `factor`: where tiling takes the
  instance-norm statistics from."""
  _, height, width, _ = batch.shape
  scale = min(1.0, (max_pixels / (height * width)) ** 0.5)
  size = [max(factor, int(n * scale) // factor * factor) for n in (height, width)]
  return image_lib.resize(batch, *size)


class HostStylizer:
  """The host side shared by every stylizer (a checkpoint's, an exported one's):
  any photo in, uint8 out. Subclasses set `factor`, `styles` (the style names, in
  the order of the network's style weights), `default_style` and `label`, and
  implement `run` (and, for tiling, `norm_stats` and `run_with_norm_stats`)."""

  factor: int
  styles: tuple[str, ...] = ()
  default_style: Optional[str] = None
  # What outputs say about the model in their XMP (`images.Label`): its style,
  # step and weights' hash, with the IPTC digital source type trainedAlgorithmicMedia.
  label: image_lib.Label = image_lib.Label()

  def write(
    self,
    image: np.ndarray,
    path: str,
    *,
    quality: int = 95,
    png_compression: int = 1,
    info: Optional[image_lib.ImageInfo] = None,
    label: bool = True,
  ) -> None:
    """Writes this stylizer's output `image` to `path` (`images.write_image`),
    labelled as AI-generated by this model in its XMP unless `label=False`."""
    image_lib.write_image(
      image, path, quality, png_compression, info, self.label if label else None
    )

  def run(self, batch: np.ndarray, style: Optional[np.ndarray] = None) -> np.ndarray:
    """float32 [N, H, W, 3] in [-1, 1], H and W multiples of `factor` -> same;
    `style`: float32 [N, S] weights for a multi-style network, else None."""
    raise NotImplementedError

  def style_weights(self, style: Optional[style_mix.Style], n: int) -> Optional[np.ndarray]:
    """`style` (a name, a {name: weight} mix summing to 1, or None for
    `default_style`) as the [n, S] weights `run` takes; None for a single-style
    network (whose one style is the only name it accepts)."""
    if style is None and len(self.styles) <= 1:  # Also a file that names no style.
      return None
    weights = style_mix.style_weights(style, self.styles, self.default_style, n)
    return weights if len(self.styles) > 1 else None

  def norm_stats(self, batch: np.ndarray, style: Optional[np.ndarray] = None) -> Any:
    """The instance-norm statistics of `batch` (`norm_stats_fn`), for `run_with_norm_stats`."""
    raise NotImplementedError

  def run_with_norm_stats(
    self, batch: np.ndarray, stats: Any, style: Optional[np.ndarray] = None
  ) -> np.ndarray:
    """`run`, normalised by `stats` (`with_norm_stats_fn`)."""
    raise NotImplementedError

  def run_tiled(
    self, batch: np.ndarray, options: StylizeOptions, style: Optional[np.ndarray] = None
  ) -> np.ndarray:
    """`run` on a large frame in tiles (step 5 above `tile_threshold`): the
    instance-norm statistics of the frame shrunk to at most `TILE_STATS_PIXELS`
    (`stats_frame`; exact for frames up to 4 megapixels), then every tile
    (`tile_layout`) normalised with them, blended with `tile_weights` into
    float32 [N, H, W, 3]. The network's memory is that of a tile or of the
    shrunk frame, whichever is larger."""
    n, height, width, _ = batch.shape
    stats = self.norm_stats(stats_frame(batch, TILE_STATS_PIXELS, self.factor), style)
    ys, tile_h, edge_h = tile_layout(height, options.tile, self.factor)
    xs, tile_w, edge_w = tile_layout(width, options.tile, self.factor)
    out = np.zeros((n, height, width, 3), np.float32)
    total_h, total_w = np.zeros(height, np.float32), np.zeros(width, np.float32)
    for y in ys:
      wy = tile_weights(y, tile_h, height, edge_h)
      total_h[y : y + tile_h] += wy
      for x in xs:
        wx = tile_weights(x, tile_w, width, edge_w)
        if y == ys[0]:
          total_w[x : x + tile_w] += wx
        window = np.ascontiguousarray(batch[:, y : y + tile_h, x : x + tile_w])
        styled = self.run_with_norm_stats(window, stats, style)
        out[:, y : y + tile_h, x : x + tile_w] += styled * (wy[:, None] * wx[None, :])[..., None]
    # The weights are separable: their sum is total_h x total_w.
    out /= total_h[None, :, None, None]
    out /= total_w[None, None, :, None]
    return out

  def __call__(
    self,
    images: np.ndarray,
    options: Optional[StylizeOptions] = None,
    *,
    mask: Optional[np.ndarray] = None,
    style: Optional[style_mix.Style] = None,
    **overrides: Any,
  ) -> np.ndarray:
    """uint8 [H,W,3] or [N,H,W,3] (also gray [H,W]/[H,W,1], RGBA, uint16, float
    [0,1]) -> uint8 of the same leading shape with 3 channels (4 with
    `background='transparent'`, or 'keep' on an RGBA photo).

    Args:
      images: the photo or batch.
      options: a `StylizeOptions` (the steps and their order); default the defaults.
      mask: the product's mask for a `background` (uint8 0-255 or float [0, 1],
        [H, W] or [N, H, W]); default the photo's alpha, else segmentation.
      style: one of `styles` ('watercolor'), or a mix of them as {name: weight}
        with weights summing to 1 ({'oil': 0.5, 'watercolor': 0.5}), blended inside
        the generator; default `default_style`. Any style or mix runs the same
        compiled program.
      **overrides: any of its fields (`brightness`, `contrast`, `max_side`,
        `background`, `preserve_color`, `strength`) as keywords,
        replacing those of `options`: `stylizer(photo, background='white')`.
    """
    options = resolve_options(options, **overrides)
    weights = self.style_weights(style, 1)  # Checks `style` before any work.
    prepared = prepare(images, self.factor, options, mask)
    if weights is not None:
      weights = np.repeat(weights, len(prepared.batch), axis=0)
    if tiles(prepared, options):
      return finish(self.run_tiled(prepared.batch, options, weights), prepared, options)
    return finish(self.run(prepared.batch, weights), prepared, options)


# --- A checkpoint's stylizer ---------------------------------------------------------


class Stylizer(HostStylizer):
  """A trained generator as a callable on uint8 photos of any size.

  `stylizer(images, options=None, *, style=None, **overrides)`: see
  `HostStylizer.__call__`. `generator`, `variables` (on device), `step`, `config`
  (the run's), `styles` (its style names) and `label` (style, step, weights'
  hash: what `write` puts in the XMP) are attributes.
  """

  def __init__(
    self, generator: Any, variables: Any, step: Optional[int] = None, config: Any = None
  ):
    self.generator = generator
    host = jax.device_get(variables)
    self.variables = jax.device_put(variables)
    self.step = step
    self.config = config
    if config is not None:
      self.styles = style_mix.config_styles(config)
      self.default_style = config.data.style
    else:  # A bare generator: its styles have no names but their indices.
      self.styles = tuple(str(i) for i in range(getattr(generator, 'num_styles', 1)))
      self.default_style = self.styles[0]
    style = config.data.get('style') if config is not None and 'data' in config else None
    self.label = image_lib.Label(style, step, image_lib.weights_hash(jax.tree.leaves(host)))

  @property
  def factor(self) -> int:
    return self.generator.factor

  def run(self, batch: np.ndarray, style: Optional[np.ndarray] = None) -> np.ndarray:
    if style is not None:
      style = jnp.asarray(style, jnp.float32)
    return np.asarray(stylize_fn(self.generator, self.variables, jnp.asarray(batch), style))

  def norm_stats(self, batch: np.ndarray, style: Optional[np.ndarray] = None) -> Any:
    style = None if style is None else jnp.asarray(style, jnp.float32)
    return norm_stats_fn(self.generator, self.variables, jnp.asarray(batch), style)

  def run_with_norm_stats(
    self, batch: np.ndarray, stats: Any, style: Optional[np.ndarray] = None
  ) -> np.ndarray:
    style = None if style is None else jnp.asarray(style, jnp.float32)
    return np.asarray(
      with_norm_stats_fn(self.generator, self.variables, stats, jnp.asarray(batch), style)
    )


def checkpoint_step(step: Any) -> Optional[int]:
  """`step` as a checkpoint step: an integer, a string of digits ('4') or None."""
  if step is None:
    return None
  if isinstance(step, numbers.Integral) and not isinstance(step, bool):
    return int(step)
  if isinstance(step, str) and step.strip().isdigit():
    return int(step.strip())
  raise TypeError(f'step={step!r} must be a checkpoint step (an integer) or None.')


def find_checkpoint(workdir: str, step: Any = None) -> int:
  """The step `load_stylizer(workdir, step)` would restore, loading nothing: a
  command line's early check. Raises as `load_stylizer` does for a folder that
  is no workdir or a missing step."""
  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import checkpoints
  from shopstyle_jax import workdir as workdir_lib

  # pylint: enable=g-import-not-at-top
  step = checkpoint_step(step)
  workdir_lib.read_config(workdir)
  return checkpoints.find_step(workdir, step)


def load_stylizer(
  workdir: str, step: Optional[int] = None, *, precision: Optional[str] = None
) -> Stylizer:
  """Restores a checkpoint's generator (EMA weights when the run kept them).

  Args:
    workdir: a training workdir (holds config.json and checkpoints/).
    step: checkpoint step (an integer, or a string of digits); the latest by default.
    precision: 'float32' or 'bfloat16' activations; default float32.
  Raises:
    FileNotFoundError: not a workdir, no checkpoint, or no checkpoint at `step`
      (the message lists the steps there are).
    ValueError: a bad `precision`, a checkpoint that cannot be read, or one whose
      generator does not fit config.json's model settings (the arrays that differ
      are named).
  """
  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import checkpoints
  from shopstyle_jax import state as state_lib
  from shopstyle_jax import workdir as workdir_lib
  from shopstyle_jax.models import generators
  from shopstyle_jax.models import layers

  # pylint: enable=g-import-not-at-top
  step = checkpoint_step(step)
  dtype = layers.precision_dtype(precision)
  config = workdir_lib.load_config(workdir)
  generator = generators.create_generator(
    config.model, dtype=dtype, num_styles=style_mix.num_styles(config)
  )
  tree, step = checkpoints.restore_subtree(
    workdir, ('g_params', 'g_batch_stats', 'ema_params'), step
  )
  variables = state_lib.generator_variables(
    tree['g_params'], tree['g_batch_stats'], tree['ema_params']
  )
  _check_fits(generator, variables, workdir, step, config)
  return Stylizer(generator, variables, step, config)


# The config.model keys that shape the generator's arrays, named in errors.
_GENERATOR_KEYS = (
  'generator',
  'width',
  'depth',
  'resnet_blocks',
  'norm',
  'upsample',
  'output_upsample',
  'noise_channels',
)


def _check_fits(generator: Any, variables: Any, workdir: str, step: int, config: Any) -> None:
  """ValueError naming the arrays whose shapes differ between the checkpoint's
  generator and the one config.json describes (a config.json that is not the
  run's own would otherwise fail at the first call)."""
  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import checkpoints
  from shopstyle_jax import workdir as workdir_lib

  # pylint: enable=g-import-not-at-top
  size = generator.factor
  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.models import layers

  # pylint: enable=g-import-not-at-top
  expected = jax.eval_shape(
    functools.partial(generator.init, train=False),
    {'params': jax.random.key(0)},
    jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
    *layers.style_args(generator),
  )
  diffs = checkpoints.shape_differences(expected, variables)
  if diffs:
    model = ', '.join(
      f'model.{k}={config.model[k]!r}' for k in _GENERATOR_KEYS if k in config.model
    )
    raise ValueError(
      f'Checkpoint step {step} of {workdir} does not fit the generator its '
      f'{workdir_lib.CONFIG_FILE} describes ({len(diffs)} arrays differ, e.g. '
      f'{"; ".join(diffs[:3])}): {workdir_lib.config_path(workdir)} ({model}) is not the '
      "config of the run that wrote the checkpoint. Put back the run's own config.json "
      '(or retrain).'
    )
