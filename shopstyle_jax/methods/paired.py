"""The paired method (the pix2pix family): G(photo) -> target, one pure step.

A step is pix2pix's `optimize_parameters`: one generator forward, a
discriminator update on (photo, target) vs (photo, G(photo)), then a generator
update against the updated discriminator that reuses the same forward pass
(`jax.vjp`), so no network runs twice. L_G = adversarial + MSE and/or L1
(the reconstruction L_rec) + VGG perceptual, and the content (against the
photo), Gram style (against the target) and total-variation terms any method
may use. Multi-style runs (`config.data.styles`) condition G and D on each
example's style (batch['style_id'], one-hot) and replace the MSE/L1 terms by each
style's own (`losses.per_style_reconstruction`, weights from
`config.loss.per_style`), logged per style. If any loss term or gradient is NaN/Inf the step's D and G updates are
both skipped (only `step` advances) and the `finite` metric is 0: the loop
counts such steps. The state is `state.TrainState`.
"""

from typing import Any, NamedTuple, Optional

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

Batch = dict[str, jax.Array]
StepFn = common.StepFn


class Models(NamedTuple):
  """G(photo) and the conditional PatchGAN D(photo, image)."""

  G: nn.Module
  D: nn.Module


def build_models(config: ml_collections.ConfigDict, dtype: Any = jnp.float32) -> Models:
  n = style_mix.num_styles(config)
  return Models(
    generators.create_generator(config.model, dtype=dtype, num_styles=n),
    discriminators.create_discriminator(config.model, dtype=dtype, num_styles=n),
  )


def style_loss_weights(config: ml_collections.ConfigDict, key: str = 'mse_weight') -> list[float]:
  """Each style's weight of the term `key` (mse_weight, l1_weight or
  adversarial_weight), in `config.data.styles` order: `config.loss.per_style[name]`,
  else `config.loss.<key>`."""
  lc = config.loss
  per_style = lc.get('per_style') or {}
  return [
    float((per_style.get(name) or {}).get(key, lc[key])) for name in style_mix.config_styles(config)
  ]


def create_state(
  config: ml_collections.ConfigDict, models: Models, rng: jax.Array
) -> state_lib.TrainState:
  return state_lib.create_train_state(config, models.G, models.D, rng)


def make_step(
  config: ml_collections.ConfigDict, models: Models, vgg: Optional[nn.Module] = None
) -> StepFn:
  return make_train_step(config, models.G, models.D, vgg)


