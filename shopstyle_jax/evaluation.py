"""Image-quality scores (PSNR, SSIM via dm_pix, the identity and blank baselines;
the tone curve is `tone.fit_tone_curve`), image grids and the one eval loop that training and
`python -m shopstyle_jax.evaluate` share."""

import dataclasses
import functools
from typing import Any, Iterable, Optional

import dm_pix
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from shopstyle_jax import images as image_lib
from shopstyle_jax import inference
from shopstyle_jax import parallel

# The mean scores `evaluate` returns, in the order tables show them.
METRICS = ('psnr', 'ssim', 'identity_psnr', 'identity_ssim', 'blank_psnr', 'blank_ssim')
# What `evaluate(color=True)` adds: the median over examples of each one's median
# CIEDE2000 between photo and output on its product pixels (`masks.segment_product`),
# for the plain output and with `preserve_color`; the `_chroma` pair without
# CIEDE2000's lightness term (a style's own lightness is what preserve_color keeps).
COLOR_METRICS = (
  'ciede2000',
  'ciede2000_preserve_color',
  'ciede2000_chroma',
  'ciede2000_chroma_preserve_color',
)


def color_scores(photos: np.ndarray, outputs: np.ndarray) -> dict[str, np.ndarray]:
  """Per-example median CIEDE2000 (photo vs output, product pixels) of [N, H, W, 3]
  [-1, 1] photos and outputs, plain and after `preserve_color`'s luminance transfer."""
  from shopstyle_jax import color  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import masks  # pylint: disable=g-import-not-at-top

  scores = {k: [] for k in COLOR_METRICS}
  for photo, out in zip(image_lib.model_to_uint8(photos), image_lib.model_to_uint8(outputs)):
    mask = masks.segment_product(photo)
    transferred = color.transfer_luminance(photo / np.float32(255), out / np.float32(255))
    for suffix, lightness in (('', True), ('_chroma', False)):
      scores[f'ciede2000{suffix}'].append(color.median_ciede2000(photo, out, mask, lightness))
      scores[f'ciede2000{suffix}_preserve_color'].append(
        color.median_ciede2000(photo, transferred, mask, lightness)
      )
  return {k: np.float32(v) for k, v in scores.items()}


