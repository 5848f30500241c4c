"""Neural style: Johnson et al. 2016, "Perceptual losses for real-time style transfer".

A feed-forward generator G learns photo -> styled image without pairs, from
  content_weight * L_content(VGG(G(x)), VGG(x))      features of the output vs the photo's
  + style_weight * L_style(Gram(VGG(G(x))), Gram(VGG(s)))   per pair: row i vs style row i
  + tv_weight * TV(G(x))
  + adversarial_weight * L_adv(D(G(x)))              optional unconditional PatchGAN
on batches {'photo', 'style'} in [-1, 1]; the data pipeline draws each row's style
image from the style set (with one style image, every row is a crop of it). The VGG19
is frozen: its params come into the step as an argument, not in the state.
A weight of 0 removes its term and its compute (no D, no VGG pass it alone needed).
Several styles (`config.data.style_folders`): batch['style_id'], one-hot,
conditions G (and D, a projection PatchGAN); each row's Gram target is its own
style image, of its own style.
"""

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
from shopstyle_jax.models import discriminators
from shopstyle_jax.models import generators
from shopstyle_jax.models import layers
from shopstyle_jax.models import vgg as vgg_lib

Params = Any
Batch = dict[str, jax.Array]


class Models(NamedTuple):
  """The networks the step trains: G (photo -> style) and D, None when
  adversarial_weight is 0."""

  G: nn.Module
  D: Optional[nn.Module]


@flax.struct.dataclass
class State:
  """What changes during training. The d_* fields are {} without a discriminator,
  `ema_params` is {} when config.ema_decay is 0 and `*_batch_stats` are {} without
  batch norm."""

  step: jax.Array
  g_params: Params
  g_batch_stats: Params
  g_opt_state: optax.OptState
  ema_params: Params
  d_params: Params
  d_batch_stats: Params
  d_opt_state: optax.OptState

  def generator_variables(self, use_ema: bool = True) -> dict:
    """The variables `stylize_fn` needs: EMA weights when there are any."""
    params = self.ema_params if (use_ema and self.ema_params) else self.g_params
    return state_lib.variables(params, self.g_batch_stats)


