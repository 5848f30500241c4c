"""Generators G(x) (or G(z, x)): photo in [-1, 1] -> styled image in [-1, 1]."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shopstyle_jax.models import layers

Dtype = Any


class UNetGenerator(nn.Module):
  """The pix2pix U-Net (Isola et al., 2017), layer for layer as the official code.

  Encoder C64-C128-C256-C512-C512-C512-C512-C512 (for depth 8, width 64),
  decoder mirrored with skip connections, dropout on the three innermost
  decoder blocks that have a skip. As in the official PyTorch code (whose
  in-place LeakyReLU rewrites the skip tensor), skips carry activated features.
  """
  width: int = 64
  depth: int = 8
  norm: str = 'batch'
  dropout: float = 0.5
  noise_channels: int = 0
  upsample: str = 'conv_transpose'
  out_channels: int = 3
  dtype: Dtype = jnp.float32

  @property
  def factor(self) -> int:
    """Input height and width must be multiples of this."""
    return 2 ** self.depth

  def _filters(self, level: int) -> int:
    return self.width * min(2 ** level, 8)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.depth < 2:
      raise ValueError(f'U-Net depth must be >= 2, got {self.depth}.')
    bias = layers.uses_bias(self.norm)
    x = add_noise(self, x, train)
    # Encoder: level 0 has no norm; the innermost level has no norm either.
    h = layers.down_conv(self.width, bias, self.dtype)(x.astype(self.dtype))
    skips = []
    for level in range(1, self.depth):
      skips.append(nn.leaky_relu(h, 0.2))
      h = layers.down_conv(self._filters(level), bias, self.dtype)(skips[-1])
      if level < self.depth - 1:
        h = layers.make_norm(self.norm, train, self.dtype)(h)
    # Decoder, innermost first.
    for level in reversed(range(1, self.depth)):
      h = layers.make_upsample(self.upsample, self._filters(level - 1), bias, self.dtype)(
          nn.relu(h))
      h = layers.make_norm(self.norm, train, self.dtype)(h)
      # The official code puts dropout in the depth-5 blocks just outside the innermost.
      if self.dropout > 0 and self.depth - 4 <= level < self.depth - 1:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
      h = jnp.concatenate([skips[level - 1], h], axis=-1)
    h = layers.make_upsample(self.upsample, self.out_channels, True, self.dtype)(nn.relu(h))
    return jnp.tanh(h.astype(jnp.float32))


class ResnetGenerator(nn.Module):
  """Johnson et al. (2016) / CycleGAN ResNet generator: 2 downsamplings, n residual blocks."""
  width: int = 64
  blocks: int = 9
  norm: str = 'instance'
  dropout: float = 0.0
  noise_channels: int = 0
  upsample: str = 'conv_transpose'
  out_channels: int = 3
  dtype: Dtype = jnp.float32

  @property
  def factor(self) -> int:
    return 4

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bias = layers.uses_bias(self.norm)
    norm = lambda: layers.make_norm(self.norm, train, self.dtype)
    conv = lambda f, k, s=1, pad=((0, 0), (0, 0)): layers.conv(
        f, k, s, pad, use_bias=bias, dtype=self.dtype)
    x = add_noise(self, x, train).astype(self.dtype)
    h = nn.relu(norm()(conv(self.width, 7)(reflect_pad(x, 3))))
    for i in (1, 2):
      h = nn.relu(norm()(conv(self.width * 2 ** i, 3, 2, ((1, 1), (1, 1)))(h)))
    f = self.width * 4
    for _ in range(self.blocks):
      r = nn.relu(norm()(conv(f, 3)(reflect_pad(h, 1))))
      if self.dropout > 0:
        r = nn.Dropout(self.dropout, deterministic=not train)(r)
      h = h + norm()(conv(f, 3)(reflect_pad(r, 1)))
    for i in (1, 0):
      h = layers.make_upsample(self.upsample, self.width * 2 ** i, bias, self.dtype)(h)
      h = nn.relu(norm()(h))
    h = layers.conv(self.out_channels, 7, 1, ((0, 0), (0, 0)), dtype=self.dtype)(
        reflect_pad(h, 3))
    return jnp.tanh(h.astype(jnp.float32))


def reflect_pad(x: jax.Array, p: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')


def add_noise(module: nn.Module, x: jax.Array, train: bool) -> jax.Array:
  """Concatenates z ~ N(0, 1) (zeros when not training) as extra input channels."""
  if module.noise_channels <= 0:
    return x
  shape = x.shape[:-1] + (module.noise_channels,)
  if train:
    z = jax.random.normal(module.make_rng('noise'), shape, x.dtype)
  else:
    z = jnp.zeros(shape, x.dtype)
  return jnp.concatenate([x, z], axis=-1)


GENERATORS = ('unet', 'resnet')


def create_generator(model_config, dtype: Dtype = jnp.float32) -> nn.Module:
  """The generator named by `config.model.generator`."""
  m = model_config
  if m.generator == 'unet':
    return UNetGenerator(width=m.width, depth=m.depth, norm=m.norm, dropout=m.dropout,
                         noise_channels=m.noise_channels, upsample=m.upsample, dtype=dtype)
  if m.generator == 'resnet':
    return ResnetGenerator(width=m.width, blocks=m.resnet_blocks, norm=m.norm,
                           dropout=m.dropout, noise_channels=m.noise_channels,
                           upsample=m.upsample, dtype=dtype)
  raise ValueError(f'Unknown config.model.generator {m.generator!r}; allowed: {GENERATORS}.')
