"""Pure loss functions. Discriminator outputs are logits; images are in [-1, 1]."""

from typing import Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

GAN_LOSSES = ('vanilla', 'lsgan', 'hinge')


def _example_mean(per_logit: jax.Array, weights: Optional[jax.Array]) -> jax.Array:
  """The mean over every logit, or with `weights` [N] the mean over examples of
  weight times that example's mean (a weight of 0 leaves the example out)."""
  if weights is None:
    return jnp.mean(per_logit)
  return jnp.mean(weights * jnp.mean(per_logit, axis=tuple(range(1, per_logit.ndim))))


def discriminator_loss(
  kind: str,
  real_logits: jax.Array,
  fake_logits: jax.Array,
  weights: Optional[jax.Array] = None,
) -> jax.Array:
  """D's loss on real pairs (label 1) and generated pairs (label 0).

  'vanilla' is pix2pix's BCE halved, 0.5 * (BCE(D(x,y), 1) + BCE(D(x,G(x)), 0));
  'lsgan' is 0.5 * (mean((D_real - 1)^2) + mean(D_fake^2)); 'hinge' is
  mean(relu(1 - D_real)) + mean(relu(1 + D_fake)). `weights` [N] weighs each
  example's term (multi-style: 0 for a style D does not judge).
  """
  mean = lambda x: _example_mean(x, weights)
  if kind == 'vanilla':
    return 0.5 * (
      mean(optax.sigmoid_binary_cross_entropy(real_logits, 1.0))
      + mean(optax.sigmoid_binary_cross_entropy(fake_logits, 0.0))
    )
  if kind == 'lsgan':
    return 0.5 * (mean((real_logits - 1.0) ** 2) + mean(fake_logits**2))
  if kind == 'hinge':
    return mean(jax.nn.relu(1.0 - real_logits)) + mean(jax.nn.relu(1.0 + fake_logits))
  raise ValueError(f'Unknown config.loss.gan {kind!r}; allowed: {GAN_LOSSES}.')


