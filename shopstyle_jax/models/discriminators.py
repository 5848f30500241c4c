"""Conditional PatchGAN discriminator D(photo, image) -> patch logits."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shopstyle_jax.models import layers

Dtype = Any


class PatchDiscriminator(nn.Module):
  """pix2pix's NLayerDiscriminator; 3 layers = the 70x70 PatchGAN.

  Sees the photo and the (real or generated) image concatenated on channels,
  and returns one logit per overlapping patch, [N, h, w, 1].
  """
  width: int = 64
  num_layers: int = 3
  norm: str = 'batch'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, photo: jax.Array, image: jax.Array, *, train: bool) -> jax.Array:
    bias = layers.uses_bias(self.norm)
    h = jnp.concatenate([photo, image], axis=-1).astype(self.dtype)
    h = nn.leaky_relu(layers.down_conv(self.width, True, self.dtype)(h), 0.2)
    for n in range(1, self.num_layers + 1):
      features = self.width * min(2 ** n, 8)
      stride = 2 if n < self.num_layers else 1
      h = layers.conv(features, 4, stride, ((1, 1), (1, 1)), use_bias=bias, dtype=self.dtype)(h)
      h = nn.leaky_relu(layers.make_norm(self.norm, train, self.dtype)(h), 0.2)
    h = layers.conv(1, 4, 1, ((1, 1), (1, 1)), dtype=self.dtype)(h)
    return h.astype(jnp.float32)


def create_discriminator(model_config, dtype: Dtype = jnp.float32) -> PatchDiscriminator:
  m = model_config
  return PatchDiscriminator(width=m.disc_width, num_layers=m.disc_layers, norm=m.norm,
                            dtype=dtype)
