"""Each loss against values computed by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shopstyle_jax import losses
from shopstyle_jax.models import patch_mlp


def bce(logit, label):
  return math.log(1 + math.exp(-logit)) if label == 1 else math.log(1 + math.exp(logit))


@pytest.mark.parametrize('real,fake', [(0.0, 0.0), (2.0, -1.0), (-0.5, 3.0)])
def test_vanilla_discriminator_is_half_bce_sum(real, fake):
  got = losses.discriminator_loss(
    'vanilla', jnp.full((2, 3, 3, 1), real), jnp.full((2, 3, 3, 1), fake)
  )
  assert float(got) == pytest.approx(0.5 * (bce(real, 1) + bce(fake, 0)), rel=1e-6)


def test_vanilla_at_zero_logits_is_log2():
  got = losses.discriminator_loss('vanilla', jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 4, 1)))
  assert float(got) == pytest.approx(math.log(2), rel=1e-6)


def test_vanilla_generator_is_non_saturating():
  # -log D(G(x)), not log(1 - D(G(x))): large when D confidently rejects.
  assert float(losses.generator_adversarial_loss('vanilla', jnp.array([-1.0]))) == pytest.approx(
    math.log(1 + math.e), rel=1e-6
  )
  assert float(losses.generator_adversarial_loss('vanilla', jnp.array([-20.0]))) == pytest.approx(
    20.0, rel=1e-4
  )


def test_lsgan():
  real, fake = jnp.array([2.0, 0.0]), jnp.array([-1.0, 1.0])
  # 0.5 * (mean([1, 1]) + mean([1, 1]))
  assert float(losses.discriminator_loss('lsgan', real, fake)) == pytest.approx(1.0)
  # mean([(−1−1)^2, 0]) = 2
  assert float(losses.generator_adversarial_loss('lsgan', fake)) == pytest.approx(2.0)


def test_hinge():
  real, fake = jnp.array([2.0, 0.5]), jnp.array([-1.0, 0.5])
  # mean(relu(1 - [2, .5])) + mean(relu(1 + [-1, .5])) = 0.25 + 0.75
  assert float(losses.discriminator_loss('hinge', real, fake)) == pytest.approx(1.0)
  assert float(losses.generator_adversarial_loss('hinge', fake)) == pytest.approx(0.25)


def test_unknown_gan_loss_names_allowed():
  with pytest.raises(ValueError, match='vanilla'):
    losses.discriminator_loss('wgan', jnp.zeros(1), jnp.zeros(1))


def test_mse_and_l1():
  a = jnp.array([[0.0, 1.0], [-1.0, 0.5]])
  b = jnp.array([[1.0, 1.0], [1.0, 0.0]])
  assert float(losses.mse(a, b)) == pytest.approx((1 + 0 + 4 + 0.25) / 4)
  assert float(losses.l1(a, b)) == pytest.approx((1 + 0 + 2 + 0.5) / 4)


def test_perceptual_weights_layers_and_stops_target_gradient():
  features = lambda x: {'a': x, 'b': 2.0 * x}
  a = jnp.array(np.random.RandomState(0).uniform(-1, 1, (2, 4, 4, 3)), jnp.float32)
  b = jnp.zeros_like(a)
  got = losses.perceptual(features, a, b, ('a', 'b'), (1.0, 0.5))
  assert float(got) == pytest.approx(2.0 * float(jnp.mean(jnp.abs(a))), rel=1e-6)
  grad_b = jax.grad(lambda t: losses.perceptual(features, a, t, ('a',), (1.0,)))(b)
  assert float(jnp.abs(grad_b).max()) == 0.0


# Unpaired methods: neural style, CycleGAN, CUT.


def rand(seed, shape):
  return np.random.RandomState(seed).standard_normal(shape).astype(np.float32)


def np_gram(f):
  n, h, w, c = f.shape
  f = f.astype(np.float64).reshape(n, h * w, c)
  return np.einsum('npc,npd->ncd', f, f) / (c * h * w)


def test_gram_matches_numpy_einsum():
  f = rand(0, (2, 3, 4, 5))
  got = np.asarray(losses.gram(jnp.asarray(f)))
  assert got.shape == (2, 5, 5)
  np.testing.assert_allclose(got, np_gram(f), rtol=1e-5, atol=1e-6)
  # Hand value: one example, 2 positions, C=2, f = [[1, 2], [3, 0]].
  # F^T F = [[10, 2], [2, 4]], divided by C*H*W = 4.
  f = jnp.array([[[[1.0, 2.0], [3.0, 0.0]]]])
  np.testing.assert_allclose(np.asarray(losses.gram(f))[0], [[2.5, 0.5], [0.5, 1.0]], rtol=1e-6)


def test_style_loss_matches_numpy_pairwise_and_broadcast():
  out = {'a': rand(1, (2, 4, 4, 3)), 'b': rand(2, (2, 2, 2, 5))}
  style = {'a': rand(3, (2, 4, 4, 3)), 'b': rand(4, (2, 2, 2, 5))}
  want = sum(
    w * np.mean((np_gram(out[k]) - np_gram(style[k])) ** 2) for k, w in (('a', 0.3), ('b', 2.0))
  )
  got = losses.style_loss(out, style, ('a', 'b'), (0.3, 2.0))
  assert float(got) == pytest.approx(want, rel=1e-5)
  # Example i against example i, not against the batch: swapping the style batch changes it.
  swapped = {k: v[::-1] for k, v in style.items()}
  assert float(losses.style_loss(out, swapped, ('a', 'b'), (0.3, 2.0))) != pytest.approx(
    want, rel=1e-3
  )
  # A style batch of one is compared with every output.
  one = {k: v[:1] for k, v in style.items()}
  want_one = sum(np.mean((np_gram(out[k]) - np_gram(one[k])) ** 2) for k in ('a', 'b'))
  assert float(losses.style_loss(out, one, ('a', 'b'))) == pytest.approx(want_one, rel=1e-5)


def test_style_loss_zero_for_identical_and_hand_value():
  f = {'a': rand(5, (2, 3, 3, 4))}
  assert float(losses.style_loss(f, f, ('a',), (1.0,))) == 0.0
  # 1x1 maps with C=1: gram = value^2, so 0.5 * (2^2 - 1^2)^2 = 4.5.
  got = losses.style_loss(
    {'a': jnp.full((1, 1, 1, 1), 2.0)}, {'a': jnp.ones((1, 1, 1, 1))}, ('a',), (0.5,)
  )
  assert float(got) == pytest.approx(4.5)


def test_style_loss_gradient_reaches_output_only():
  out, style = jnp.asarray(rand(6, (1, 2, 2, 3))), jnp.asarray(rand(7, (1, 2, 2, 3)))
  g_out, g_style = jax.grad(
    lambda o, s: losses.style_loss({'a': o}, {'a': s}, ('a',)), argnums=(0, 1)
  )(out, style)
  assert float(jnp.abs(g_out).max()) > 1e-3
  assert float(jnp.abs(g_style).max()) == 0.0


def test_layer_weights_must_match_layers():
  f = {'a': jnp.ones((1, 2, 2, 1))}
  with pytest.raises(ValueError, match='weights'):
    losses.style_loss(f, f, ('a',), (1.0, 2.0))


def test_content_loss_matches_numpy_and_stops_photo_gradient():
  out = {'a': rand(8, (2, 4, 4, 3)), 'b': rand(9, (2, 2, 2, 6))}
  photo = {'a': rand(10, (2, 4, 4, 3)), 'b': rand(11, (2, 2, 2, 6))}
  want = np.mean((out['a'] - photo['a']) ** 2) + np.mean((out['b'] - photo['b']) ** 2)
  assert float(losses.content_loss(out, photo, ('a', 'b'))) == pytest.approx(want, rel=1e-5)
  want = 0.5 * np.mean((out['b'] - photo['b']) ** 2)
  assert float(losses.content_loss(out, photo, ('b',), (0.5,))) == pytest.approx(want, rel=1e-5)
  g_out, g_photo = jax.grad(
    lambda o, p: losses.content_loss({'a': o}, {'a': p}, ('a',)), argnums=(0, 1)
  )(jnp.asarray(out['a']), jnp.asarray(photo['a']))
  np.testing.assert_allclose(
    np.asarray(g_out), 2 * (out['a'] - photo['a']) / out['a'].size, rtol=1e-5, atol=1e-7
  )
  assert float(jnp.abs(g_photo).max()) == 0.0


def test_total_variation_hand_value_and_numpy():
  # rows [0, 1, 3] and [2, 2, 2]: |dy| = [2, 1, 1] -> 4/3; |dx| = [1, 2, 0, 0] -> 3/4.
  x = jnp.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]).reshape(1, 2, 3, 1)
  assert float(losses.total_variation(x)) == pytest.approx(4 / 3 + 3 / 4, rel=1e-6)
  x = rand(12, (2, 5, 4, 3))
  want = np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()
  assert float(losses.total_variation(jnp.asarray(x))) == pytest.approx(want, rel=1e-5)
  with pytest.raises(ValueError, match='H, W >= 2'):
    losses.total_variation(jnp.zeros((1, 1, 4, 3)))


def test_cycle_loss_is_l1_with_gradient_to_reconstruction():
  a = jnp.array([[0.0, 1.0], [-1.0, 0.5]])
  rec = jnp.array([[1.0, 1.5], [1.0, 0.0]])
  assert float(losses.cycle_loss(a, rec)) == pytest.approx((1 + 0.5 + 2 + 0.5) / 4)
  grad = jax.grad(lambda r: losses.cycle_loss(a, r))(rec)  # sign(rec - a) / 4.
  np.testing.assert_allclose(np.asarray(grad), [[0.25, 0.25], [0.25, -0.25]])


def np_patch_nce_official(feat_q, feat_k, batch_size, nce_t):
  """patchnce.PatchNCELoss.forward restated in NumPy on [B*P, C] rows, then .mean()."""
  feat_q, feat_k = feat_q.astype(np.float64), feat_k.astype(np.float64)
  num_patches, dim = feat_q.shape
  l_pos = np.einsum('nc,nc->n', feat_q, feat_k).reshape(num_patches, 1)
  q = feat_q.reshape(batch_size, -1, dim)
  k = feat_k.reshape(batch_size, -1, dim)
  npatches = q.shape[1]
  l_neg_curbatch = q @ k.transpose(0, 2, 1)
  l_neg_curbatch[:, np.eye(npatches, dtype=bool)] = -10.0
  l_neg = l_neg_curbatch.reshape(-1, npatches)
  out = np.concatenate([l_pos, l_neg], axis=1) / nce_t
  m = out.max(axis=1, keepdims=True)
  log_softmax = out - (m + np.log(np.exp(out - m).sum(axis=1, keepdims=True)))
  return (-log_softmax[:, 0]).mean()


def unit_rows(seed, shape):
  x = rand(seed, shape)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize('tau', [0.07, 0.5])
def test_patch_nce_matches_numpy_official(tau):
  b, p, c = 3, 6, 8
  k = unit_rows(13, (b, p, c))
  q = unit_rows(14, (b, p, c)) + 2.0 * k  # Correlated, so positives matter.
  q /= np.linalg.norm(q, axis=-1, keepdims=True)
  want = np_patch_nce_official(q.reshape(b * p, c), k.reshape(b * p, c), b, tau)
  got = losses.patch_nce(jnp.asarray(q), jnp.asarray(k), tau)
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_patch_nce_hand_values():
  p, c = 4, 6
  eye = jnp.eye(p, c)[None]  # Orthonormal patches, q = k.
  # Logits per row: pos 1/tau, P-1 negatives at 0, the masked diagonal at -10/tau.
  for tau in (1.0, 0.5):
    want = math.log(math.exp(1 / tau) + (p - 1) + math.exp(-10 / tau)) - 1 / tau
    assert float(losses.patch_nce(eye, eye, tau)) == pytest.approx(want, rel=1e-6)
  # At tau = 0.07 that is log(1 + 3 e^(-1/0.07) + e^(-11/0.07)) ~ 1.9e-6.
  assert float(losses.patch_nce(eye, eye)) == pytest.approx(0.0, abs=1e-5)
  # Every patch the same unit vector: all unmasked logits equal, so the loss is
  # log(P + e^(-11/tau)); without the -10 mask it would be log(P + 1).
  same = jnp.ones((2, p, c)) / math.sqrt(c)
  assert float(losses.patch_nce(same, same, 1.0)) == pytest.approx(
    math.log(p + math.exp(-11.0)), rel=1e-6
  )


def test_patch_nce_gradient_reaches_query_only():
  q, k = jnp.asarray(unit_rows(15, (2, 5, 4))), jnp.asarray(unit_rows(16, (2, 5, 4)))
  g_q, g_k = jax.grad(losses.patch_nce, argnums=(0, 1))(q, k)
  assert float(jnp.abs(g_q).max()) > 1e-2
  assert float(jnp.abs(g_k).max()) == 0.0


def test_sample_patch_ids():
  rng = jax.random.PRNGKey(0)
  np.testing.assert_array_equal(np.asarray(losses.sample_patch_ids(rng, 5, 8)), np.arange(5))
  np.testing.assert_array_equal(np.asarray(losses.sample_patch_ids(rng, 8, 8)), np.arange(8))
  sample = jax.jit(losses.sample_patch_ids, static_argnums=(1, 2))
  ids = np.asarray(sample(rng, 100, 16))
  assert ids.shape == (16,) and ids.dtype == np.int32
  assert len(set(ids.tolist())) == 16 and ids.min() >= 0 and ids.max() < 100
  np.testing.assert_array_equal(ids, np.asarray(jax.random.permutation(rng, 100)[:16]))
  assert not np.array_equal(ids, np.asarray(sample(jax.random.PRNGKey(1), 100, 16)))
  with pytest.raises(ValueError, match='num_patches'):
    losses.sample_patch_ids(rng, 100, 0)


def test_gather_patches_uses_row_major_positions_for_every_image():
  fm = rand(17, (2, 3, 4, 5))
  ids = np.array([0, 5, 11, 7], np.int32)
  got = np.asarray(losses.gather_patches(jnp.asarray(fm), jnp.asarray(ids)))
  assert got.shape == (2, 4, 5)
  np.testing.assert_array_equal(got, fm[:, ids // 4, ids % 4, :])


def test_patch_mlp_is_dense_relu_dense_then_unit_norm():
  x0, x1 = rand(18, (2, 3, 8)), rand(19, (2, 3, 16))
  model = patch_mlp.PatchMLP()
  params = model.init(jax.random.PRNGKey(0), [x0, x1])['params']
  assert sorted(params) == ['mlp_0_0', 'mlp_0_1', 'mlp_1_0', 'mlp_1_1']
  assert params['mlp_1_0']['kernel'].shape == (16, 256)
  assert params['mlp_1_1']['kernel'].shape == (256, 256)
  # CUT's xavier_normal(gain=0.02): std 0.02 * sqrt(2 / (256 + 256)) = 1.25e-3.
  assert float(jnp.std(params['mlp_1_1']['kernel'])) == pytest.approx(1.25e-3, rel=0.05)
  assert float(jnp.abs(params['mlp_0_0']['bias']).max()) == 0.0
  out = model.apply({'params': params}, [x0, x1])
  for x, name, y in ((x0, 'mlp_0', out[0]), (x1, 'mlp_1', out[1])):
    l0, l1 = params[name + '_0'], params[name + '_1']
    h = np.maximum(x @ np.asarray(l0['kernel']) + np.asarray(l0['bias']), 0)
    h = h @ np.asarray(l1['kernel']) + np.asarray(l1['bias'])
    want = h / (np.linalg.norm(h, axis=-1, keepdims=True) + 1e-7)
    assert y.shape == (2, 3, 256) and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-4, atol=1e-6)
    # Not exactly 1: at CUT's init ||h|| ~ 1e-3, so the 1e-7 in the divisor shows.
    np.testing.assert_allclose(np.linalg.norm(np.asarray(y), axis=-1), 1.0, rtol=1e-3)
  plain = patch_mlp.PatchMLP(use_mlp=False)
  y = plain.apply({}, [x0])[0]
  np.testing.assert_allclose(
    np.asarray(y), x0 / (np.linalg.norm(x0, axis=-1, keepdims=True) + 1e-7), rtol=1e-6
  )