def make_train_step(
  config: ml_collections.ConfigDict,
  generator: nn.Module,
  discriminator: nn.Module,
  vgg: Optional[nn.Module] = None,
) -> StepFn:
  """Builds the step for these models and loss weights (weights are static)."""
  lc = config.loss
  tx = state_lib.create_optimizer(config)
  lr_schedule = state_lib.learning_rate_schedule(config)
  base_rng = state_lib.prng_key(config.seed)
  styles = style_mix.config_styles(config)
  multi = len(styles) > 1
  mse_weights, l1_weights = (
    jnp.asarray(style_loss_weights(config, k), jnp.float32) for k in ('mse_weight', 'l1_weight')
  )
  adversarial_weights = style_loss_weights(config, 'adversarial_weight')
  # Per-style adversarial weights only where a style sets its own (else the plain mean).
  per_style_adversarial = multi and len(set(adversarial_weights)) > 1
  if common.vgg_layers(config) and vgg is None:
    raise ValueError(
      'config.loss.perceptual_weight, content_weight or style_weight > 0 needs the VGG19 module.'
    )

  def d_apply(params, stats, photo, image, style=None):
    """D in training mode; returns logits and the updated batch stats."""
    cond = (style,) if multi else ()
    logits, mutated = discriminator.apply(
      state_lib.variables(params, stats), photo, image, *cond, train=True, mutable=['batch_stats']
    )
    return logits, mutated.get('batch_stats', {})

  def step(state: state_lib.TrainState, batch: Batch, vgg_params=None):
    photo, target = batch['photo'], batch['target']
    # Multi-style: each example's style, one-hot [N, S] (G's and D's style weights).
    style = jax.nn.one_hot(batch['style_id'], len(styles)) if multi else None
    cond = (style,) if multi else ()
    rng = jax.random.fold_in(base_rng, state.step)
    dropout_rng, noise_rng = jax.random.split(rng)
    # Each example's adversarial weight; D judges only the examples whose weight
    # is not 0 (e.g. identity, whose fakes it could tell from the photo alone).
    g_adv_weights = d_weights = None
    if per_style_adversarial:
      g_adv_weights = jnp.asarray(adversarial_weights, jnp.float32)[batch['style_id']]
      d_weights = (g_adv_weights > 0).astype(jnp.float32)

    def g_forward(g_params):
      fake, mutated = generator.apply(
        state_lib.variables(g_params, state.g_batch_stats),
        photo,
        *cond,
        train=True,
        rngs={'dropout': dropout_rng, 'noise': noise_rng},
        mutable=['batch_stats'],
      )
      return fake, mutated.get('batch_stats', {})

    fake, g_vjp, g_stats = jax.vjp(g_forward, state.g_params, has_aux=True)

    # Discriminator update. pix2pix scores fake and real pairs in separate
    # calls, which matters for batch norm statistics.
    def d_loss_fn(d_params):
      fake_logits, stats = d_apply(
        d_params, state.d_batch_stats, photo, jax.lax.stop_gradient(fake), style
      )
      real_logits, stats = d_apply(d_params, stats, photo, target, style)
      loss = losses.discriminator_loss(lc.gan, real_logits, fake_logits, d_weights)
      return loss, (stats, real_logits.mean(), fake_logits.mean())

    (d_loss, (d_stats, d_real, d_fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
      state.d_params
    )
    d_params, d_opt_state = common.update(tx, d_grads, state.d_opt_state, state.d_params)

    # Generator update against the updated discriminator.
    def g_loss_fn(fake):
      terms, stats = {}, d_stats
      if per_style_adversarial:
        logits, stats = d_apply(d_params, d_stats, photo, fake, style)
        terms['adversarial'] = (
          1.0,
          losses.generator_adversarial_loss(lc.gan, logits, g_adv_weights),
        )
      elif adversarial_weights[0]:
        logits, stats = d_apply(d_params, d_stats, photo, fake, style)
        terms['adversarial'] = (
          adversarial_weights[0],
          losses.generator_adversarial_loss(lc.gan, logits),
        )
      per_style = None
      if multi:
        rec, per_style = losses.per_style_reconstruction(
          fake, target, batch['style_id'], mse_weights, l1_weights
        )
        terms['reconstruction'] = (1.0, rec)
      else:
        if lc.mse_weight:
          terms['mse'] = (lc.mse_weight, losses.mse(fake, target))
        if lc.l1_weight:
          terms['l1'] = (lc.l1_weight, losses.l1(fake, target))
      features = lambda x: vgg.apply({'params': vgg_params}, x)
      if lc.perceptual_weight:
        terms['perceptual'] = (
          lc.perceptual_weight,
          losses.perceptual(features, fake, target, lc.vgg_layers, lc.vgg_layer_weights),
        )
      if lc.content_weight or lc.style_weight:
        fake_features = features(fake)
        if lc.content_weight:
          terms['content'] = (
            lc.content_weight,
            losses.content_loss(fake_features, features(photo), lc.content_layers),
          )
        if lc.style_weight:
          terms['style'] = (
            lc.style_weight,
            losses.style_loss(
              fake_features, features(target), lc.style_layers, lc.style_layer_weights
            ),
          )
      if lc.tv_weight:
        terms['tv'] = (lc.tv_weight, losses.total_variation(fake))
      total = sum(w * value for w, value in terms.values())
      return total, ({k: v for k, (_, v) in terms.items()}, stats, per_style)

    (g_loss, (g_terms, d_stats, per_style)), g_fake_grad = jax.value_and_grad(
      g_loss_fn, has_aux=True
    )(fake)
    (g_grads,) = g_vjp(g_fake_grad)
    g_params, g_opt_state = common.update(tx, g_grads, state.g_opt_state, state.g_params)
    ema_params = common.ema(config.ema_decay, g_params, state.ema_params)

    g_grad_norm, d_grad_norm = optax.tree.norm(g_grads), optax.tree.norm(d_grads)
    watched = [d_loss, g_loss, g_grad_norm, d_grad_norm, *g_terms.values()]
    finite = common.all_finite(*watched)
    updated = state.replace(
      step=state.step + 1,
      g_params=g_params,
      g_batch_stats=g_stats,
      g_opt_state=g_opt_state,
      d_params=d_params,
      d_batch_stats=d_stats,
      d_opt_state=d_opt_state,
      ema_params=ema_params,
    )
    new_state = common.apply_if_finite(finite, updated, state)

    metrics = {
      'd_loss': d_loss,
      'd_real_logit': d_real,
      'd_fake_logit': d_fake,
      'g_loss': g_loss,
      **{f'g_{k}': v for k, v in g_terms.items()},
      **({f'g_reconstruction_{s}': per_style[i] for i, s in enumerate(styles)} if multi else {}),
      'g_grad_norm': g_grad_norm,
      'd_grad_norm': d_grad_norm,
      'learning_rate': lr_schedule(state.step),
      'finite': finite.astype(jnp.float32),
    }
    return new_state, metrics

  return step
