"""Pieces every method's pure train step shares: network application in training
mode, one optimizer update, the EMA, and the skip of non-finite steps.

A method is a module of `shopstyle_jax.methods` with

  create_state(config, models, rng) -> State      a flax.struct dataclass pytree
  make_step(config, models, vgg=None) -> step     step(state, batch, vgg_params)
                                                  -> (state, metrics)

where `models` is what its `build_models(config, dtype)` returns, a NamedTuple
whose field `G` is the photo -> style generator. Every State
keeps the photo -> style generator in `g_params`, `g_batch_stats` and
`ema_params` (where `load_stylizer`, `export` and `evaluate` look) and has a
`step` counter; metrics hold scalar float32 arrays, among them `finite`
(1.0 when the step was applied, 0.0 when it was skipped for NaN/Inf).
"""

import functools
import math
from typing import Any, Callable, Optional

import dm_pix
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from shopstyle_jax import losses
from shopstyle_jax import state as state_lib

Params = Any
Metrics = dict[str, jax.Array]


def apply_train(
  module: nn.Module, params: Params, batch_stats: Params, *args, rngs: Optional[dict] = None
) -> tuple[jax.Array, Params]:
  """`module` in training mode; returns (output, updated batch stats)."""
  out, mutated = module.apply(
    state_lib.variables(params, batch_stats),
    *args,
    train=True,
    rngs=rngs or {},
    mutable=['batch_stats'],
  )
  return out, mutated.get('batch_stats', {})


def update(
  tx: optax.GradientTransformation, grads: Params, opt_state: Any, params: Params
) -> tuple[Params, Any]:
  """One optimizer step; returns (new params, new optimizer state)."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def ema(decay: float, params: Params, ema_params: Params) -> Params:
  """EMA of the generator's weights (unchanged, i.e. empty, when decay is 0)."""
  if decay <= 0:
    return ema_params
  return optax.incremental_update(params, ema_params, 1.0 - decay)


def all_finite(*values: Any) -> jax.Array:
  """True when every leaf of every value (losses, gradient norms) is finite."""
  leaves = [jnp.all(jnp.isfinite(x)) for v in values for x in jax.tree.leaves(v)]
  return jnp.all(jnp.stack(leaves))


def apply_if_finite(finite: jax.Array, updated: Any, state: Any) -> Any:
  """`updated` when the step was finite, else `state` with only its step advanced:
  a NaN/Inf step changes no weight, optimizer moment, statistic or buffer."""
  skipped = state.replace(step=state.step + 1)
  return jax.tree.map(lambda u, s: jnp.where(finite, u, s), updated, skipped)


def step_rngs(base_rng: jax.Array, step: jax.Array, *names: str) -> dict[str, jax.Array]:
  """Per-step keys for the named random streams (dropout, noise, ...)."""
  keys = jax.random.split(jax.random.fold_in(base_rng, step), len(names))
  return dict(zip(names, keys))


def example_keys(base_rng: jax.Array, step: jax.Array, batch_size: int) -> jax.Array:
  """One key per example of the global batch, from (seed, step, global index): draws
  made with them do not depend on how the batch is sharded over devices."""
  rng = jax.random.fold_in(base_rng, step)
  return jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(batch_size))


StepFn = Callable[[Any, dict, Any], tuple[Any, Metrics]]


def vgg_layers(config: Any) -> tuple[str, ...]:
  """The VGG19 outputs a config's loss terms read, in network order: the perceptual
  layers (perceptual_weight), the content layers (content_weight) and the style
  layers (style_weight); () when none is on (no VGG at all)."""
  from shopstyle_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top

  lc = config.loss
  wanted = set()
  for weight, key in (
    ('perceptual_weight', 'vgg_layers'),
    ('content_weight', 'content_layers'),
    ('style_weight', 'style_layers'),
  ):
    if lc.get(weight):
      wanted.update(vgg_lib.check_layers(lc[key]))
  return tuple(name for name in vgg_lib.VGG_LAYERS if name in wanted)


def surface(
  images: jax.Array, sigma: float, guided_radius: int = 0, guided_eps: float = 0.0
) -> jax.Array:
  """What an unconditional discriminator sees: `images` Gaussian-blurred by
  `sigma` pixels (`config.loss.disc_blur`; 0 = no blur), then edge-preserving
  smoothed by a self-guided filter of radius `guided_radius`
  (`config.loss.disc_guided_radius`; 0 = none) and regulariser `guided_eps`.

  White-box Cartoonization's surface representation (Wang and Yu, 2020): a
  discriminator that judges smoothed pages learns the style's lines and tones
  but not its fine texture (hatching, paper grain), which no photo predicts, so
  the generator is not pushed to invent a texture of its own. The guided filter
  flattens only what varies little within its window (texture) and keeps strong
  edges (lines) sharp, which a Gaussian blurs too. Real and generated images go
  through the same filters, padded at the borders alike.
  """
  if sigma:
    kernel_size = 2 * int(math.ceil(3 * sigma)) + 1
    images = dm_pix.gaussian_blur(images, sigma, kernel_size)
  if guided_radius:
    images = guided_filter(images, images, guided_radius, guided_eps)
  return images


def loss_surface(loss_config: Any) -> Callable[[jax.Array], jax.Array]:
  """`surface` with a config's `disc_blur`, `disc_guided_radius` and `disc_guided_eps`:
  what a method's style discriminator sees."""
  return functools.partial(
    surface,
    sigma=loss_config.disc_blur,
    guided_radius=loss_config.disc_guided_radius,
    guided_eps=loss_config.disc_guided_eps,
  )


def tone_loss(output: jax.Array, target: jax.Array, sigma: float) -> jax.Array:
  """`config.loss.tone_weight`'s term: MSE between the output and its tone target
  (the batch's 'tone': the photo through the unpaired tone map), both
  Gaussian-blurred by `sigma` pixels (`config.loss.tone_blur`; 0 = none)."""
  return losses.mse(surface(output, sigma), surface(target, sigma))


def _box_mean(x: jax.Array, radius: int) -> jax.Array:
  """Mean of [N, H, W, C] over each (2r+1)^2 window, over the pixels inside the
  image only (so borders are not darkened)."""
  size = 2 * radius + 1
  window, strides = (1, size, size, 1), (1, 1, 1, 1)
  pad = ((0, 0), (radius, radius), (radius, radius), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
  ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
  count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
  return total / count


def guided_filter(guide: jax.Array, images: jax.Array, radius: int, eps: float) -> jax.Array:
  """He et al.'s guided filter (2010, Algorithm 1), per channel: `images` [N, H,
  W, C] smoothed where `guide` varies by less than ~sqrt(eps) within a (2r+1)^2
  window, left as they are across stronger edges.

  Written here because it must run (and be differentiated) inside the jitted
  train step: OpenCV's ximgproc filter is NumPy-only and dm_pix has none.
  """
  mean_i = _box_mean(guide, radius)
  mean_p = _box_mean(images, radius)
  cov_ip = _box_mean(guide * images, radius) - mean_i * mean_p
  var_i = _box_mean(guide * guide, radius) - mean_i * mean_i
  a = cov_ip / (var_i + eps)
  b = mean_p - a * mean_i
  return _box_mean(a, radius) * guide + _box_mean(b, radius)
