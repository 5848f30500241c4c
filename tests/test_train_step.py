"""The train step: device-count equivalence, update order, skipped NaN steps,
zero-weight terms, EMA and the learning-rate schedule."""

import jax
import numpy as np
import pytest

from conftest import assert_same_training
from conftest import load_config
from conftest import run_steps as run_data_parallel
from shopstyle_jax import losses
from shopstyle_jax import state as state_lib
from shopstyle_jax.methods import paired as train_step_lib
from shopstyle_jax.models import discriminators
from shopstyle_jax.models import generators


def small_config(**model):
  config = load_config('tiny')
  config.image_size = 16
  config.batch_size = 8
  config.model.update(width=4, depth=3, disc_width=4, disc_layers=1, **model)
  config.loss.l1_weight = 10.0
  config.ema_decay = 0.75  # test_ema_tracks_generator_weights: one compiled step for three tests.
  return config


def build(config):
  g = generators.create_generator(config.model)
  d = discriminators.create_discriminator(config.model)
  init = jax.jit(lambda k: state_lib.create_train_state(config, g, d, k))
  return g, d, init(state_lib.prng_key(config.seed))


def batches(config, n, seed=0):
  rng = np.random.RandomState(seed)
  shape = (config.batch_size, config.image_size, config.image_size, 3)
  return [
    {
      'photo': rng.uniform(-1, 1, shape).astype(np.float32),
      'target': rng.uniform(-1, 1, shape).astype(np.float32),
    }
    for _ in range(n)
  ]


def run_steps(config, state, data, devices):
  g, d, _ = build(config)
  step = train_step_lib.make_train_step(config, g, d)
  return run_data_parallel(step, state, data, devices)


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_one_and_eight_devices_agree_with_batch_norm_and_dropout():
  assert jax.device_count() == 8
  # The hardest case: batch norm (statistics over the global batch) and dropout.
  config = small_config(norm='batch', dropout=0.5, upsample='conv_transpose')
  _, _, state = build(config)
  data = batches(config, 2)
  s1, h1 = run_steps(config, state, data, jax.devices()[:1])
  s8, h8 = run_steps(config, state, data, jax.devices())
  for m1, m8 in zip(h1, h8):
    for k in m1:
      assert m8[k] == pytest.approx(m1[k], rel=1e-5, abs=1e-5), k
  assert int(s1.step) == int(s8.step) == 2
  for name in ('g_params', 'd_params'):
    assert_same_training(getattr(s8, name), getattr(s1, name), getattr(state, name))
  # Batch-norm statistics are averages, not Adam updates: relative to their scale.
  for a, b in zip(jax.tree.leaves(s8.g_batch_stats), jax.tree.leaves(s1.g_batch_stats)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(b))))


def test_generator_update_uses_the_updated_discriminator():
  config = small_config(norm='instance', dropout=0.0)
  g, d, state = build(config)
  old = jax.tree.map(np.array, state)
  batch = batches(config, 1)[0]
  new, metrics = jax.jit(train_step_lib.make_train_step(config, g, d))(state, batch)
  fake = g.apply({'params': old.g_params}, batch['photo'], train=True)
  logits_new = d.apply({'params': new.d_params}, batch['photo'], fake, train=True)
  logits_old = d.apply({'params': old.d_params}, batch['photo'], fake, train=True)
  expected = losses.generator_adversarial_loss('vanilla', logits_new)
  assert float(metrics['g_adversarial']) == pytest.approx(float(expected), rel=1e-4)
  assert (
    abs(float(losses.generator_adversarial_loss('vanilla', logits_old)) - float(expected)) > 1e-6
  )
  # g_loss is the weighted sum of the terms.
  total = (
    metrics['g_adversarial']
    + config.loss.mse_weight * metrics['g_mse']
    + config.loss.l1_weight * metrics['g_l1']
  )
  assert float(metrics['g_loss']) == pytest.approx(float(total), rel=1e-5)


