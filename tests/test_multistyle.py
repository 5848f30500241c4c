"""One generator, many styles: style-conditioned networks, multi-style data and
training, style arguments at inference, export, evaluation and fine-tuning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_same_training
from conftest import load_config
from shopstyle_jax import config_lib
from shopstyle_jax import losses
from shopstyle_jax import parallel
from shopstyle_jax import state as state_lib
from shopstyle_jax import style_mix
from shopstyle_jax.methods import paired
from shopstyle_jax.models import discriminators
from shopstyle_jax.models import generators
from shopstyle_jax.models import layers

STYLES = ('sketch', 'watercolor', 'identity')


def count(variables):
  return sum(x.size for x in jax.tree.leaves(variables['params']))


def small_config(styles=STYLES, batch_size=6):
  """test_train_step's small model with several styles: MSE for the sketch, L1 else."""
  config = load_config('tiny')
  config.image_size = 16
  config.batch_size = batch_size
  config.model.update(width=4, depth=3, disc_width=4, disc_layers=1)
  config.data.styles = styles
  config.loss.update(mse_weight=0.0, l1_weight=10.0)
  config.loss.per_style = {'sketch': {'mse_weight': 10.0, 'l1_weight': 0.0}}
  return config


def style_batch(config, seed=0):
  rng = np.random.RandomState(seed)
  shape = (config.batch_size, config.image_size, config.image_size, 3)
  return {
    'photo': rng.uniform(-1, 1, shape).astype(np.float32),
    'target': rng.uniform(-1, 1, shape).astype(np.float32),
    'style': (np.arange(config.batch_size) % len(config.data.styles)).astype(np.int32),
  }


def test_multistyle_step_runs():
  config = small_config()
  config_lib.validate(config)
  models = paired.build_models(config)
  state = jax.jit(lambda k: paired.create_state(config, models, k))(state_lib.prng_key(0))
  new, metrics = jax.jit(paired.make_step(config, models))(state, style_batch(config))
  print({k: float(v) for k, v in metrics.items()})
