"""CUT / FastCUT's train step: 1 vs 8 devices, PatchNCE against a hand computation,
FastCUT's flip, skipped non-finite steps, batch norm with the VGG and TV terms, and
the head's finite gradient for an all-zero patch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_same_training
from conftest import load_config
from conftest import run_steps as run_data_parallel
from shopstyle_jax import losses
from shopstyle_jax import methods
from shopstyle_jax import state as state_lib
from shopstyle_jax.methods import common
from shopstyle_jax.methods import cut


def small_config(method='cut', seed=0):
  """Tiny CUT (nce_identity, weight 1) or FastCUT (flip, weight 10); LSGAN, instance norm."""
  config = load_config('tiny')
  config.method = method
  config.seed = seed
  config.batch_size = 8
  config.image_size = 32
  config.model.update(
    generator='resnet',
    width=4,
    resnet_blocks=2,
    norm='instance',
    dropout=0.0,
    upsample='resize_conv',
    disc_width=4,
    disc_layers=2,
    nce_mlp_channels=16,
  )
  # 100 patches: the 38x38 'pad' and 16x16 'down1' taps are sampled, the 8x8 ones taken whole.
  config.loss.update(gan='lsgan', nce_patches=100)
  if method == 'cut':
    config.loss.update(nce_weight=1.0, nce_identity=True, flip_equivariance=False)
  else:
    config.loss.update(nce_weight=10.0, nce_identity=False, flip_equivariance=True)
  return config


def build(config):
  models = methods.get(config.method).build_models(config, jnp.float32)
  state = jax.jit(lambda k: cut.create_state(config, models, k))(state_lib.prng_key(config.seed))
  return models, jax.device_get(state)


def batches(config, n, seed=0):
  rng = np.random.RandomState(seed)
  shape = (config.batch_size, config.image_size, config.image_size, 3)
  return [
    {
      'photo': rng.uniform(-1, 1, shape).astype(np.float32),
      'style': rng.uniform(-1, 1, shape).astype(np.float32),
    }
    for _ in range(n)
  ]


def run_steps(config, models, state, data, devices):
  return run_data_parallel(cut.make_step(config, models), state, data, devices)


def seed_flipping(pattern):
  """The first seed whose FastCUT flip draws for steps 0, 1, ... follow `pattern`."""
  for seed in range(100):
    config = small_config('fastcut', seed)
    if [bool(cut.flip_drawn(config, jnp.int32(s))) for s in range(len(pattern))] == pattern:
      return seed
  raise AssertionError(f'no seed below 100 flips as {pattern}')


@pytest.mark.slow  # Compile-bound, as every method's 1-vs-8 test.
@pytest.mark.parametrize('method', ['cut', 'fastcut'])
def test_one_and_eight_devices_agree(method):
  """CUT with one style; FastCUT with two (config.data.style_folders): G and D read
  batch['style_id']."""
  assert jax.device_count() == 8
  # FastCUT: the first step flipped, the second not.
  config = small_config(method, seed_flipping([True, False]) if method == 'fastcut' else 0)
  conditioned = method == 'fastcut'
  if conditioned:
    config.data.styles, config.data.style = ('ink', 'wash'), 'ink'
  models, state = build(config)
  data = batches(config, 2)
  if conditioned:
    assert state.d_params['style_projection'].shape[0] == 2
    for batch in data:
      batch['style_id'] = (np.arange(config.batch_size) % 2).astype(np.int32)
  s1, h1 = run_steps(config, models, state, data, jax.devices()[:1])
  s8, h8 = run_steps(config, models, state, data, jax.devices())
  expected = {
    'd_loss',
    'g_loss',
    'g_adversarial',
    'g_nce',
    'g_grad_norm',
    'd_grad_norm',
    'h_grad_norm',
    'learning_rate',
    'finite',
  }
  expected |= {'g_nce_identity'} if method == 'cut' else {'flipped'}
  assert expected <= set(h1[0])
  # The first step sees the same weights on both topologies: only the order of
  # the reductions differs. The second sees weights one Adam step apart.
  for m1, m8, tol in zip(h1, h8, (dict(rel=1e-4, abs=1e-5), dict(rel=1e-2, abs=1e-3))):
    assert m1['finite'] == m8['finite'] == 1.0
    for k in m1:
      assert m8[k] == pytest.approx(m1[k], **tol), k
  if method == 'fastcut':
    assert [m['flipped'] for m in h1] == [1.0, 0.0]
  assert int(s1.step) == int(s8.step) == 2
  # Tiny networks (G has 13k weights): one weight whose gradient is rounding
  # noise moves by +-lr on either topology and alone makes 2/sqrt(13k) ~ 2% of
  # the movement per step (CUT's runs here differ by 7.6%, from a few such
  # weights; FastCUT's by 1e-5). A lost device share differs by 37-72%.
  for name in ('g_params', 'd_params', 'h_params'):
    assert_same_training(getattr(s8, name), getattr(s1, name), getattr(state, name), rtol=0.15)
  if conditioned:  # The style matters: the styles swapped give other losses.
    swapped = [dict(b, style_id=1 - b['style_id']) for b in data[:1]]
    _, hs = run_steps(config, models, state, swapped, jax.devices()[:1])
    assert hs[0]['d_loss'] != pytest.approx(h1[0]['d_loss'], rel=1e-6)


def hand_nce(config, models, state, query_images, key_images, term, flip=False):
  """PatchNCE outside the step: encode both sides with the same params, gather at the
  step's patch ids, project with the head (one MLP per tap), losses.patch_nce, mean over
  the taps."""
  g, h = models.G, models.H
  taps = cut.nce_layers(config)
  encode = lambda x: g.apply({'params': state.g_params}, x, train=True, taps=taps, method=g.encode)
  feat_q, feat_k = encode(query_images), encode(key_images)
  if flip:
    feat_q = [jnp.flip(f, axis=2) for f in feat_q]
  ids = cut.patch_ids(config, state.step, term, [f.shape for f in feat_k])
  assert len(ids) == len(feat_k) == len(taps or g.nce_taps)
  for f, i in zip(feat_k, ids):
    assert i.shape == (min(f.shape[1] * f.shape[2], config.loss.nce_patches),)
  head = lambda feats: h.apply(
    {'params': state.h_params}, [losses.gather_patches(f, i) for f, i in zip(feats, ids)]
  )
  per_layer = [
    losses.patch_nce(q, k, config.loss.nce_temperature) for q, k in zip(head(feat_q), head(feat_k))
  ]
  return float(np.mean(per_layer))


def test_nce_layers_choose_the_taps_and_their_heads():
  """`model.nce_layers` (also comma-separated, as the official flag): one head per
  chosen tap, sized by its channels, and `hand_nce` encodes those taps."""
  config = small_config('cut')
  config.model.nce_layers = ('down1,block1',)
  assert cut.nce_layers(config) == ('down1', 'block1')
  models, state = build(config)
  assert sorted(state.h_params) == [f'mlp_{t}_{i}' for t in range(2) for i in (0, 1)]
  # down1: 2*width channels; block1: 4*width (width 4).
  assert state.h_params['mlp_0_0']['kernel'].shape == (8, 16)
  assert state.h_params['mlp_1_0']['kernel'].shape == (16, 16)
  x = batches(config, 1)[0]['photo']
  feats = models.G.apply(
    {'params': state.g_params}, x, train=True, taps=cut.nce_layers(config), method=models.G.encode
  )
  assert [f.shape[-1] for f in feats] == [8, 16]


def test_nce_matches_a_hand_computation():
  config = small_config('cut')
  config.ema_decay = 0.5  # As test_nonfinite_step_is_skipped: one compiled step for both.
  models, state = build(config)
  assert sorted(state.h_params) == sorted(f'mlp_{t}_{i}' for t in range(5) for i in (0, 1))
  batch = batches(config, 1)[0]
  new, metrics = jax.jit(cut.make_step(config, models))(state, batch, None)
  g = models.G
  fake = g.apply({'params': state.g_params}, batch['photo'], train=True)
  idt = g.apply({'params': state.g_params}, batch['style'], train=True)
  nce = hand_nce(config, models, state, fake, batch['photo'], cut.NCE_TERM)
  nce_y = hand_nce(config, models, state, idt, batch['style'], cut.NCE_IDENTITY_TERM)
  assert float(metrics['g_nce']) == pytest.approx(nce, rel=1e-4)
  assert float(metrics['g_nce_identity']) == pytest.approx(nce_y, rel=1e-4)
  # The official loss_G = loss_G_GAN + (loss_NCE + loss_NCE_Y) * 0.5.
  total = metrics['g_adversarial'] + config.loss.nce_weight * 0.5 * (nce + nce_y)
  assert float(metrics['g_loss']) == pytest.approx(float(total), rel=1e-5)
  # The adversarial term is scored by the updated D.
  logits = models.D.apply({'params': new.d_params}, fake, train=True)
  assert float(metrics['g_adversarial']) == pytest.approx(
    float(losses.generator_adversarial_loss('lsgan', logits)), rel=1e-4
  )
  assert float(metrics['finite']) == 1.0
  jax.tree.map(
    lambda e, p0, p1: np.testing.assert_allclose(e, 0.5 * p0 + 0.5 * p1, atol=1e-7),
    new.ema_params,
    state.ema_params,
    new.g_params,
  )
  assert new.generator_variables()['params'] is new.ema_params
  assert new.generator_variables(use_ema=False) == {'params': new.g_params}


@pytest.mark.parametrize('flipped', [True, pytest.param(False, marks=pytest.mark.slow)])
def test_fastcut_flip(flipped):
  config = small_config('fastcut', seed_flipping([flipped]))
  config.loss.update(tone_weight=2.0, tone_blur=1.0)
  models, state = build(config)
  batch = batches(config, 1)[0]
  batch['tone'] = np.random.RandomState(1).uniform(-1, 1, batch['photo'].shape).astype(np.float32)
  new, metrics = jax.jit(cut.make_step(config, models))(state, batch, None)
  assert float(metrics['flipped']) == float(flipped)
  g, photo = models.G, batch['photo']
  g_input = jnp.flip(photo, axis=2) if flipped else photo
  fake = g.apply({'params': state.g_params}, g_input, train=True)
  # D scores G(flip(photo)) as it comes out of G ...
  logits = models.D.apply({'params': new.d_params}, fake, train=True)
  assert float(metrics['g_adversarial']) == pytest.approx(
    float(losses.generator_adversarial_loss('lsgan', logits)), rel=1e-4
  )
  # ... and PatchNCE compares its encoder features, flipped back, with the photo's.
  nce = hand_nce(config, models, state, fake, photo, cut.NCE_TERM, flip=flipped)
  assert float(metrics['g_nce']) == pytest.approx(nce, rel=1e-4)
  # The tone target is flipped with the photo G saw.
  tone_target = jnp.flip(batch['tone'], axis=2) if flipped else batch['tone']
  tone = float(common.tone_loss(fake, tone_target, 1.0))
  assert float(metrics['g_tone']) == pytest.approx(tone, rel=1e-4)
  assert float(metrics['g_loss']) == pytest.approx(
    float(metrics['g_adversarial']) + 10.0 * nce + 2.0 * tone, rel=1e-5
  )
  if flipped:  # Not the unflipped semantics.
    assert tone != pytest.approx(float(common.tone_loss(fake, batch['tone'], 1.0)), rel=1e-3)
    other = g.apply({'params': state.g_params}, photo, train=True)
    assert float(metrics['g_nce']) != pytest.approx(
      hand_nce(config, models, state, other, photo, cut.NCE_TERM), rel=1e-3
    )


def test_nonfinite_step_is_skipped():
  config = small_config('cut')
  config.ema_decay = 0.5
  models, state = build(config)
  old = jax.tree.map(np.array, state)
  batch = batches(config, 1)[0]
  batch['photo'][0, 0, 0, 0] = np.nan
  step = jax.jit(cut.make_step(config, models))
  new, metrics = step(state, batch, None)
  assert float(metrics['finite']) == 0.0
  assert int(new.step) == 1
  for name in (
    'g_params',
    'g_opt_state',
    'd_params',
    'd_opt_state',
    'h_params',
    'h_opt_state',
    'ema_params',
    'g_batch_stats',
    'd_batch_stats',
  ):
    jax.tree.map(np.testing.assert_array_equal, getattr(old, name), getattr(new, name))
  newer, metrics = step(new, batches(config, 1, seed=1)[0], None)
  assert float(metrics['finite']) == 1.0 and int(newer.step) == 2


def test_head_gradient_is_finite_for_a_dead_patch():
  # A patch whose MLP output is exactly zero (all ReLUs off) would make sqrt's
  # slope at 0 turn the whole gradient into NaN, and every step be skipped.
  from shopstyle_jax.models import patch_mlp  # pylint: disable=g-import-not-at-top

  x = jnp.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]])
  np.testing.assert_allclose(patch_mlp.l2_normalize(x), [[0, 0, 0], [0.6, 0, 0.8]], atol=1e-6)
  grad = jax.grad(lambda v: jnp.sum(patch_mlp.l2_normalize(v) * jnp.arange(3.0)))(x)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad[0]) == 0)


@pytest.mark.slow  # Compile-bound: a third CUT step with VGG.
def test_batch_norm_and_vgg_terms():
  # Batch norm: G normalises over photo + style in the one forward, as the official.
  from shopstyle_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top

  config = small_config('cut')
  config.model.norm = 'batch'
  config.loss.update(
    tv_weight=0.5,
    content_weight=2.0,
    content_layers=('relu1_2',),
    style_weight=3.0,
    style_layers=('relu1_1', 'relu1_2'),
    style_layer_weights=(1.0, 0.5),
  )
  layers = ('relu1_1', 'relu1_2')
  vgg, vgg_params = vgg_lib.VGG19(layers=layers), vgg_lib.init_random_params(layers)
  models, state = build(config)
  batch = batches(config, 1)[0]
  new, metrics = jax.jit(cut.make_step(config, models, vgg))(state, batch, vgg_params)
  assert float(metrics['finite']) == 1.0
  both = np.concatenate([batch['photo'], batch['style']])
  fake, _ = models.G.apply(
    {'params': state.g_params, 'batch_stats': state.g_batch_stats},
    both,
    train=True,
    mutable=['batch_stats'],
  )
  fake = fake[: config.batch_size]
  feats = lambda x: vgg.apply({'params': vgg_params}, x)
  expected = {
    'g_tv': losses.total_variation(fake),
    'g_content': losses.content_loss(feats(fake), feats(batch['photo']), ('relu1_2',)),
    'g_style': losses.style_loss(feats(fake), feats(batch['style']), layers, (1.0, 0.5)),
  }
  for k, v in expected.items():
    assert float(metrics[k]) == pytest.approx(float(v), rel=1e-4), k
  total = (
    metrics['g_adversarial']
    + 0.5 * (metrics['g_nce'] + metrics['g_nce_identity'])
    + 0.5 * metrics['g_tv']
    + 2.0 * metrics['g_content']
    + 3.0 * metrics['g_style']
  )
  assert float(metrics['g_loss']) == pytest.approx(float(total), rel=1e-5)
  # The running statistics moved (forward and encoder passes).
  assert jax.tree.leaves(state.g_batch_stats)
  assert not all(
    np.array_equal(a, b)
    for a, b in zip(jax.tree.leaves(state.g_batch_stats), jax.tree.leaves(new.g_batch_stats))
  )
  with pytest.raises(ValueError, match='VGG19'):
    cut.make_step(config, models)


def test_disc_blur_shows_the_discriminator_blurred_pages():
  config = small_config('cut')
  config.loss.disc_blur = 1.5
  models, state = build(config)
  batch = batches(config, 1)[0]
  _, metrics = jax.jit(cut.make_step(config, models))(state, batch, None)
  d = lambda x: float(models.D.apply({'params': state.d_params}, x, train=True).mean())
  blurred = common.surface(jnp.asarray(batch['style']), 1.5)
  # A Gaussian blur leaves white noise 1 / (2 sqrt(pi) sigma) = 0.19 of its deviation.
  ratio = float(jnp.std(blurred[:, 5:-5, 5:-5])) / float(np.std(batch['style']))
  assert 0.15 < ratio < 0.23
  assert float(metrics['d_real_logit']) == pytest.approx(d(blurred), rel=1e-4, abs=1e-5)
  assert abs(d(blurred) - d(batch['style'])) > 1e-3
  np.testing.assert_array_equal(common.surface(blurred, 0.0), blurred)


def test_sharp_disc_judges_the_unblurred_page():
  """loss.sharp_disc_weight: a second D sees G(photo) unblurred; its term enters G's
  loss with that weight and its loss adds to D's."""
  config = small_config('cut')
  config.loss.update(disc_blur=1.0, sharp_disc_weight=0.5)
  models, state = build(config)
  assert set(state.d_params) == {'surface', 'sharp'}
  batch = batches(config, 1)[0]
  new, metrics = jax.jit(cut.make_step(config, models))(state, batch, None)
  photo, style = jnp.asarray(batch['photo']), jnp.asarray(batch['style'])
  both = jnp.concatenate([photo, style])  # CUT's one forward over photos and style images.
  fake = models.G.apply({'params': state.g_params}, both, train=True)[: len(photo)]
  d = lambda params, x: models.D.apply({'params': params}, common.surface(x, 1.0), x, train=True)
  surface_logits, sharp_logits = d(new.d_params, fake)
  assert float(metrics['g_adversarial_sharp']) == pytest.approx(
    float(losses.generator_adversarial_loss('lsgan', sharp_logits)), rel=1e-4, abs=1e-6
  )
  assert float(metrics['g_adversarial']) == pytest.approx(
    float(losses.generator_adversarial_loss('lsgan', surface_logits)), rel=1e-4, abs=1e-6
  )
  # The sharp D judges the page unblurred: shown the blurred page it says otherwise.
  blurred = common.surface(fake, 1.0)
  _, sharp_of_blurred = models.D.apply({'params': new.d_params}, blurred, blurred, train=True)
  assert float(jnp.abs(sharp_logits - sharp_of_blurred).max()) > 1e-2
  terms = metrics['g_adversarial'] + 0.5 * metrics['g_adversarial_sharp']
  terms += 0.5 * (metrics['g_nce'] + metrics['g_nce_identity'])
  assert float(metrics['g_loss']) == pytest.approx(float(terms), rel=1e-5)
  # D's loss is the sum of both views' losses, at the weights before the update.
  real, fake_d = d(state.d_params, style), d(state.d_params, fake)
  expected = sum(losses.discriminator_loss('lsgan', r, f) for r, f in zip(real, fake_d))
  assert float(metrics['d_loss']) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)


