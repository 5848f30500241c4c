"""CycleGAN's step: device-count equivalence, the cycle term, exact resume with the
pools, skipped NaN steps, the official update order and zero-weight terms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import assert_same_training
from conftest import load_config
from conftest import run_steps as run_data_parallel
from shopstyle_jax import losses
from shopstyle_jax import state as state_lib
from shopstyle_jax.methods import common
from shopstyle_jax.methods import cyclegan


def small_config(**model):
  """32x32 images, a width-4 ResNet generator with one block, LSGAN as the official."""
  config = load_config('tiny')
  config.method = 'cyclegan'
  config.image_size = 32
  config.batch_size = 8
  config.model.update(
    generator='resnet',
    width=4,
    resnet_blocks=1,
    disc_width=4,
    disc_layers=1,
    norm='instance',
    dropout=0.0,
    upsample='resize_conv',
  )
  config.model.update(**model)
  config.loss.update(gan='lsgan', pool_size=8)
  return config


_STATES = {}


def build(config):
  """The models and the initial state, initialised once per network and pool shape."""
  models = cyclegan.build_models(config)
  key = (
    config.model.to_json(),
    config.image_size,
    config.loss.pool_size,
    config.ema_decay,
    config.seed,
  )
  if key not in _STATES:
    init = jax.jit(lambda k: cyclegan.create_state(config, models, k))
    _STATES[key] = to_numpy(init(state_lib.prng_key(config.seed)))
  return models, jax.tree.map(jnp.asarray, _STATES[key])


def abstract_state(config, models):
  """The state's shapes and dtypes, without compiling its initialisation."""
  return jax.eval_shape(
    lambda k: cyclegan.create_state(config, models, k), state_lib.prng_key(config.seed)
  )


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


_STEPS = {}


def jitted_step(config):
  """One compiled single-device step per config, shared by the tests."""
  key = config.to_json()
  if key not in _STEPS:
    _STEPS[key] = jax.jit(cyclegan.make_step(config, cyclegan.build_models(config)))
  return _STEPS[key]


def to_numpy(state):
  return jax.tree.map(np.asarray, jax.device_get(state))


@functools.partial(jax.jit, static_argnums=0)
def apply(module, params, x):
  """A network in training mode, outside the step (instance norm: no statistics)."""
  return module.apply({'params': params}, x, train=True)


def hand_d_loss(module, params, real, fake):
  """A discriminator's LSGAN loss on (real, fake), computed outside the step."""
  return losses.discriminator_loss(
    'lsgan', apply(module, params, real), apply(module, params, fake)
  )


def first_step(config):
  """One step from a fresh state: (models, state before, state after, metrics, photo,
  style, G(photo), F(style)), the fakes from the weights before the step."""
  models, state = build(config)
  old = to_numpy(state)
  batch = batches(config, 1)[0]
  new, metrics = jitted_step(config)(state, batch)
  photo, style = batch['photo'], batch['style']
  fake_style = apply(models.G, old.g_params, photo)
  fake_photo = apply(models.F, old.f_params, style)
  return models, old, new, metrics, photo, style, fake_style, fake_photo


def test_state_fields_and_generator_variables():
  config = small_config()
  config.ema_decay = 0.5
  models = cyclegan.build_models(config)
  state = abstract_state(config, models)
  shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
  for name in ('g', 'f', 'd', 'dp'):
    # Each network's own Adam: its moments have the shapes of its own parameters.
    adam = getattr(state, f'{name}_opt_state')[0]
    assert shapes(adam.mu) == shapes(adam.nu) == shapes(getattr(state, f'{name}_params'))
  for pool in (state.pool_style, state.pool_photo):
    assert pool['images'].shape == (8, 32, 32, 3) and pool['count'].shape == ()
  assert state.generator_variables()['params'] is state.ema_params
  assert state.generator_variables(use_ema=False)['params'] is state.g_params
  # The Ds see images alone: their first conv has 3 input channels.
  assert state.d_params['Conv_0']['kernel'].shape[2] == 3
  assert state.dp_params['Conv_0']['kernel'].shape[2] == 3