def to_unit(images: jax.Array) -> jax.Array:
  """[-1, 1] -> [0, 1], clipped: the range PSNR/SSIM are reported in."""
  return jnp.clip((images.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)


def psnr_ssim(outputs: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-image PSNR (dB) and SSIM of [-1, 1] images, each shape [N]."""
  a, b = to_unit(outputs), to_unit(targets)
  return dm_pix.psnr(a, b), dm_pix.ssim(a, b)


def scores(photo: jax.Array, target: jax.Array, output: jax.Array) -> dict[str, jax.Array]:
  """Per-image scores of the model and of two baselines computed the same way:
  'identity' (the photo itself) and 'blank' (an all-white page)."""
  psnr, ssim = psnr_ssim(output, target)
  id_psnr, id_ssim = psnr_ssim(photo, target)
  blank_psnr, blank_ssim = psnr_ssim(jnp.ones_like(target), target)
  return {
    'psnr': psnr,
    'ssim': ssim,
    'identity_psnr': id_psnr,
    'identity_ssim': id_ssim,
    'blank_psnr': blank_psnr,
    'blank_ssim': blank_ssim,
  }


def image_grid(*columns: np.ndarray, rows: int, gap: int = 2) -> np.ndarray:
  """Puts [N, H, W, 3] arrays in [-1, 1] side by side, one example per row:
  e.g. input | target | output. Returns uint8 [rows*(H+gap), cols*(W+gap), 3]."""
  rows = min(rows, min(len(c) for c in columns))
  h, w = columns[0].shape[1:3]
  grid = np.full((rows * (h + gap), len(columns) * (w + gap), 3), 255, np.uint8)
  for j, col in enumerate(columns):
    col = image_lib.model_to_uint8(np.asarray(col[:rows]))
    for i in range(rows):
      grid[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = col[i]
  return grid


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What `evaluate` measured: mean `METRICS` over the valid examples, their
  count, and photo | target | output rows of the first valid examples (or None)."""

  scores: dict[str, float]
  num_examples: int
  grid: Optional[np.ndarray]


@functools.partial(jax.jit, static_argnames=('generator',))
def _score_batch(
  generator: nn.Module, variables: Any, batch: dict[str, jax.Array], style: Any = None
) -> tuple[dict[str, jax.Array], jax.Array]:
  """Sums of the per-image scores over the batch's valid rows, 'count' (their
  number), and the generator's outputs (in `style`, [S] weights, if given)."""
  if style is not None:
    style = jnp.broadcast_to(style, (batch['photo'].shape[0], style.shape[-1]))
  out = inference.stylize_fn(generator, variables, batch['photo'], style)
  valid = batch['valid'].astype(jnp.float32)
  sums = {k: jnp.sum(v * valid) for k, v in scores(batch['photo'], batch['target'], out).items()}
  sums['count'] = jnp.sum(valid)
  return sums, out


def evaluate(
  generator: nn.Module,
  variables: Any,
  batches: Iterable[dict[str, np.ndarray]],
  mesh: Mesh,
  *,
  grid_rows: int = 0,
  ground_truth: bool = True,
  back: Optional[tuple[nn.Module, Any]] = None,
  color: bool = False,
  style: Optional[np.ndarray] = None,
) -> Evaluation:
  """Scores `generator` (deterministic, as `stylize_fn`) on eval batches.

  Args:
    generator: the generator module.
    variables: its flax variables (EMA weights, if any, already chosen); placed
      replicated on `mesh` here unless they are already.
    batches: this process's share of each global eval batch ({'photo',
      'target': [-1, 1] float32, 'valid': bool}, as `pipeline.create_eval_batches`
      gives), sharded over `mesh` on the leading axis.
    mesh: a `parallel.create_mesh` mesh; every process of it must call this.
    grid_rows: rows of the photo | target | output grid, taken from the first
      valid examples of all processes; 0 for none.
    ground_truth: False when the batches' targets are only the photos again (a
      photo folder learnt from style images without pairs): no scores, and the
      grid is photo | output.
    back: (generator, variables) of a style -> photo generator (CycleGAN's F):
      the grid gets one more column, the photo reconstructed from the output
      (by a multi-style F in `style`).
    color: also report `COLOR_METRICS` (on the host: slower, for
      `python -m shopstyle_jax.evaluate`).
    style: a multi-style generator's style weights [S] for every image (one-hot
      for one style: `style_mix.style_vector`); None for a single-style one.
  Returns:
    The means over the valid rows (medians for `COLOR_METRICS`), their number
    and the grid (None when `grid_rows` is 0 or no row was valid). Identical on
    every process.
  """
  variables = jax.device_put(variables, parallel.replicated(mesh))
  if back is not None:
    back_variables = jax.device_put(back[1], parallel.replicated(mesh))
  totals, count, shown, num_shown = dict.fromkeys(METRICS, 0.0), 0.0, [], 0
  colors = {k: [] for k in COLOR_METRICS}
  for local in batches:
    batch = parallel.global_batch(local, mesh)
    sums, out = _score_batch(
      generator, variables, batch, None if style is None else jnp.asarray(style, jnp.float32)
    )
    if color:
      photo, output, valid = multihost_utils.process_allgather(
        (batch['photo'], out, batch['valid']), tiled=True
      )
      valid = np.asarray(valid, bool)
      for k, v in color_scores(np.asarray(photo)[valid], np.asarray(output)[valid]).items():
        colors[k].extend(v.tolist())
    sums = jax.device_get(sums)
    count += float(sums.pop('count'))
    for k, v in sums.items():
      totals[k] += float(v)
    if num_shown < grid_rows:  # The same on every process: all take part in the gather.
      rows = (batch['photo'], batch['target'], out, batch['valid'])
      if back is not None:
        # A multi-style F inverts the style it is told, the one G was given.
        back_style = None
        if style is not None and getattr(back[0], 'num_styles', 1) > 1:
          back_style = jnp.broadcast_to(jnp.asarray(style, jnp.float32), (out.shape[0], len(style)))
        rows += (inference.stylize_fn(back[0], back_variables, out, back_style),)
      rows = multihost_utils.process_allgather(rows, tiled=True)
      valid = np.asarray(rows[3], bool)
      shown.append([np.asarray(r)[valid] for r in rows[:3] + rows[4:]])
      num_shown += int(valid.sum())
  grid = None
  if num_shown:
    photo, target, out, *reconstructed = (np.concatenate(c) for c in zip(*shown))
    columns = (photo, target, out) if ground_truth else (photo, out)
    grid = image_grid(*columns, *reconstructed, rows=grid_rows)
  means = {k: v / max(count, 1.0) for k, v in totals.items()} if ground_truth else {}
  if color and colors['ciede2000']:
    means.update({k: float(np.median(v)) for k, v in colors.items()})
  return Evaluation(means, int(count), grid)