def test_tone_loss_holds_tones_not_lines():
  rng = np.random.RandomState(0)
  target = jnp.asarray(rng.uniform(-0.5, 0.5, (2, 24, 24, 3)), jnp.float32)
  checker = 0.5 * (-1.0) ** (np.arange(24)[:, None] + np.arange(24)[None, :])
  lines = target + jnp.asarray(checker[None, :, :, None], jnp.float32)
  # Unblurred it is the MSE; a 2 px blur all but removes a one-pixel pattern's cost,
  # while a tone shift (a constant 0.5) costs about its square away from the borders.
  assert float(common.tone_loss(lines, target, 0.0)) == pytest.approx(0.25, rel=1e-6)
  assert float(common.tone_loss(lines, target, 2.0)) < 1e-3
  shifted = common.surface(target + 0.5, 2.0) - common.surface(target, 2.0)
  assert float(jnp.mean(shifted[:, 6:-6, 6:-6])) == pytest.approx(0.5, rel=1e-5)
  assert float(common.tone_loss(target + 0.5, target, 2.0)) > 0.15


def _guided_reference(guide, images, radius, eps):
  """He et al. 2010, Algorithm 1, with loops: window means over the pixels inside."""
  _, height, width, _ = guide.shape

  def box(a):
    out = np.zeros_like(a)
    for i in range(height):
      for j in range(width):
        window = a[:, max(0, i - radius) : i + radius + 1, max(0, j - radius) : j + radius + 1]
        out[:, i, j] = window.mean(axis=(1, 2))
    return out

  mean_i, mean_p = box(guide), box(images)
  a = (box(guide * images) - mean_i * mean_p) / (box(guide * guide) - mean_i**2 + eps)
  b = mean_p - a * mean_i
  return box(a) * guide + box(b)