def vgg_layers(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """VGG19 outputs the step reads, in network order: the content layers when
  content_weight > 0 and the style layers when style_weight > 0; () for neither
  (then the step needs no VGG and no vgg_params)."""
  lc = config.loss
  wanted = set()
  if lc.content_weight:
    wanted.update(vgg_lib.check_layers(lc.content_layers))
  if lc.style_weight:
    wanted.update(vgg_lib.check_layers(lc.style_layers))
  return tuple(name for name in vgg_lib.VGG_LAYERS if name in wanted)


def build_models(config: ml_collections.ConfigDict, dtype: Any = jnp.float32) -> Models:
  """G from config.model; an unconditional PatchGAN D(image) only when adversarial_weight
  > 0; both style-conditioned with several styles."""
  n = style_mix.num_styles(config)
  generator = generators.create_generator(config.model, dtype, num_styles=n)
  discriminator = None
  if config.loss.adversarial_weight:
    discriminator = discriminators.create_discriminator(
      config.model, dtype=dtype, conditional=False, num_styles=n
    )
  return Models(generator, discriminator)


def create_state(config: ml_collections.ConfigDict, models: Models, rng: jax.Array) -> State:
  """Initialises G (and D) on a dummy image of the configured size; jittable."""
  g_rng, d_rng = jax.random.split(rng)
  image = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
  tx = state_lib.create_optimizer(config)
  g_vars = models.G.init({'params': g_rng}, image, *layers.style_args(models.G), train=False)
  g_params = g_vars['params']
  d_params, d_batch_stats, d_opt_state = {}, {}, {}
  if models.D is not None:
    d_vars = models.D.init({'params': d_rng}, image, *layers.style_args(models.D), train=False)
    d_params, d_batch_stats = d_vars['params'], d_vars.get('batch_stats', {})
    d_opt_state = tx.init(d_params)
  return State(
    step=jnp.zeros((), jnp.int32),
    g_params=g_params,
    g_batch_stats=g_vars.get('batch_stats', {}),
    g_opt_state=tx.init(g_params),
    ema_params=jax.tree.map(jnp.copy, g_params) if config.ema_decay > 0 else {},
    d_params=d_params,
    d_batch_stats=d_batch_stats,
    d_opt_state=d_opt_state,
  )


def make_step(
  config: ml_collections.ConfigDict, models: Models, vgg: Optional[nn.Module] = None
) -> common.StepFn:
  """Builds step(state, batch, vgg_params) -> (state, metrics); loss weights are static.

  `vgg` is a `vgg.VGG19` (its dtype is used; its layers need not match, the step
  cuts it at `vgg_layers(config)`), and `vgg_params` must cover the deepest of
  those layers. Both may be None when content_weight and style_weight are 0.
  """
  lc = config.loss
  generator, discriminator = models
  needed = vgg_layers(config)
  if needed and vgg is None:
    raise ValueError(
      f'config.loss.content_weight/style_weight > 0 need the VGG19 module '
      f'(vgg.VGG19 with layers {needed}).'
    )
  if lc.adversarial_weight and discriminator is None:
    raise ValueError(
      'config.loss.adversarial_weight > 0 needs the discriminator: build the '
      'models with this config (neural_style.build_models).'
    )
  if not (
    lc.content_weight or lc.style_weight or lc.tv_weight or lc.adversarial_weight or lc.tone_weight
  ):
    raise ValueError(
      'neural_style: config.loss.content_weight, style_weight, tv_weight, tone_weight and '
      'adversarial_weight are all 0: the generator would learn nothing.'
    )
  use_d = bool(lc.adversarial_weight)
  tx = state_lib.create_optimizer(config)
  lr_schedule = state_lib.learning_rate_schedule(config)
  base_rng = state_lib.prng_key(config.seed)
  num_styles = style_mix.num_styles(config)
  # FLOPs: each image goes through the VGG once, and only as deep as its own loss
  # needs: G(x) to the deepest of `needed` (with gradient), the photos to the deepest
  # content layer and the style images to the deepest style layer (without). One
  # call over concat(G(x), photo, style) would take the photos to relu4_4 too and
  # backpropagate through all 3N images (the targets' rows carry zero cotangents
  # that XLA still convolves): with Johnson's layers, 4 images of 64x64, XLA:CPU
  # counts 64.7 GFLOP per loss gradient for that against 36.4 here (3.3 s vs 1.6 s).
  if needed:
    vgg_out = vgg.clone(layers=needed)
    vgg_photo = vgg.clone(layers=tuple(lc.content_layers)) if lc.content_weight else None
    vgg_style = vgg.clone(layers=tuple(lc.style_layers)) if lc.style_weight else None

  def target_features(module, vgg_params, images):
    """Frozen features of the photos or style images: no gradient reaches them."""
    if module is None:
      return None
    return jax.lax.stop_gradient(module.apply({'params': vgg_params}, images))

  def step(state: State, batch: Batch, vgg_params: Optional[Params] = None):
    photo, style = batch['photo'], batch['style']
    rngs = common.step_rngs(base_rng, state.step, 'dropout', 'noise')
    # Several styles: each row's one-hot style weights, for G and D.
    cond = (jax.nn.one_hot(batch['style_id'], num_styles),) if num_styles > 1 else ()

    def g_forward(g_params):
      return common.apply_train(generator, g_params, state.g_batch_stats, photo, *cond, rngs=rngs)

    # One G forward; its VJP serves the G update after D's (as the paired step).
    out, g_vjp, g_stats = jax.vjp(g_forward, state.g_params, has_aux=True)
    if needed:
      photo_features = target_features(vgg_photo, vgg_params, photo)
      style_features = target_features(vgg_style, vgg_params, style)

    metrics = {}
    d_params, d_stats, d_opt_state = state.d_params, state.d_batch_stats, state.d_opt_state
    d_watched = []
    if use_d:
      # D first: style images are real, outputs fake; scored in separate calls
      # (as pix2pix) since that matters for batch norm statistics.
      def d_loss_fn(d_params):
        fake_logits, stats = common.apply_train(
          discriminator, d_params, state.d_batch_stats, jax.lax.stop_gradient(out), *cond
        )
        real_logits, stats = common.apply_train(discriminator, d_params, stats, style, *cond)
        return losses.discriminator_loss(lc.gan, real_logits, fake_logits), stats

      (d_loss, d_stats), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
      d_params, d_opt_state = common.update(tx, d_grads, state.d_opt_state, state.d_params)
      metrics['d_loss'] = d_loss
      d_watched = [d_loss, optax.tree.norm(d_grads)]

    # Then G, against the updated D.
    def g_loss_fn(out):
      terms, stats = {}, d_stats
      if use_d:
        logits, stats = common.apply_train(discriminator, d_params, d_stats, out, *cond)
        terms['adversarial'] = (
          lc.adversarial_weight,
          losses.generator_adversarial_loss(lc.gan, logits),
        )
      if needed:
        out_features = vgg_out.apply({'params': vgg_params}, out)
        if lc.content_weight:
          terms['content'] = (
            lc.content_weight,
            losses.content_loss(out_features, photo_features, lc.content_layers),
          )
        if lc.style_weight:
          terms['style'] = (
            lc.style_weight,
            losses.style_loss(
              out_features, style_features, lc.style_layers, lc.style_layer_weights
            ),
          )
      if lc.tv_weight:
        terms['tv'] = (lc.tv_weight, losses.total_variation(out))
      if lc.tone_weight:
        terms['tone'] = (lc.tone_weight, common.tone_loss(out, batch['tone'], lc.tone_blur))
      total = sum(w * value for w, value in terms.values())
      return total, ({k: v for k, (_, v) in terms.items()}, stats)

    (g_loss, (g_terms, d_stats)), out_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(out)
    (g_grads,) = g_vjp(out_grad)
    g_params, g_opt_state = common.update(tx, g_grads, state.g_opt_state, state.g_params)
    g_grad_norm = optax.tree.norm(g_grads)

    finite = common.all_finite(g_loss, g_grad_norm, g_terms, d_watched)
    updated = state.replace(
      step=state.step + 1,
      g_params=g_params,
      g_batch_stats=g_stats,
      g_opt_state=g_opt_state,
      ema_params=common.ema(config.ema_decay, g_params, state.ema_params),
      d_params=d_params,
      d_batch_stats=d_stats,
      d_opt_state=d_opt_state,
    )
    metrics.update(
      {
        'g_loss': g_loss,
        **{f'g_{k}': v for k, v in g_terms.items()},
        'g_grad_norm': g_grad_norm,
        'learning_rate': lr_schedule(state.step),
        'finite': finite.astype(jnp.float32),
      }
    )
    return common.apply_if_finite(finite, updated, state), metrics

  return step