def generator_adversarial_loss(
  kind: str, fake_logits: jax.Array, weights: Optional[jax.Array] = None
) -> jax.Array:
  """G's adversarial term: non-saturating BCE(D(x,G(x)), 1), LSGAN or hinge; the
  mean over every logit, or with `weights` [N] (one per example, e.g. its style's
  weight) the mean over examples of weight times that example's mean."""
  if kind == 'vanilla':
    per_logit = optax.sigmoid_binary_cross_entropy(fake_logits, 1.0)
  elif kind == 'lsgan':
    per_logit = (fake_logits - 1.0) ** 2
  elif kind == 'hinge':
    per_logit = -fake_logits
  else:
    raise ValueError(f'Unknown config.loss.gan {kind!r}; allowed: {GAN_LOSSES}.')
  return _example_mean(per_logit, weights)


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-pixel mean squared error, the reference method's L_rec."""
  return jnp.mean((a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2)


def l1(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-element mean absolute error, in float32."""
  return jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))


def per_style_reconstruction(
  fake: jax.Array,
  target: jax.Array,
  style: jax.Array,
  mse_weights: jax.Array,
  l1_weights: jax.Array,
) -> tuple[jax.Array, jax.Array]:
  """Each example's own style's reconstruction loss, for multi-style batches.

  Example n in style s = style[n] costs mse_weights[s] * MSE_n + l1_weights[s] * L1_n
  (its per-pixel means): each style keeps its single-style L_rec.

  Args:
    fake, target: [N, H, W, C].
    style: int [N], each example's style index.
    mse_weights, l1_weights: float [S], the weights of each style's terms.
  Returns:
    (the mean over the batch, the mean of each style's examples [S]; 0 for a
    style with none).
  """
  diff = fake.astype(jnp.float32) - target.astype(jnp.float32)
  axes = tuple(range(1, diff.ndim))
  per_example = mse_weights[style] * jnp.mean(diff**2, axis=axes) + l1_weights[style] * jnp.mean(
    jnp.abs(diff), axis=axes
  )
  num_styles = mse_weights.shape[0]
  sums = jax.ops.segment_sum(per_example, style, num_segments=num_styles)
  counts = jax.ops.segment_sum(jnp.ones_like(per_example), style, num_segments=num_styles)
  return jnp.mean(per_example), sums / jnp.maximum(counts, 1.0)


def perceptual(
  features: Callable[[jax.Array], Mapping[str, jax.Array]],
  a: jax.Array,
  b: jax.Array,
  layers: Sequence[str],
  weights: Sequence[float],
) -> jax.Array:
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


# Unpaired methods: neural style (Johnson et al. 2016), CycleGAN, CUT/FastCUT.

# Full float32 products: on GPU/TPU the default matmul precision (TF32/bf16
# passes) would blur Gram sums over H*W positions and PatchNCE logits scaled by 1/tau.
_HIGHEST = jax.lax.Precision.HIGHEST


def _layer_weights(layers: Sequence[str], weights: Optional[Sequence[float]]) -> Sequence[float]:
  if weights is None:
    return (1.0,) * len(layers)
  if len(weights) != len(layers):
    raise ValueError(f'{len(layers)} layers {tuple(layers)} but {len(weights)} weights.')
  return weights


def gram(features: jax.Array) -> jax.Array:
  """Per-example Gram matrix F^T F / (C*H*W): [N, H, W, C] -> [N, C, C], float32.

  F is one example's [H*W, C] feature matrix; entry (c, d) is the mean over
  positions of f_c * f_d divided by C (Johnson et al.'s normalisation).
  """
  n, h, w, c = features.shape
  f = features.astype(jnp.float32).reshape(n, h * w, c)
  return jnp.einsum('npc,npd->ncd', f, f, precision=_HIGHEST) / (c * h * w)


def style_loss(
  features_out: Mapping[str, jax.Array],
  features_style: Mapping[str, jax.Array],
  layers: Sequence[str],
  layer_weights: Optional[Sequence[float]] = None,
) -> jax.Array:
  """sum_l w_l * mean((gram(out_l) - gram(style_l))^2), mean over [N, C, C].

  Example i of the output is compared with example i of the style batch; a
  style batch of one example broadcasts to every output. The style side
  carries no gradient. Weights default to 1.0 per layer. (Johnson et al. use
  the squared Frobenius norm, i.e. this times C_l^2; the weights absorb it.)
  """
  total = jnp.zeros((), jnp.float32)
  for name, w in zip(layers, _layer_weights(layers, layer_weights)):
    g_out = gram(features_out[name])
    g_style = jax.lax.stop_gradient(gram(features_style[name]))
    if g_style.shape[0] not in (1, g_out.shape[0]):
      raise ValueError(
        f'Style batch {g_style.shape[0]} at {name!r} is neither 1 nor the '
        f'output batch {g_out.shape[0]}.'
      )
    total += w * jnp.mean((g_out - g_style) ** 2)
  return total


def content_loss(
  features_out: Mapping[str, jax.Array],
  features_photo: Mapping[str, jax.Array],
  layers: Sequence[str],
  layer_weights: Optional[Sequence[float]] = None,
) -> jax.Array:
  """sum_l w_l * mean((out_l - photo_l)^2) over [N, H, W, C] (Johnson et al.'s feature loss).

  The photo side carries no gradient. Weights default to 1.0 per layer.
  """
  total = jnp.zeros((), jnp.float32)
  for name, w in zip(layers, _layer_weights(layers, layer_weights)):
    total += w * mse(features_out[name], jax.lax.stop_gradient(features_photo[name]))
  return total


def total_variation(images: jax.Array) -> jax.Array:
  """Anisotropic TV of [N, H, W, C] images: mean|dy| + mean|dx|, in float32.

  dy = x[:, 1:] - x[:, :-1] (N*(H-1)*W*C elements) and dx = x[:, :, 1:] -
  x[:, :, :-1] (N*H*(W-1)*C elements); each is averaged over its own elements,
  then the two means are added.
  """
  if images.ndim != 4 or images.shape[1] < 2 or images.shape[2] < 2:
    raise ValueError(f'total_variation needs [N, H, W, C] with H, W >= 2, got {images.shape}.')
  x = images.astype(jnp.float32)
  dy = x[:, 1:, :, :] - x[:, :-1, :, :]
  dx = x[:, :, 1:, :] - x[:, :, :-1, :]
  return jnp.mean(jnp.abs(dy)) + jnp.mean(jnp.abs(dx))


def cycle_loss(a: jax.Array, a_reconstructed: jax.Array) -> jax.Array:
  """CycleGAN's cycle-consistency term: mean|a - F(G(a))| (torch's L1Loss), i.e. `l1`.

  No stop-gradient: the gradient reaches both generators through the reconstruction.
  """
  return l1(a, a_reconstructed)


def patch_nce(feat_q: jax.Array, feat_k: jax.Array, tau: float = 0.07) -> jax.Array:
  """CUT's PatchNCE loss, mean over the B*P query patches.

  Args:
    feat_q: [B, P, C] projected, L2-normalised patch features of the output G(x).
    feat_k: [B, P, C] same for the input x at the same P positions; no gradient.
    tau: temperature (CUT's nce_T).

  For query (b, p) the logits are [q.k_p, q.k_j for j = 0..P-1] / tau, with the
  negative j = p (the positive again) set to -10 before dividing, and the loss
  is the cross-entropy with target 0. Negatives come only from the same image
  (CUT's nce_includes_all_negatives_from_minibatch=False).
  """
  if feat_q.ndim != 3 or feat_q.shape != feat_k.shape:
    raise ValueError(
      f'patch_nce expects equal [B, P, C] shapes, got {feat_q.shape} and {feat_k.shape}.'
    )
  q = feat_q.astype(jnp.float32)
  k = jax.lax.stop_gradient(feat_k.astype(jnp.float32))
  num_patches = q.shape[1]
  l_pos = jnp.einsum('bpc,bpc->bp', q, k, precision=_HIGHEST)[..., None]
  l_neg = jnp.einsum('bpc,bjc->bpj', q, k, precision=_HIGHEST)
  l_neg = jnp.where(jnp.eye(num_patches, dtype=bool), -10.0, l_neg)
  logits = jnp.concatenate([l_pos, l_neg], axis=-1) / tau
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[..., 0])


def sample_patch_ids(rng: jax.Array, num_positions: int, num_patches: int) -> jax.Array:
  """Indices of the positions PatchNCE compares: [min(num_positions, num_patches)] int32.

  All positions 0..num_positions-1 in order when num_positions <= num_patches,
  else the first num_patches of a random permutation (distinct positions, as
  CUT's PatchSampleF). Both counts are static Python ints (jit: static args).
  """
  if num_patches < 1:
    raise ValueError(f'num_patches must be >= 1, got {num_patches}.')
  if num_positions <= num_patches:
    return jnp.arange(num_positions, dtype=jnp.int32)
  return jax.random.permutation(rng, num_positions)[:num_patches].astype(jnp.int32)


def gather_patches(feature_map: jax.Array, ids: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, P, C]: the features at flat positions ids (id = h * W + w).

  The same ids serve every image of the batch, and the caller reuses the key
  side's ids for the query side, as CUT does.
  """
  b, h, w, c = feature_map.shape
  return jnp.take(feature_map.reshape(b, h * w, c), ids, axis=1)