def run_steps(config, state, data, devices):
  step = cyclegan.make_step(config, cyclegan.build_models(config))
  return run_data_parallel(step, state, data, devices)


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_one_and_eight_devices_agree_with_batch_norm_dropout_and_pools():
  assert jax.device_count() == 8
  # Batch norm (statistics over the global batch), dropout, and a pool smaller than
  # the batch, so both steps fill and swap.
  config = small_config(norm='batch', dropout=0.5)
  config.loss.pool_size = 3
  _, state = build(config)
  start = to_numpy(state)
  data = batches(config, 2)
  s1, h1 = run_steps(config, state, data, jax.devices()[:1])
  s8, h8 = run_steps(config, state, data, jax.devices())
  for m1, m8 in zip(h1, h8):
    assert m1.keys() == m8.keys()
    for k in m1:
      assert m8[k] == pytest.approx(m1[k], rel=1e-4, abs=1e-5), k
  assert float(h1[-1]['finite']) == 1.0
  assert int(s1.step) == int(s8.step) == 2
  for name in ('g_params', 'f_params', 'd_params', 'dp_params'):
    assert_same_training(getattr(s8, name), getattr(s1, name), getattr(start, name))
  for name in ('g_batch_stats', 'f_batch_stats', 'd_batch_stats', 'dp_batch_stats'):
    for a, b in zip(jax.tree.leaves(getattr(s8, name)), jax.tree.leaves(getattr(s1, name))):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(b))))
  for name in ('pool_style', 'pool_photo'):
    p1, p8 = getattr(s1, name), getattr(s8, name)
    assert int(p1['count']) == int(p8['count']) == 16
    np.testing.assert_allclose(p8['images'], p1['images'], atol=1e-4)


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_cycle_term_is_the_l1_of_both_reconstructions():
  config = small_config()
  config.loss.update(adversarial_weight=0.0, identity_weight=0.0, cycle_weight=10.0)
  models, state = build(config)
  old = to_numpy(state)
  batch = batches(config, 1)[0]
  _, metrics = jitted_step(config)(state, batch)
  assert {'g_adversarial', 'g_identity'}.isdisjoint(metrics)

  def cycle(g_params, f_params):
    photo, style = batch['photo'], batch['style']
    rec_photo = apply(models.F, f_params, apply(models.G, g_params, photo))
    rec_style = apply(models.G, g_params, apply(models.F, f_params, style))
    return losses.l1(rec_photo, photo) + losses.l1(rec_style, style)

  expected, (g_grads, f_grads) = jax.jit(jax.value_and_grad(cycle, argnums=(0, 1)))(
    old.g_params, old.f_params
  )
  assert float(metrics['g_cycle']) == pytest.approx(float(expected), rel=1e-5)
  assert float(metrics['g_loss']) == pytest.approx(10.0 * float(expected), rel=1e-5)
  # The generators descend exactly this term.
  for name, grads in (('g', g_grads), ('f', f_grads)):
    assert float(metrics[f'{name}_grad_norm']) == pytest.approx(
      10.0 * float(optax.tree.norm(grads)), rel=1e-4
    )


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_resume_from_a_saved_state_continues_exactly():
  config = small_config()  # Step 1 fills the pools, step 2 swaps half of them.
  _, state = build(config)
  step = jitted_step(config)
  b1, b2 = batches(config, 2)
  s1, _ = step(state, b1)
  uninterrupted, _ = step(s1, b2)
  saved = to_numpy(s1)  # What a checkpoint holds: numpy arrays only.
  resumed, _ = step(jax.tree.map(jnp.asarray, saved), b2)
  jax.tree.map(np.testing.assert_array_equal, to_numpy(resumed), to_numpy(uninterrupted))
  pool1, pool2 = saved.pool_style['images'], np.asarray(resumed.pool_style['images'])
  assert int(resumed.pool_style['count']) == 16
  assert 0 < sum(not np.array_equal(a, b) for a, b in zip(pool1, pool2)) < 8


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_nonfinite_step_changes_nothing_but_the_step():
  config = small_config()
  _, state = build(config)
  step = jitted_step(config)
  old = to_numpy(state)
  batch = batches(config, 1)[0]
  batch['photo'][0, 0, 0, 0] = np.nan
  new, metrics = step(state, batch)
  assert float(metrics['finite']) == 0.0
  new = to_numpy(new)
  assert int(new.step) == 1
  jax.tree.map(np.testing.assert_array_equal, old.replace(step=new.step), new)
  newer, metrics = step(jax.tree.map(jnp.asarray, new), batches(config, 1, seed=1)[0])
  assert float(metrics['finite']) == 1.0 and int(newer.step) == 2
  assert int(newer.pool_style['count']) == 8


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_update_order_is_the_officials():
  # optimize_parameters: G and F step against the current Ds; then the Ds step on the
  # fakes of that same forward, i.e. from G and F before their update.
  config = small_config()  # pool_size == batch: step 1's pooled fakes are the fakes.
  models, old, new, metrics, photo, style, fake_style, fake_photo = first_step(config)
  moved_style = apply(models.G, new.g_params, photo)
  np.testing.assert_allclose(new.pool_style['images'], fake_style, atol=1e-5)
  np.testing.assert_allclose(new.pool_photo['images'], fake_photo, atol=1e-5)
  assert float(jnp.max(jnp.abs(moved_style - fake_style))) > 1e-4
  assert float(metrics['d_loss']) == pytest.approx(
    float(hand_d_loss(models.D_style, old.d_params, style, fake_style)), rel=1e-5
  )
  assert float(metrics['dp_loss']) == pytest.approx(
    float(hand_d_loss(models.D_photo, old.dp_params, photo, fake_photo)), rel=1e-5
  )
  assert (
    abs(
      float(hand_d_loss(models.D_style, old.d_params, style, moved_style))
      - float(metrics['d_loss'])
    )
    > 1e-6
  )
  # G's adversarial term reads the Ds before their update.
  adversarial = losses.generator_adversarial_loss(
    'lsgan', apply(models.D_style, old.d_params, fake_style)
  ) + losses.generator_adversarial_loss('lsgan', apply(models.D_photo, old.dp_params, fake_photo))
  assert float(metrics['g_adversarial']) == pytest.approx(float(adversarial), rel=1e-5)
  identity = losses.l1(apply(models.G, old.g_params, style), style) + losses.l1(
    apply(models.F, old.f_params, photo), photo
  )
  assert float(metrics['g_identity']) == pytest.approx(float(identity), rel=1e-5)
  lc = config.loss
  total = (
    lc.adversarial_weight * metrics['g_adversarial']
    + lc.cycle_weight * metrics['g_cycle']
    + lc.identity_weight * metrics['g_identity']
  )
  assert float(metrics['g_loss']) == pytest.approx(float(total), rel=1e-5)
  assert float(metrics['learning_rate']) == pytest.approx(config.optimizer.learning_rate)


