"""CycleGAN (Zhu et al. 2017): photo <-> style without pairs, by cycle consistency.

Two generators, G: photo -> style and F: style -> photo, and two unconditional
PatchGANs, D_style (on style images) and D_photo (on photos). A step is the
official `CycleGANModel.optimize_parameters`:

1. One forward: G(photo), F(G(photo)), F(style), G(F(style)), in that order.
2. G and F together minimise
     adversarial_weight * [gan(D_style(G(photo))) + gan(D_photo(F(style)))]
     + cycle_weight * [|F(G(photo)) - photo| + |G(F(style)) - style|]
     + identity_weight * [|G(style) - style| + |F(photo) - photo|]
     (+ content, style and TV terms on G(photo), as any method may),
   against the discriminators as they were before this step.
3. Each D is updated on 0.5 * (gan(D(real), 1) + gan(D(pooled fake), 0)), where
   the fakes are those of step 1 (before G's update) passed through an image pool.

The pools are part of the state, one per D, replicated, and offered the global
batch's fakes in order with one fixed key each, so a run resumes exactly and
does not depend on the number of devices. A weight of 0 removes its term and its
forward passes. A step with any non-finite loss or gradient changes nothing but
the step counter.

Several styles (`config.data.style_folders`): each example's style,
batch['style_id'], one-hot, conditions G (photo -> that style), F (that style ->
photo: it inverts the style) and D_style, a projection PatchGAN judging each
style on its own; every pass of G and F runs in its row's style. D_photo stays
unconditional: photos are one domain whatever the style. D_style's pool is
labelled (`image_pool`): a pooled fake is judged in its own style.
"""

import functools
from typing import Any, NamedTuple, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from shopstyle_jax import losses
from shopstyle_jax import state as state_lib
from shopstyle_jax import style_mix
from shopstyle_jax.methods import common
from shopstyle_jax.methods import image_pool
from shopstyle_jax.models import discriminators
from shopstyle_jax.models import generators
from shopstyle_jax.models import layers

Params = Any
Batch = dict[str, jax.Array]

# The pools' keys fold this into the root key; the per-step keys fold in the step,
# which stays below it in any run (the step counter is int32).
_POOL_STREAM = 2**31 - 1


class Models(NamedTuple):
  """CycleGAN's networks (the official G_A, G_B, D_A, D_B)."""

  G: nn.Module  # photo -> style.
  F: nn.Module  # style -> photo.
  D_style: nn.Module  # Real style images vs G's outputs.
  D_photo: nn.Module  # Real photos vs F's outputs.


def build_models(config: ml_collections.ConfigDict, dtype: Any = jnp.float32) -> Models:
  """Both generators as `config.model.generator`, both Ds unconditional PatchGANs;
  with several styles G, F and D_style read the style."""
  n = style_mix.num_styles(config)
  make_g = functools.partial(generators.create_generator, config.model, dtype, num_styles=n)
  make_d = functools.partial(
    discriminators.create_discriminator, config.model, dtype=dtype, conditional=False
  )
  return Models(G=make_g(), F=make_g(), D_style=make_d(num_styles=n), D_photo=make_d())


@flax.struct.dataclass
class State:
  """CycleGAN's training state; `g_*` is G (photo -> style), where export looks.

  `d_*` is D_style, `dp_*` D_photo. `ema_params` is G's EMA ({} when
  config.ema_decay is 0); `pool_style` holds G's past outputs for D_style,
  `pool_photo` F's for D_photo (see `image_pool`).
  """

  step: jax.Array
  g_params: Params
  g_batch_stats: Params
  g_opt_state: optax.OptState
  f_params: Params
  f_batch_stats: Params
  f_opt_state: optax.OptState
  d_params: Params
  d_batch_stats: Params
  d_opt_state: optax.OptState
  dp_params: Params
  dp_batch_stats: Params
  dp_opt_state: optax.OptState
  ema_params: Params
  pool_style: image_pool.Pool
  pool_photo: image_pool.Pool

  def generator_variables(self, use_ema: bool = True) -> dict:
    """G's variables for stylizing: EMA weights when there are any."""
    params = self.ema_params if (use_ema and self.ema_params) else self.g_params
    return state_lib.variables(params, self.g_batch_stats)

  def back_variables(self) -> dict:
    """F's variables (style -> photo): eval grids show F(G(photo)) beside G(photo)."""
    return state_lib.variables(self.f_params, self.f_batch_stats)


