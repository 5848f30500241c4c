"""PatchGAN discriminators: conditional D(photo, image) (pix2pix) and
unconditional D(image) (CycleGAN, CUT) -> patch logits."""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from shopstyle_jax.models import layers

Dtype = Any


class _PatchGAN(nn.Module):
  """pix2pix's NLayerDiscriminator body; 3 layers = the 70x70 PatchGAN.

  Returns one logit per overlapping patch of its input, [N, h, w, 1]. The two
  discriminators below differ only in what they feed it, so their parameter
  trees differ only in the first conv's input channels.

  With `num_styles` S > 1 it knows the style (a projection discriminator,
  Miyato & Koyama 2018, per patch): each patch's logit gains <v_s, phi(patch)>,
  phi the last hidden features and v_s the style's row of a learned [S, C]
  table blended by the style weights [N, S]; one-hot rows judge each style on
  its own. With S = 1 (the default) nothing is added and `style` is ignored.
  """

  width: int = 64
  num_layers: int = 3
  norm: str = 'batch'
  dtype: Dtype = jnp.float32
  num_styles: int = 1

  def _logits(self, h: jax.Array, train: bool, style: Optional[jax.Array] = None) -> jax.Array:
    """The PatchGAN on h; called from the subclasses' compact __call__."""
    bias = layers.uses_bias(self.norm)
    h = nn.leaky_relu(layers.down_conv(self.width, True, self.dtype)(h.astype(self.dtype)), 0.2)
    for n in range(1, self.num_layers + 1):
      features = self.width * min(2**n, 8)
      stride = 2 if n < self.num_layers else 1
      h = layers.conv(features, 4, stride, ((1, 1), (1, 1)), use_bias=bias, dtype=self.dtype)(h)
      h = nn.leaky_relu(layers.make_norm(self.norm, train, self.dtype)(h), 0.2)
    logits = layers.conv(1, 4, 1, ((1, 1), (1, 1)), dtype=self.dtype)(h).astype(jnp.float32)
    if self.num_styles == 1:
      return logits
    style = layers.check_style(style, self.num_styles, h.shape[0])
    table = self.param('style_projection', layers.conv_init, (self.num_styles, h.shape[-1]))
    # The logit conv's 4x4 window (padding 1) is centred between pixels: project
    # the features at the window's centre, averaged over its 2x2 central pixels.
    phi = nn.avg_pool(h.astype(jnp.float32), (2, 2), strides=(1, 1))  # [N, h-1, w-1, C]
    projection = jnp.einsum('nhwc,nc->nhw', phi, layers.mix(style, table))
    return logits + projection[..., None]


class PatchDiscriminator(_PatchGAN):
  """Conditional PatchGAN (pix2pix): sees the photo and the (real or generated)
  image concatenated on channels, [N, H, W, 3 + 3] for RGB."""

  @nn.compact
  def __call__(
    self, photo: jax.Array, image: jax.Array, style: Optional[jax.Array] = None, *, train: bool
  ) -> jax.Array:
    return self._logits(jnp.concatenate([photo, image], axis=-1), train, style)


class UnconditionalPatchDiscriminator(_PatchGAN):
  """Unconditional PatchGAN D(image) (CycleGAN, CUT): [N, H, W, C] -> [N, h, w, 1].

  CycleGAN and CUT use it with instance norm (their normD default; ours follows
  config.model.norm), where the official convs also have biases (see
  `layers.uses_bias`). Width 64, 3 layers, RGB: 2,765,633 parameters with batch
  norm; 2,763,841 with instance norm (official: 2,764,737, with its 896 biases).
  """

  @nn.compact
  def __call__(
    self, image: jax.Array, style: Optional[jax.Array] = None, *, train: bool
  ) -> jax.Array:
    return self._logits(image, train, style)


class SurfaceAndSharpDiscriminator(nn.Module):
  """Two unconditional PatchGANs: one judges the smoothed page (the surface the
  method's `disc_blur`/`disc_guided_*` make), the other the page as it is.
  Returns (surface logits, sharp logits); parameters under 'surface' and 'sharp'."""

  surface: UnconditionalPatchDiscriminator
  sharp: UnconditionalPatchDiscriminator

  @property
  def num_styles(self) -> int:
    return self.surface.num_styles

  def __call__(
    self,
    surface_image: jax.Array,
    image: jax.Array,
    style: Optional[jax.Array] = None,
    *,
    train: bool,
  ) -> tuple[jax.Array, jax.Array]:
    return self.surface(surface_image, style, train=train), self.sharp(image, style, train=train)


def create_discriminator(
  model_config, dtype: Dtype = jnp.float32, conditional: bool = True, num_styles: int = 1
) -> _PatchGAN:
  """PatchDiscriminator D(photo, image), or with conditional=False the
  UnconditionalPatchDiscriminator D(image), as `config.model` sets it; with
  `num_styles` > 1 a projection discriminator that also reads style weights."""
  m = model_config
  cls = PatchDiscriminator if conditional else UnconditionalPatchDiscriminator
  return cls(
    width=m.disc_width, num_layers=m.disc_layers, norm=m.norm, dtype=dtype, num_styles=num_styles
  )