def test_disc_blur_shows_d_style_blurred_pages_and_d_photo_photos():
  config = small_config()
  config.loss.disc_blur = 1.5
  models, old, _, metrics, photo, style, fake_style, fake_photo = first_step(config)
  blur = lambda x: common.surface(jnp.asarray(x), 1.5)
  d_loss = lambda *args: float(hand_d_loss(*args))

  blurred = d_loss(models.D_style, old.d_params, blur(style), blur(fake_style))
  assert float(metrics['d_loss']) == pytest.approx(blurred, rel=1e-5)
  assert abs(d_loss(models.D_style, old.d_params, style, fake_style) - blurred) > 1e-4
  assert float(metrics['dp_loss']) == pytest.approx(
    d_loss(models.D_photo, old.dp_params, photo, fake_photo), rel=1e-5
  )
  adversarial = losses.generator_adversarial_loss(
    'lsgan', apply(models.D_style, old.d_params, blur(fake_style))
  ) + losses.generator_adversarial_loss('lsgan', apply(models.D_photo, old.dp_params, fake_photo))
  assert float(metrics['g_adversarial']) == pytest.approx(float(adversarial), rel=1e-5)


def count_convs(config, vgg=None, vgg_params=None):
  models = cyclegan.build_models(config)
  step = cyclegan.make_step(config, models, vgg)
  return str(
    jax.make_jaxpr(step)(abstract_state(config, models), batches(config, 1)[0], vgg_params)
  ).count('conv_general_dilated')


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_zero_weight_terms_cost_no_compute():
  config = small_config()
  full = count_convs(config)
  config.loss.identity_weight = 0.0
  without_identity = count_convs(config)
  config.loss.cycle_weight = 0.0
  without_cycle = count_convs(config)
  config.loss.adversarial_weight = 0.0
  without_adversarial = count_convs(config)
  assert full > without_identity > without_cycle > without_adversarial


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_content_style_and_tv_terms_on_the_stylized_photo():
  from shopstyle_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top

  config = small_config()
  layers = ('relu1_1', 'relu1_2')
  config.loss.update(
    content_weight=2.0,
    content_layers=('relu1_2',),
    style_weight=3.0,
    style_layers=layers,
    style_layer_weights=(1.0, 0.5),
    tv_weight=0.25,
    tone_weight=0.5,
  )
  models, state = build(config)
  vgg = vgg_lib.VGG19(layers=layers)
  with pytest.raises(ValueError, match='VGG19'):
    cyclegan.make_step(config, models)
  params = vgg_lib.init_random_params(layers, seed=0)
  batch = batches(config, 1)[0]
  batch['tone'] = np.flip(batch['photo'], axis=1).copy()  # Any target image.
  _, metrics = jax.jit(cyclegan.make_step(config, models, vgg))(state, batch, params)
  fake = apply(models.G, state.g_params, batch['photo'])
  feats = lambda x: vgg.apply({'params': params}, x)
  content = losses.content_loss(feats(fake), feats(batch['photo']), ('relu1_2',))
  style = losses.style_loss(feats(fake), feats(batch['style']), layers, (1.0, 0.5))
  assert float(metrics['g_content']) == pytest.approx(float(content), rel=1e-4)
  assert float(metrics['g_style']) == pytest.approx(float(style), rel=1e-4)
  assert float(metrics['g_tv']) == pytest.approx(float(losses.total_variation(fake)), rel=1e-5)
  assert float(metrics['g_tone']) == pytest.approx(float(losses.mse(fake, batch['tone'])), rel=1e-5)
  assert float(metrics['finite']) == 1.0