def create_state(config: ml_collections.ConfigDict, models: Models, rng: jax.Array) -> State:
  """Initialises the four networks on a dummy image, Adam states and empty pools."""
  image = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
  tx = state_lib.create_optimizer(config)
  nets = {}
  for name, module, key in zip(('g', 'f', 'd', 'dp'), models, jax.random.split(rng, 4)):
    variables = module.init({'params': key}, image, *layers.style_args(module), train=False)
    nets[f'{name}_params'] = variables['params']
    nets[f'{name}_batch_stats'] = variables.get('batch_stats', {})
    nets[f'{name}_opt_state'] = tx.init(variables['params'])
  pool_shape = (config.image_size, config.image_size, 3)
  return State(
    step=jnp.zeros((), jnp.int32),
    ema_params=(jax.tree.map(jnp.copy, nets['g_params']) if config.ema_decay > 0 else {}),
    pool_style=image_pool.init_pool(
      config.loss.pool_size, pool_shape, labelled=style_mix.num_styles(config) > 1
    ),
    pool_photo=image_pool.init_pool(config.loss.pool_size, pool_shape),
    **nets,
  )


def _vgg_layers(lc: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The VGG19 layers the content and style terms read (none when both are off)."""
  layers = (tuple(lc.content_layers) if lc.content_weight else ()) + (
    tuple(lc.style_layers) if lc.style_weight else ()
  )
  return tuple(dict.fromkeys(layers))


def make_step(
  config: ml_collections.ConfigDict, models: Models, vgg: Optional[nn.Module] = None
) -> common.StepFn:
  """Builds step(state, {'photo', 'style'}, vgg_params) -> (state, metrics).

  `vgg` (a VGG19 returning at least the content and style layers) is needed only
  when config.loss.content_weight or style_weight is on.
  """
  lc = config.loss
  tx = state_lib.create_optimizer(config)
  lr_schedule = state_lib.learning_rate_schedule(config)
  base_rng = state_lib.prng_key(config.seed)
  pool_style_rng, pool_photo_rng = jax.random.split(jax.random.fold_in(base_rng, _POOL_STREAM))
  vgg_layers = _vgg_layers(lc)
  if vgg_layers:
    if vgg is None:
      raise ValueError('config.loss.content_weight or style_weight > 0 needs the VGG19 module.')
    missing = [name for name in vgg_layers if name not in vgg.layers]
    if missing:
      raise ValueError(f'The VGG19 module does not return {missing}; give it layers {vgg_layers}.')
  G, F, D_style, D_photo = models  # pylint: disable=invalid-name
  # What D_style sees (`config.loss.disc_blur`, `disc_guided_*`; identity when off).
  # D_photo judges photos as they are: they have no texture that a sketch cannot predict.
  surface = common.loss_surface(lc)

  num_styles = style_mix.num_styles(config)
  multi = num_styles > 1
  one_hot = lambda ids: (jax.nn.one_hot(ids, num_styles),) if multi else ()

  def d_loss(module, params, stats, real, fake, real_style=(), fake_style=()):
    """One D's loss on real and (pooled, gradient-free) fake images; (loss, stats).
    `*_style`: () or the style weights of a conditioned D's images."""
    real_logits, stats = common.apply_train(module, params, stats, real, *real_style)
    fake_logits, stats = common.apply_train(module, params, stats, fake, *fake_style)
    loss = losses.discriminator_loss(lc.gan, real_logits, fake_logits)
    # The official halves D's loss; discriminator_loss does for 'vanilla' and 'lsgan'.
    return (0.5 * loss if lc.gan == 'hinge' else loss), stats

  def step(state: State, batch: Batch, vgg_params: Params = None) -> tuple[State, common.Metrics]:
    photo, style = batch['photo'], batch['style']
    step_rngs = common.step_rngs(base_rng, state.step, 'dropout', 'noise')
    # Several styles: each row's one-hot style weights, for G, F and D_style.
    cond = one_hot(batch['style_id']) if multi else ()

    def gen(module, params, stats, x, call):
      """A generator in training mode; each call draws its own dropout and noise."""
      rngs = {name: jax.random.fold_in(key, call) for name, key in step_rngs.items()}
      return common.apply_train(module, params, stats, x, *cond, rngs=rngs)

    def g_loss_fn(gf_params):
      g_params, f_params = gf_params
      g_stats, f_stats = state.g_batch_stats, state.f_batch_stats
      d_stats, dp_stats = state.d_batch_stats, state.dp_batch_stats
      terms = {}
      fake_style, g_stats = gen(G, g_params, g_stats, photo, 0)
      if lc.cycle_weight:
        rec_photo, f_stats = gen(F, f_params, f_stats, fake_style, 1)
      fake_photo, f_stats = gen(F, f_params, f_stats, style, 2)
      if lc.cycle_weight:
        rec_style, g_stats = gen(G, g_params, g_stats, fake_photo, 3)
        terms['cycle'] = (
          lc.cycle_weight,
          losses.cycle_loss(photo, rec_photo) + losses.cycle_loss(style, rec_style),
        )
      if lc.identity_weight:
        same_style, g_stats = gen(G, g_params, g_stats, style, 4)
        same_photo, f_stats = gen(F, f_params, f_stats, photo, 5)
        terms['identity'] = (
          lc.identity_weight,
          losses.l1(same_style, style) + losses.l1(same_photo, photo),
        )
      if lc.adversarial_weight:
        logits, d_stats = common.apply_train(
          D_style, state.d_params, d_stats, surface(fake_style), *cond
        )
        logits_p, dp_stats = common.apply_train(D_photo, state.dp_params, dp_stats, fake_photo)
        terms['adversarial'] = (
          lc.adversarial_weight,
          losses.generator_adversarial_loss(lc.gan, logits)
          + losses.generator_adversarial_loss(lc.gan, logits_p),
        )
      if vgg_layers:
        # One VGG pass over G(photo) and the targets, which carry no gradient.
        targets = [x for x, w in ((photo, lc.content_weight), (style, lc.style_weight)) if w]
        n = photo.shape[0]
        feats = vgg.apply(
          {'params': vgg_params},
          jnp.concatenate([fake_style, *map(jax.lax.stop_gradient, targets)]),
        )
        part = lambda k: {name: f[k * n : (k + 1) * n] for name, f in feats.items()}
        if lc.content_weight:
          terms['content'] = (
            lc.content_weight,
            losses.content_loss(part(0), part(1), lc.content_layers),
          )
        if lc.style_weight:
          terms['style'] = (
            lc.style_weight,
            losses.style_loss(part(0), part(len(targets)), lc.style_layers, lc.style_layer_weights),
          )
      if lc.tv_weight:
        terms['tv'] = (lc.tv_weight, losses.total_variation(fake_style))
      if lc.tone_weight:
        terms['tone'] = (lc.tone_weight, common.tone_loss(fake_style, batch['tone'], lc.tone_blur))
      total = sum((w * value for w, value in terms.values()), jnp.zeros((), jnp.float32))
      aux = (
        {k: v for k, (_, v) in terms.items()},
        (fake_style, fake_photo),
        (g_stats, f_stats, d_stats, dp_stats),
      )
      return total, aux

    # G and F, against the discriminators before this step's update.
    (g_loss, (g_terms, (fake_style, fake_photo), stats)), (g_grads, f_grads) = jax.value_and_grad(
      g_loss_fn, has_aux=True
    )((state.g_params, state.f_params))
    g_stats, f_stats, d_stats, dp_stats = stats
    g_params, g_opt_state = common.update(tx, g_grads, state.g_opt_state, state.g_params)
    f_params, f_opt_state = common.update(tx, f_grads, state.f_opt_state, state.f_params)

    # Both Ds, on the fakes of the forward above (G's and F's before their update).
    if multi:  # Each pooled fake keeps its own style.
      pool_style, pooled_style, pooled_ids = image_pool.query_pool(
        state.pool_style, fake_style, pool_style_rng, batch['style_id']
      )
    else:
      pool_style, pooled_style = image_pool.query_pool(state.pool_style, fake_style, pool_style_rng)
      pooled_ids = None
    pool_photo, pooled_photo = image_pool.query_pool(state.pool_photo, fake_photo, pool_photo_rng)
    (d_loss_style, d_stats), d_grads = jax.value_and_grad(
      functools.partial(d_loss, D_style), has_aux=True
    )(
      state.d_params,
      d_stats,
      surface(style),
      surface(pooled_style),
      cond,
      one_hot(pooled_ids) if multi else (),
    )
    (d_loss_photo, dp_stats), dp_grads = jax.value_and_grad(
      functools.partial(d_loss, D_photo), has_aux=True
    )(state.dp_params, dp_stats, photo, pooled_photo)
    d_params, d_opt_state = common.update(tx, d_grads, state.d_opt_state, state.d_params)
    dp_params, dp_opt_state = common.update(tx, dp_grads, state.dp_opt_state, state.dp_params)

    grad_norms = {
      f'{name}_grad_norm': optax.tree.norm(grads)
      for name, grads in (('g', g_grads), ('f', f_grads), ('d', d_grads), ('dp', dp_grads))
    }
    finite = common.all_finite(g_loss, g_terms, d_loss_style, d_loss_photo, grad_norms)
    updated = state.replace(
      step=state.step + 1,
      g_params=g_params,
      g_batch_stats=g_stats,
      g_opt_state=g_opt_state,
      f_params=f_params,
      f_batch_stats=f_stats,
      f_opt_state=f_opt_state,
      d_params=d_params,
      d_batch_stats=d_stats,
      d_opt_state=d_opt_state,
      dp_params=dp_params,
      dp_batch_stats=dp_stats,
      dp_opt_state=dp_opt_state,
      ema_params=common.ema(config.ema_decay, g_params, state.ema_params),
      pool_style=pool_style,
      pool_photo=pool_photo,
    )
    metrics = {
      'd_loss': d_loss_style,
      'dp_loss': d_loss_photo,
      'g_loss': g_loss,
      **{f'g_{k}': v for k, v in g_terms.items()},
      **grad_norms,
      'learning_rate': lr_schedule(state.step),
      'finite': finite.astype(jnp.float32),
    }
    return common.apply_if_finite(finite, updated, state), metrics

  return step