def test_nonfinite_step_skips_both_updates():
  config = small_config(norm='instance', dropout=0.0)
  g, d, state = build(config)
  old = jax.tree.map(np.array, state)
  batch = batches(config, 1)[0]
  batch['target'][0, 0, 0, 0] = np.nan
  step = jax.jit(train_step_lib.make_train_step(config, g, d))
  new, metrics = step(state, batch)
  assert float(metrics['finite']) == 0.0
  assert int(new.step) == 1
  for name in ('g_params', 'd_params', 'g_opt_state', 'd_opt_state'):
    jax.tree.map(np.testing.assert_array_equal, getattr(old, name), getattr(new, name))
  good = batches(config, 1, seed=1)[0]
  newer, metrics = step(new, good)
  assert float(metrics['finite']) == 1.0 and int(newer.step) == 2


def count_convs(config, vgg=None, vgg_params=None):
  g, d, state = build(config)
  step = train_step_lib.make_train_step(config, g, d, vgg)
  return str(jax.make_jaxpr(step)(state, batches(config, 1)[0], vgg_params)).count(
    'conv_general_dilated'
  )


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_zero_weight_terms_cost_no_compute():
  config = small_config(norm='instance', dropout=0.0)
  base = count_convs(config)
  config.loss.adversarial_weight = 0.0
  without_adv = count_convs(config)
  # The G update no longer runs D forward and backward.
  assert without_adv < base
  from shopstyle_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top

  config.loss.perceptual_weight = 1.0
  config.loss.vgg_layers = ('relu1_1',)
  config.loss.vgg_layer_weights = (1.0,)
  vgg = vgg_lib.VGG19(layers=('relu1_1',))
  params = vgg_lib.init_random_params(('relu1_1',))
  assert count_convs(config, vgg, params) > without_adv


def test_perceptual_loss_trains_with_frozen_vgg():
  from shopstyle_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top

  config = small_config(norm='instance', dropout=0.0)
  config.loss.update(
    perceptual_weight=1.0, vgg_layers=('relu1_1', 'relu2_1'), vgg_layer_weights=(0.5, 1.0)
  )
  g, d, state = build(config)
  vgg = vgg_lib.VGG19(layers=('relu1_1', 'relu2_1'))
  params = vgg_lib.init_random_params(('relu1_1', 'relu2_1'), seed=0)
  batch = batches(config, 1)[0]
  new, metrics = jax.jit(train_step_lib.make_train_step(config, g, d, vgg))(state, batch, params)
  feats = lambda x: vgg.apply({'params': params}, x)
  fake = g.apply({'params': state.g_params}, batch['photo'], train=True)
  expected = losses.perceptual(feats, fake, batch['target'], ('relu1_1', 'relu2_1'), (0.5, 1.0))
  assert float(metrics['g_perceptual']) == pytest.approx(float(expected), rel=1e-4)
  assert float(metrics['finite']) == 1.0
  # The term is in the generator's loss, with its weight.
  total = (
    metrics['g_adversarial']
    + config.loss.mse_weight * metrics['g_mse']
    + config.loss.l1_weight * metrics['g_l1']
    + metrics['g_perceptual']
  )
  assert float(metrics['g_loss']) == pytest.approx(float(total), rel=1e-5)
  # The VGG is an argument, not state: the step returns a state of the same structure.
  assert jax.tree.structure(new) == jax.tree.structure(state)


def test_ema_tracks_generator_weights():
  config = small_config(norm='instance', dropout=0.0)
  g, d, state = build(config)
  old = jax.tree.map(np.array, state)
  new, _ = jax.jit(train_step_lib.make_train_step(config, g, d))(state, batches(config, 1)[0])
  expected = jax.tree.map(lambda e, p: 0.75 * e + 0.25 * p, old.ema_params, new.g_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7), expected, new.ema_params)
  assert new.generator_variables()['params'] is new.ema_params


def test_learning_rate_is_constant_then_linear_to_zero():
  config = small_config()
  config.num_train_steps = 100
  config.optimizer.decay_start_fraction = 0.5
  schedule = state_lib.learning_rate_schedule(config)
  lr = config.optimizer.learning_rate
  assert float(schedule(0)) == pytest.approx(lr)
  assert float(schedule(50)) == pytest.approx(lr)
  assert float(schedule(75)) == pytest.approx(lr / 2)
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-12)
