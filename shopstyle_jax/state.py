"""The training state (a plain pytree) and its creation."""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from shopstyle_jax.models import layers

Params = Any

# JAX's 'rbg' PRNG draws bits with XLA's RngBitGenerator: one op instead of
# threefry's unrolled rounds, which compiles ~5x faster on XLA:CPU and runs
# faster on TPU; its bits do not depend on how arrays are sharded.
PRNG_IMPL = 'rbg'


def prng_key(seed: int) -> jax.Array:
  """The run's root key (parameter init, dropout, noise)."""
  return jax.random.key(seed, impl=PRNG_IMPL)


# Fields of earlier TrainState layouts: checkpoints that hold them still restore
# (`checkpoints.restore(..., retired=RETIRED_FIELDS)` reads and drops them).
# nonfinite_count (until issue 13): consecutive non-finite steps, never read;
# the training loop keeps that count.
RETIRED_FIELDS = ('nonfinite_count',)


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; the models themselves are static.

  `*_batch_stats` are empty dicts when the networks have no batch norm;
  `ema_params` is an empty dict when `config.ema_decay` is 0.
  """

  step: jax.Array
  g_params: Params
  g_batch_stats: Params
  g_opt_state: optax.OptState
  d_params: Params
  d_batch_stats: Params
  d_opt_state: optax.OptState
  ema_params: Params

  def generator_variables(self, use_ema: bool = True) -> dict:
    """The variables `stylize_fn` needs: EMA weights when there are any."""
    return generator_variables(
      self.g_params, self.g_batch_stats, self.ema_params if use_ema else None
    )


def variables(params: Params, batch_stats: Params) -> dict:
  """A flax variables dict; 'batch_stats' only when the model has any."""
  return {'params': params, 'batch_stats': batch_stats} if batch_stats else {'params': params}


def generator_variables(g_params: Params, g_batch_stats: Params, ema_params: Params = None) -> dict:
  """The generator's variables for inference (eval, stylizers, export): the EMA
  weights when the run kept them (`ema_params` not empty), else `g_params`."""
  return variables(ema_params or g_params, g_batch_stats)


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """pix2pix's schedule: constant, then linear decay to 0 at the last step."""
  lr = config.optimizer.learning_rate
  total = config.num_train_steps
  start = int(round(total * config.optimizer.decay_start_fraction))
  if start >= total:  # No decay: a program that does not depend on the run's length.
    return optax.constant_schedule(lr)
  return optax.join_schedules(
    [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, max(total - start, 1))], [start]
  )


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam, as pix2pix, for both networks."""
  return optax.adam(learning_rate_schedule(config), b1=config.optimizer.b1, b2=config.optimizer.b2)


def create_train_state(
  config: ml_collections.ConfigDict, generator: nn.Module, discriminator: nn.Module, rng: jax.Array
) -> TrainState:
  """Initialises both networks on a dummy batch of the configured size."""
  g_rng, d_rng = jax.random.split(rng)
  shape = (1, config.image_size, config.image_size, 3)
  photo = jnp.zeros(shape, jnp.float32)
  g_vars = generator.init({'params': g_rng}, photo, *layers.style_args(generator), train=False)
  d_vars = discriminator.init(
    {'params': d_rng}, photo, photo, *layers.style_args(discriminator), train=False
  )
  tx = create_optimizer(config)
  g_params, d_params = g_vars['params'], d_vars['params']
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    g_params=g_params,
    g_batch_stats=g_vars.get('batch_stats', {}),
    g_opt_state=tx.init(g_params),
    d_params=d_params,
    d_batch_stats=d_vars.get('batch_stats', {}),
    d_opt_state=tx.init(d_params),
    ema_params=jax.tree.map(jnp.copy, g_params) if config.ema_decay > 0 else {},
  )


def grow_style_table(fresh: jax.Array, old: Any) -> jax.Array:
  """A per-style table [S, ...] of a run with more styles, from a run's [S_old, ...]
  one (fine-tuning new styles into a trained model): rows 0..S_old-1 are the old
  styles' own, each new row the mean of the old rows (a neutral blend of what the
  network already does). `old` None (a single-style run, which has no tables)
  keeps `fresh`, the initialisation."""
  if old is None:
    return fresh
  old = jnp.asarray(old, fresh.dtype)
  if old.shape[1:] != fresh.shape[1:] or old.shape[0] > fresh.shape[0]:
    raise ValueError(f'cannot grow a style table of shape {old.shape} into {fresh.shape}')
  new_rows = jnp.broadcast_to(old.mean(axis=0), (fresh.shape[0] - old.shape[0],) + old.shape[1:])
  return jnp.concatenate([old, new_rows], axis=0)
