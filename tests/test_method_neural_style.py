"""The neural-style method (Johnson et al. 2016): device-count equivalence, the
step's loss terms against a hand computation, per-pair Gram targets, zero-weight
terms, skipped NaN steps and its configs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_same_training
from conftest import load_config
from conftest import run_steps as run_data_parallel
from shopstyle_jax import config_lib
from shopstyle_jax import losses
from shopstyle_jax import state as state_lib
from shopstyle_jax.methods import neural_style
from shopstyle_jax.models import vgg as vgg_lib

CONTENT_LAYERS = ('relu2_2',)
STYLE_LAYERS = ('relu1_2', 'relu2_2')
STYLE_LAYER_WEIGHTS = (1.0, 0.5)


def small_config(**loss):
  """32x32, a width-4 ResNet generator, VGG19 only to relu2_2."""
  config = load_config('tiny')
  config.method = 'neural_style'
  config.image_size = 32
  config.batch_size = 8
  config.model.update(
    generator='resnet',
    width=4,
    resnet_blocks=1,
    norm='instance',
    dropout=0.0,
    upsample='resize_conv',
    disc_width=4,
    disc_layers=1,
  )
  config.optimizer.update(learning_rate=1e-3, b1=0.9)
  config.loss.update(
    adversarial_weight=0.0,
    content_weight=1.0,
    content_layers=CONTENT_LAYERS,
    style_weight=5.0,
    style_layers=STYLE_LAYERS,
    style_layer_weights=STYLE_LAYER_WEIGHTS,
    tv_weight=0.1,
  )
  config.loss.update(**loss)
  return config


@functools.cache
def vgg_setup(layers=('relu1_2', 'relu2_2')):
  """The frozen VGG19 and seeded random params (config.loss.vgg_weights='random')."""
  return vgg_lib.VGG19(layers=layers), vgg_lib.init_random_params(layers, seed=0)


def build(config):
  models = neural_style.build_models(config)
  init = jax.jit(lambda k: neural_style.create_state(config, models, k))
  return models, init(state_lib.prng_key(config.seed))


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


@pytest.fixture(scope='module')
def setup():
  """One config, state and jitted step shared by the tests that only call it."""
  config = small_config()
  models, state = build(config)
  vgg, params = vgg_setup()
  step = jax.jit(neural_style.make_step(config, models, vgg))
  return config, models, jax.device_get(state), step, params


def run_steps(config, state, data, devices):
  vgg, params = vgg_setup()
  step = neural_style.make_step(config, neural_style.build_models(config), vgg)
  return run_data_parallel(step, state, data, devices, extra=params)


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_one_and_eight_devices_agree_with_discriminator_and_batch_norm():
  assert jax.device_count() == 8
  # The hardest case: every term, and batch norm (statistics over the global batch) in G and D.
  config = small_config(adversarial_weight=0.5)
  config.model.norm = 'batch'
  _, state = build(config)
  data = batches(config, 2)
  s1, h1 = run_steps(config, state, data, jax.devices()[:1])
  s8, h8 = run_steps(config, state, data, jax.devices())
  assert set(h1[0]) == {
    'd_loss',
    'g_loss',
    'g_adversarial',
    'g_content',
    'g_style',
    'g_tv',
    'g_grad_norm',
    'learning_rate',
    'finite',
  }
  for m1, m8 in zip(h1, h8):
    for k in m1:
      assert m8[k] == pytest.approx(m1[k], rel=1e-4, abs=1e-6), k
  assert int(s1.step) == int(s8.step) == 2
  for name in ('g_params', 'd_params'):
    assert_same_training(getattr(s8, name), getattr(s1, name), getattr(state, name))
  # Batch-norm statistics are averages, not Adam updates: relative to their scale.
  for name in ('g_batch_stats', 'd_batch_stats'):
    for a, b in zip(jax.tree.leaves(getattr(s8, name)), jax.tree.leaves(getattr(s1, name))):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(b))))


def hand_terms(config, models, state, batch, params):
  """The loss terms recomputed outside the step: train-mode G, three VGG calls."""
  vgg, _ = vgg_setup()
  features = lambda x: vgg.apply({'params': params}, x)
  out = models.G.apply({'params': state.g_params}, batch['photo'], train=True)
  lc = config.loss
  f_out, f_photo, f_style = features(out), features(batch['photo']), features(batch['style'])
  return (
    {
      'content': losses.content_loss(f_out, f_photo, lc.content_layers),
      'style': losses.style_loss(f_out, f_style, lc.style_layers, lc.style_layer_weights),
      'tv': losses.total_variation(out),
    },
    out,
    f_out,
    f_style,
  )


def test_metrics_match_a_hand_computation(setup):
  config, models, state, step, params = setup
  batch = batches(config, 1)[0]
  new, metrics = step(state, batch, params)
  terms, *_ = hand_terms(config, models, state, batch, params)
  for name, value in terms.items():
    assert float(metrics[f'g_{name}']) == pytest.approx(float(value), rel=1e-4), name
  lc = config.loss
  total = (
    lc.content_weight * terms['content']
    + lc.style_weight * terms['style']
    + (lc.tv_weight * terms['tv'])
  )
  assert float(metrics['g_loss']) == pytest.approx(float(total), rel=1e-4)
  assert float(metrics['finite']) == 1.0 and int(new.step) == 1
  assert float(metrics['learning_rate']) == pytest.approx(1e-3)
  assert float(metrics['g_grad_norm']) > 0
  # The VGG is an argument, not state: the step keeps the state's structure. No
  # discriminator without its weight.
  assert jax.tree.structure(new) == jax.tree.structure(state)
  assert new.d_params == {} and new.d_opt_state == {} and new.ema_params == {}
  moved = jax.tree.map(
    lambda a, b: np.any(np.asarray(a) != np.asarray(b)), new.g_params, state.g_params
  )
  assert all(jax.tree.leaves(moved))


def test_style_targets_are_per_pair(setup):
  config, models, state, step, params = setup
  batch = batches(config, 1)[0]
  # Two different style images, alternating over the rows.
  batch['style'][1::2] = -batch['style'][0]
  batch['style'][0::2] = batch['style'][0]
  _, metrics = step(state, batch, params)
  one_row = dict(batch, style=np.broadcast_to(batch['style'][:1], batch['style'].shape).copy())
  _, metrics_one_row = step(state, one_row, params)
  assert abs(float(metrics['g_style']) - float(metrics_one_row['g_style'])) > 1e-3 * float(
    metrics['g_style']
  )
  # Row i of the output is compared with style row i: the mean of per-row losses.
  _, _, f_out, f_style = hand_terms(config, models, state, batch, params)
  lc = config.loss
  rows = [
    losses.style_loss(
      {k: v[i : i + 1] for k, v in f_out.items()},
      {k: v[i : i + 1] for k, v in f_style.items()},
      lc.style_layers,
      lc.style_layer_weights,
    )
    for i in range(config.batch_size)
  ]
  assert float(metrics['g_style']) == pytest.approx(float(np.mean(rows)), rel=1e-4)


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_discriminator_steps_first_then_generator_against_it():
  config = small_config(adversarial_weight=0.5)
  models, state = build(config)
  vgg, params = vgg_setup()
  old = jax.device_get(state)
  batch = batches(config, 1)[0]
  new, metrics = jax.jit(neural_style.make_step(config, models, vgg))(state, batch, params)
  g, d = models.G, models.D
  out = g.apply({'params': old.g_params}, batch['photo'], train=True)
  logits = lambda p, x: d.apply({'params': p}, x, train=True)
  # D: style images are real, outputs fake, scored with the old D.
  d_loss = losses.discriminator_loss(
    'vanilla', logits(old.d_params, batch['style']), logits(old.d_params, out)
  )
  assert float(metrics['d_loss']) == pytest.approx(float(d_loss), rel=1e-4)
  # G's adversarial term uses the updated D.
  adv = losses.generator_adversarial_loss('vanilla', logits(new.d_params, out))
  assert float(metrics['g_adversarial']) == pytest.approx(float(adv), rel=1e-4)
  stale = losses.generator_adversarial_loss('vanilla', logits(old.d_params, out))
  assert abs(float(stale) - float(adv)) > 1e-6
  terms, *_ = hand_terms(config, models, old, batch, params)
  total = 0.5 * adv + terms['content'] + 5.0 * terms['style'] + 0.1 * terms['tv']
  assert float(metrics['g_loss']) == pytest.approx(float(total), rel=1e-4)
  assert new.d_opt_state != {} and float(metrics['finite']) == 1.0


def count_convs(config, vgg=None, params=None):
  models, state = build(config)
  step = neural_style.make_step(config, models, vgg)
  return str(jax.make_jaxpr(step)(state, batches(config, 1)[0], params)).count(
    'conv_general_dilated'
  )


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_zero_weight_terms_cost_no_compute():
  vgg, params = vgg_setup()
  both = count_convs(small_config(), vgg, params)
  content_only = count_convs(small_config(style_weight=0.0), vgg, params)
  style_only = count_convs(small_config(content_weight=0.0), vgg, params)
  without_vgg = count_convs(small_config(content_weight=0.0, style_weight=0.0))
  # relu2_2 is 4 convs deep: the style images' forward goes with the style term,
  # the photos' with the content term; G(x)'s forward and backward stay for either.
  assert both - content_only == 4 and both - style_only == 4
  assert without_vgg < content_only
  # No discriminator without its weight: no D compute and no D state.
  assert without_vgg < count_convs(
    small_config(content_weight=0.0, style_weight=0.0, adversarial_weight=1.0)
  )
  # Without content and style the step runs without any VGG: none given, none needed.
  config = small_config(content_weight=0.0, style_weight=0.0)
  assert neural_style.vgg_layers(config) == ()
  config.loss.tone_weight = 3.0
  models, state = build(config)
  batch = batches(config, 1)[0]
  batch['tone'] = np.zeros_like(batch['photo'])  # A grey page.
  _, metrics = jax.jit(neural_style.make_step(config, models))(state, batch, None)
  assert set(metrics) == {'g_loss', 'g_tv', 'g_tone', 'g_grad_norm', 'learning_rate', 'finite'}
  out = models.G.apply({'params': state.g_params}, batch['photo'], train=True)
  assert float(metrics['g_tone']) == pytest.approx(float(jnp.mean(jnp.square(out))), rel=1e-4)
  assert float(metrics['g_loss']) == pytest.approx(
    0.1 * float(metrics['g_tv']) + 3.0 * float(metrics['g_tone']), rel=1e-5
  )
  assert float(metrics['finite']) == 1.0
  # A VGG-loss weight without the VGG is refused when the step is built.
  with pytest.raises(ValueError, match='VGG19'):
    neural_style.make_step(small_config(), models)


def test_vgg_layers_are_the_union_in_network_order():
  config = small_config(
    content_layers=('relu3_1',), style_layers=('relu2_1', 'relu1_1'), style_layer_weights=(1.0, 1.0)
  )
  assert neural_style.vgg_layers(config) == ('relu1_1', 'relu2_1', 'relu3_1')
  config.loss.content_weight = 0.0
  assert neural_style.vgg_layers(config) == ('relu1_1', 'relu2_1')


def test_nonfinite_step_is_skipped(setup):
  config, _, state, step, params = setup
  batch = batches(config, 1)[0]
  batch['photo'][0, 0, 0, 0] = np.nan
  new, metrics = step(state, batch, params)
  assert float(metrics['finite']) == 0.0
  assert int(new.step) == 1
  for name in ('g_params', 'g_opt_state', 'g_batch_stats'):
    jax.tree.map(np.testing.assert_array_equal, getattr(state, name), getattr(new, name))
  newer, metrics = step(new, batches(config, 1, seed=1)[0], params)
  assert float(metrics['finite']) == 1.0 and int(newer.step) == 2


@pytest.mark.parametrize('variant', ['', 'cpu'])
def test_configs_validate(variant):
  config = load_config('neural_style', variant)
  config_lib.validate(config)
  assert config.method == 'neural_style'
  assert neural_style.vgg_layers(config) == ('relu1_2', 'relu2_2', 'relu3_4', 'relu4_4')
  assert neural_style.build_models(config).D is None