def test_guided_filter_matches_the_papers_algorithm():
  rs = np.random.RandomState(0)
  guide = rs.uniform(-1, 1, (2, 9, 11, 3)).astype(np.float32)
  images = rs.uniform(-1, 1, (2, 9, 11, 3)).astype(np.float32)
  for radius, eps in ((1, 0.01), (2, 0.5), (3, 0.2)):
    got = common.guided_filter(jnp.asarray(guide), jnp.asarray(images), radius, eps)
    np.testing.assert_allclose(got, _guided_reference(guide, images, radius, eps), atol=1e-5)


def test_the_guided_surface_flattens_texture_and_keeps_lines():
  # A page: faint hatching (deviation 0.05) on white, crossed by one black line.
  rs = np.random.RandomState(1)
  page = 0.9 + 0.05 * rs.standard_normal((1, 32, 32, 1)).astype(np.float32)
  page[:, :, 15:17] = -1.0
  smooth = np.asarray(common.surface(jnp.asarray(page), 0.0, 2, 0.5))
  texture = lambda x: float(np.std(x[:, 4:-4, 4:12]))
  # Measured: the hatching keeps 0.25 of its deviation, the line -0.53, its
  # neighbours 0.73; a Gaussian of sigma 1.5 (0.21 of the hatching) leaves a grey
  # -0.01 line with 0.29 beside it.
  assert texture(smooth) < 0.3 * texture(page)  # The hatching is flattened...
  assert smooth[0, 16, 15:17, 0].max() < -0.4  # ...the line stays dark...
  assert smooth[0, 16, 14, 0] > 0.6 and smooth[0, 16, 17, 0] > 0.6  # ...and sharp.
  blurred = np.asarray(common.surface(jnp.asarray(page), 1.5))
  assert texture(blurred) < 0.3 * texture(page)
  assert blurred[0, 16, 15:17, 0].max() > -0.2 and blurred[0, 16, 14, 0] < 0.4


@pytest.mark.slow  # Compiles a CUT step; the filter itself is tested above.
def test_guided_surface_is_what_the_discriminator_sees():
  config = small_config('cut')
  config.loss.disc_guided_radius = 2
  config.loss.disc_guided_eps = 0.5
  models, state = build(config)
  batch = batches(config, 1)[0]
  _, metrics = jax.jit(cut.make_step(config, models))(state, batch, None)
  d = lambda x: float(models.D.apply({'params': state.d_params}, x, train=True).mean())
  smooth = common.surface(jnp.asarray(batch['style']), 0.0, 2, 0.5)
  assert float(metrics['d_real_logit']) == pytest.approx(d(smooth), rel=1e-4, abs=1e-5)
  assert abs(d(smooth) - d(batch['style'])) > 1e-3
