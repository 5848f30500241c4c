"""Pure loss functions. Discriminator outputs are logits; images are in [-1, 1]."""

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

GAN_LOSSES = ('vanilla', 'lsgan', 'hinge')


def discriminator_loss(kind: str, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """D's loss on real pairs (label 1) and generated pairs (label 0).

  'vanilla' is pix2pix's BCE halved, 0.5 * (BCE(D(x,y), 1) + BCE(D(x,G(x)), 0));
  'lsgan' is 0.5 * (mean((D_real - 1)^2) + mean(D_fake^2)); 'hinge' is
  mean(relu(1 - D_real)) + mean(relu(1 + D_fake)).
  """
  if kind == 'vanilla':
    return 0.5 * (optax.sigmoid_binary_cross_entropy(real_logits, 1.0).mean()
                  + optax.sigmoid_binary_cross_entropy(fake_logits, 0.0).mean())
  if kind == 'lsgan':
    return 0.5 * (jnp.mean((real_logits - 1.0) ** 2) + jnp.mean(fake_logits ** 2))
  if kind == 'hinge':
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
  raise ValueError(f'Unknown config.loss.gan {kind!r}; allowed: {GAN_LOSSES}.')


def generator_adversarial_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
  """G's adversarial term: non-saturating BCE(D(x,G(x)), 1), LSGAN or hinge."""
  if kind == 'vanilla':
    return optax.sigmoid_binary_cross_entropy(fake_logits, 1.0).mean()
  if kind == 'lsgan':
    return jnp.mean((fake_logits - 1.0) ** 2)
  if kind == 'hinge':
    return -jnp.mean(fake_logits)
  raise ValueError(f'Unknown config.loss.gan {kind!r}; allowed: {GAN_LOSSES}.')


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-pixel mean squared error, the reference method's L_rec."""
  return jnp.mean((a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2)


def l1(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))


def perceptual(features: Callable[[jax.Array], Mapping[str, jax.Array]], a: jax.Array,
               b: jax.Array, layers: Sequence[str], weights: Sequence[float]) -> jax.Array:
  """sum_l w_l * mean|phi_l(a) - phi_l(b)| (pix2pixHD's VGG loss).

  `features` maps images to a dict of feature maps (the frozen VGG19). Both
  images go through it in one call; the target's features carry no gradient.
  """
  n = a.shape[0]
  feats = features(jnp.concatenate([a, jax.lax.stop_gradient(b)], axis=0))
  total = jnp.zeros((), jnp.float32)
  for name, w in zip(layers, weights):
    fa, fb = feats[name][:n], jax.lax.stop_gradient(feats[name][n:])
    total += w * l1(fa, fb)
  return total
