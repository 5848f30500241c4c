"""Inference: `stylize_fn` (jitted, pure) and `load_stylizer` (checkpoint -> callable)."""

import functools
import json
import os
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from shopstyle_jax import checkpoints
from shopstyle_jax import images as image_lib
from shopstyle_jax.models import generators

CONFIG_FILE = 'config.json'


@functools.partial(jax.jit, static_argnames=('generator',))
def stylize_fn(generator: nn.Module, variables: Any, images: jax.Array) -> jax.Array:
  """Photos -> styled images, deterministic (dropout off, noise input zero).

  Args:
    generator: the generator module (static: one compile per module and shape).
    variables: its flax variables ({'params': ..., 'batch_stats': ...}).
    images: float32 [N, H, W, 3] in [-1, 1]; H and W multiples of `generator.factor`.
  Returns:
    float32 [N, H, W, 3] in [-1, 1].
  """
  return generator.apply(variables, images, train=False).astype(jnp.float32)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run wrote to `<workdir>/config.json`."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'{path} not found: {workdir!r} is not a shopstyle_jax workdir (train into it first '
        'with python main.py --config=... --workdir=...).')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


class Stylizer:
  """A trained generator as a callable on uint8 photos of any size."""

  def __init__(self, generator: nn.Module, variables: Any, step: Optional[int] = None):
    self.generator = generator
    self.variables = jax.device_put(variables)
    self.step = step

  @property
  def factor(self) -> int:
    return self.generator.factor

  def __call__(self, images: np.ndarray, *, brightness: float = 0.0,
               contrast: float = 1.0) -> np.ndarray:
    """uint8 [H,W,3] or [N,H,W,3] (also gray [H,W]/[H,W,1], RGBA, uint16, float
    [0,1]) -> uint8 of the same leading shape with 3 channels.

    Pads by reflection to the generator's multiple, stylizes, crops back, and
    applies the reference's post-processing: `contrast` scales around mid-grey,
    `brightness` (in [-1, 1]) adds, before quantising to uint8.
    """
    rgb = image_lib.to_rgb_uint8(images)
    single = rgb.ndim == 3
    batch = rgb[None] if single else rgb
    padded, pad = image_lib.pad_to_multiple(image_lib.uint8_to_model(batch), self.factor)
    out = stylize_fn(self.generator, self.variables, jnp.asarray(padded))
    out = image_lib.adjust(np.asarray(out), brightness, contrast)
    out = image_lib.model_to_uint8(image_lib.crop(out, pad))
    return out[0] if single else out


def load_stylizer(workdir: str, step: Optional[int] = None, *,
                  precision: Optional[str] = None) -> Stylizer:
  """Restores a checkpoint's generator (EMA weights when the run kept them).

  Args:
    workdir: a training workdir (holds config.json and checkpoints/).
    step: checkpoint step; the latest by default.
    precision: 'float32' or 'bfloat16' activations; default float32.
  """
  config = read_config(workdir)
  dtype = jnp.bfloat16 if precision == 'bfloat16' else jnp.float32
  generator = generators.create_generator(config.model, dtype=dtype)
  tree, step = checkpoints.restore_subtree(
      workdir, ('g_params', 'g_batch_stats', 'ema_params'), step)
  params = tree['ema_params'] or tree['g_params']
  variables = {'params': params}
  if tree['g_batch_stats']:
    variables['batch_stats'] = tree['g_batch_stats']
  return Stylizer(generator, variables, step)
