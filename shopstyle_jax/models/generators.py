"""Generators G(x) (or G(z, x)): photo in [-1, 1] -> styled image in [-1, 1]."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from shopstyle_jax.models import layers

Dtype = Any


Taps = Union[str, Sequence[str]]


class _TappedGenerator(nn.Module):
  """What both generators share: G(x), and the encoder's features at named taps
  (PatchNCE's inputs) from the same parameters. Subclasses define `tap_names`,
  `nce_taps` and `_forward(x, train, taps, decode, style) -> (G(x) or None, features)`.

  Style codes: with `num_styles` S > 1 every normalisation layer is a
  `layers.StyleNorm` and a call takes `style`, float [N, S] weights (one-hot
  picks a style, rows summing to 1 mix them); with S = 1 (the default) the
  network and its parameters are exactly the single-style ones and `style` is
  ignored.
  """

  def __call__(
    self,
    x: jax.Array,
    style: Optional[jax.Array] = None,
    *,
    train: bool,
    taps: Optional[Taps] = None,
  ) -> Union[jax.Array, Tuple[jax.Array, List[jax.Array]]]:
    """G(x); with `taps`, (G(x), the encoder features at `taps`) from one pass."""
    style = self._style(x, style)
    if taps is None:
      return self._forward(x, train, (), True, style)[0]
    return self._forward(x, train, _check_taps(taps, self.tap_names), True, style)

  def encode(
    self,
    x: jax.Array,
    style: Optional[jax.Array] = None,
    *,
    train: bool,
    taps: Optional[Taps] = None,
  ) -> List[jax.Array]:
    """Encoder features at `taps` (default `nce_taps`), in that order; no decoder.

    Same parameters as `__call__`: `g.apply(variables, x, train=..., method=g.encode)`.
    Computation stops at the deepest requested tap. Features are in the compute
    dtype; with batch norm and train=True, pass mutable=['batch_stats'] as for __call__.
    """
    taps = self.nce_taps if taps is None else taps
    style = self._style(x, style)
    return self._forward(x, train, _check_taps(taps, self.tap_names), False, style)[1]

  def _style(self, x: jax.Array, style: Optional[jax.Array]) -> Optional[jax.Array]:
    """The style weights the network reads: None with one style."""
    if self.num_styles == 1:
      return None
    return layers.check_style(style, self.num_styles, x.shape[0])

  def _norm(self, train: bool, style: Optional[jax.Array]):
    """A fresh (style-conditioned, with several styles) norm layer."""
    return layers.style_norm(self.norm, train, self.dtype, self.num_styles, style)


class UNetGenerator(_TappedGenerator):
  """The pix2pix U-Net (Isola et al., 2017), layer for layer as the official code.

  Encoder C64-C128-C256-C512-C512-C512-C512-C512 (for depth 8, width 64),
  decoder mirrored with skip connections, dropout on the three innermost
  decoder blocks that have a skip. As in the official PyTorch code (whose
  in-place LeakyReLU rewrites the skip tensor), skips carry activated features.

  Encoder taps for CUT's PatchNCE (`encode`, or `__call__(..., taps=...)`); the
  official CUT has no U-Net taps, so these are ours, each a tensor the next
  layers read:
    'input': the input, noise channels included, [N, H, W, C_in].
    'enc{l}', l = 1..depth: encoder level l, [N, H/2^l, W/2^l, width*min(2^(l-1), 8)]:
      LeakyReLU(0.2) of its (normalised) conv, i.e. the skip, for l < depth;
      ReLU of the innermost conv for l = depth.
  `nce_taps` = ('input', 'enc1', ..., 'enc4'): pixels up to 1/16 resolution.
  """

  width: int = 64
  depth: int = 8
  norm: str = 'batch'
  dropout: float = 0.5
  noise_channels: int = 0
  upsample: str = 'conv_transpose'
  output_upsample: str = ''
  out_channels: int = 3
  dtype: Dtype = jnp.float32
  num_styles: int = 1

  @property
  def factor(self) -> int:
    """Input height and width must be multiples of this."""
    return 2**self.depth

  @property
  def tap_names(self) -> Tuple[str, ...]:
    """Every encoder tap, in network order."""
    return ('input',) + tuple(f'enc{level}' for level in range(1, self.depth + 1))

  @property
  def nce_taps(self) -> Tuple[str, ...]:
    """The default taps of `encode`: the input and the first four encoder levels."""
    return self.tap_names[:5]

  def _filters(self, level: int) -> int:
    return self.width * min(2**level, 8)

  @nn.compact
  def _forward(
    self, x: jax.Array, train: bool, taps: Tuple[str, ...], decode: bool, style: Any = None
  ) -> Tuple[Optional[jax.Array], List[jax.Array]]:
    """The network, shared by `__call__` and `encode`: (G(x) or None, tap features)."""
    if self.depth < 2:
      raise ValueError(f'U-Net depth must be >= 2, got {self.depth}.')
    record = _TapRecorder(taps, decode)
    bias = layers.uses_bias(self.norm)
    x = add_noise(self, x, train).astype(self.dtype)
    if record('input', x):
      return record.result()
    # Encoder: level 0 has no norm; the innermost level has no norm either.
    h = layers.down_conv(self.width, bias, self.dtype)(x)
    skips = []
    for level in range(1, self.depth):
      skips.append(nn.leaky_relu(h, 0.2))
      if record(f'enc{level}', skips[-1]):
        return record.result()
      h = layers.down_conv(self._filters(level), bias, self.dtype)(skips[-1])
      if level < self.depth - 1:
        h = self._norm(train, style)(h)
    if record(f'enc{self.depth}', nn.relu(h)):
      return record.result()
    # Decoder, innermost first.
    for level in reversed(range(1, self.depth)):
      h = layers.make_upsample(self.upsample, self._filters(level - 1), bias, self.dtype)(
        nn.relu(h)
      )
      h = self._norm(train, style)(h)
      # The official code puts dropout in the depth-5 blocks just outside the innermost.
      if self.dropout > 0 and self.depth - 4 <= level < self.depth - 1:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
      h = jnp.concatenate([skips[level - 1], h], axis=-1)
    last = self.output_upsample or self.upsample
    h = layers.make_upsample(last, self.out_channels, True, self.dtype)(nn.relu(h))
    return record.result(jnp.tanh(h.astype(jnp.float32)))


class ResnetGenerator(_TappedGenerator):
  """Johnson et al. (2016) / CycleGAN ResNet generator: 2 downsamplings, n residual blocks.

  Layer for layer pytorch-CycleGAN-and-pix2pix's resnet_{n}blocks: reflect-pad 3,
  7x7 conv, two 3x3 stride-2 convs (zero padding 1), n residual blocks
  (x + [reflect-pad 1, 3x3 conv, norm, ReLU, dropout, reflect-pad 1, 3x3 conv,
  norm]), two x2 upsamplings, reflect-pad 3, 7x7 conv with bias, tanh; every
  conv but the last is followed by norm, and by ReLU except a block's second.
  Two differences, kept so that existing checkpoints load and give the same pixels:
  - No conv bias before a norm (`layers.uses_bias`), also with instance norm,
    where the official code has one (its gradient is only rounding noise).
  - 'conv_transpose' upsamples with a 4x4 transposed conv (pix2pix's U-Net
    layer, `layers.ConvTranspose4x4`), not the official 3x3 one (stride 2,
    padding 1, output_padding 1).
  Width 64, 9 blocks, instance norm: 11,659,651 parameters; the official
  11,378,179 = ours - 655,360 (4x4 vs 3x3 upsampling weights) + 368,640 + 5,248
  (biases).

  Anti-aliasing: CUT's default generator replaces each stride-2 conv by a
  stride-1 conv and a [1, 2, 1]^2 blur with stride 2, and each transposed conv
  by a fixed [1, 3, 3, 1]^2 upsampling and a 3x3 conv. The upsampling is
  `upsample='bilinear_conv'` exactly; the downsampling keeps CycleGAN's plain
  strided convs (CUT's --no_antialias): the blurred variant runs them at full
  resolution (4x their FLOPs; about +25% for the whole generator at width 64).

  Encoder taps for CUT's PatchNCE (`encode`, or `__call__(..., taps=...)`):
    'pad': the reflection-padded input, [N, H+6, W+6, C_in] (official layer 0).
    'down1', 'down2': the stride-2 convs' outputs, before norm and ReLU,
      [N, H/2, W/2, 2*width] and [N, H/4, W/4, 4*width] (official layers 4 and
      8: the same convs, there at stride 1 before their blur).
    'block{k}', k = 1..blocks: residual block k's output (after the skip sum),
      [N, H/4, W/4, 4*width] (official layers 12 and 16 are blocks 1 and 5).
  `nce_taps` is CUT's nce_layers '0,4,8,12,16' as the paper names them (RGB
  pixels, first and second downsampling conv, first and fifth residual block):
  ('pad', 'down1', 'down2', 'block1', 'block5'), receptive fields 1, 9, 13, 29
  and 93 pixels (1, 9, 15, 35, 99 with the blur); with fewer than 5 blocks, the
  last block replaces block 5. (Official CUT with --no_antialias keeps the
  indices, which there shift to the ReLU after 'down2' and blocks 3 and 7.)
  """

  width: int = 64
  blocks: int = 9
  norm: str = 'instance'
  dropout: float = 0.0
  noise_channels: int = 0
  upsample: str = 'conv_transpose'
  out_channels: int = 3
  dtype: Dtype = jnp.float32
  num_styles: int = 1

  @property
  def factor(self) -> int:
    return 4

  @property
  def tap_names(self) -> Tuple[str, ...]:
    """Every encoder tap, in network order."""
    return ('pad', 'down1', 'down2') + tuple(f'block{k}' for k in range(1, self.blocks + 1))

  @property
  def nce_taps(self) -> Tuple[str, ...]:
    """The default taps of `encode`: CUT's nce_layers '0,4,8,12,16'."""
    blocks = tuple(dict.fromkeys(f'block{min(k, self.blocks)}' for k in (1, 5)))
    return ('pad', 'down1', 'down2') + (blocks if self.blocks else ())

  @nn.compact
  def _forward(
    self, x: jax.Array, train: bool, taps: Tuple[str, ...], decode: bool, style: Any = None
  ) -> Tuple[Optional[jax.Array], List[jax.Array]]:
    """The network, shared by `__call__` and `encode`: (G(x) or None, tap features)."""
    record = _TapRecorder(taps, decode)
    bias = layers.uses_bias(self.norm)
    norm = lambda: self._norm(train, style)
    conv = lambda f, k, s=1, pad=((0, 0), (0, 0)): layers.conv(
      f, k, s, pad, use_bias=bias, dtype=self.dtype
    )
    x = add_noise(self, x, train).astype(self.dtype)
    h = reflect_pad(x, 3)
    if record('pad', h):
      return record.result()
    h = nn.relu(norm()(conv(self.width, 7)(h)))
    for i in (1, 2):
      h = conv(self.width * 2**i, 3, 2, ((1, 1), (1, 1)))(h)
      if record(f'down{i}', h):
        return record.result()
      h = nn.relu(norm()(h))
    f = self.width * 4
    for k in range(1, self.blocks + 1):
      r = nn.relu(norm()(conv(f, 3)(reflect_pad(h, 1))))
      if self.dropout > 0:
        r = nn.Dropout(self.dropout, deterministic=not train)(r)
      h = h + norm()(conv(f, 3)(reflect_pad(r, 1)))
      if record(f'block{k}', h):
        return record.result()
    for i in (1, 0):
      h = layers.make_upsample(self.upsample, self.width * 2**i, bias, self.dtype)(h)
      h = nn.relu(norm()(h))
    h = layers.conv(self.out_channels, 7, 1, ((0, 0), (0, 0)), dtype=self.dtype)(reflect_pad(h, 3))
    return record.result(jnp.tanh(h.astype(jnp.float32)))


def _check_taps(taps: Taps, allowed: Tuple[str, ...]) -> Tuple[str, ...]:
  """Validates requested tap names (one name or a sequence); returns a tuple."""
  taps = (taps,) if isinstance(taps, str) else tuple(taps)
  unknown = [t for t in taps if t not in allowed]
  if not taps or unknown:
    raise ValueError(f'Unknown or no encoder taps {list(taps)}; allowed: {allowed}.')
  return taps


class _TapRecorder:
  """Collects the requested taps during a forward pass.

  Calling it with (name, value) keeps the value if requested and says whether
  the pass can stop: encoding only (no decoder) and every tap collected.
  """

  def __init__(self, taps: Tuple[str, ...], decode: bool):
    self.taps, self.decode = taps, decode
    self.features: Dict[str, jax.Array] = {}

  def __call__(self, name: str, value: jax.Array) -> bool:
    if name in self.taps:
      self.features[name] = value
    return not self.decode and len(self.features) == len(set(self.taps))

  def result(
    self, image: Optional[jax.Array] = None
  ) -> Tuple[Optional[jax.Array], List[jax.Array]]:
    return image, [self.features[t] for t in self.taps]


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


def create_generator(model_config, dtype: Dtype = jnp.float32, num_styles: int = 1) -> nn.Module:
  """The generator named by `config.model.generator`; `num_styles` > 1 conditions
  it on style weights (`style_mix.num_styles(config)`)."""
  m = model_config
  if m.generator == 'unet':
    return UNetGenerator(
      width=m.width,
      depth=m.depth,
      norm=m.norm,
      dropout=m.dropout,
      noise_channels=m.noise_channels,
      upsample=m.upsample,
      output_upsample=m.output_upsample,
      dtype=dtype,
      num_styles=num_styles,
    )
  if m.generator == 'resnet':
    return ResnetGenerator(
      width=m.width,
      blocks=m.resnet_blocks,
      norm=m.norm,
      dropout=m.dropout,
      noise_channels=m.noise_channels,
      upsample=m.upsample,
      dtype=dtype,
      num_styles=num_styles,
    )
  raise ValueError(f'Unknown config.model.generator {m.generator!r}; allowed: {GENERATORS}.')
