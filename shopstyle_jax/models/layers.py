"""Building blocks shared by the generators and the discriminator."""

import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Dtype = Any

# pix2pix initialises every conv with N(0, 0.02) and biases with 0.
conv_init = nn.initializers.normal(0.02)

NORMS = ('instance', 'batch', 'none')
UPSAMPLES = ('conv_transpose', 'resize_conv', 'bilinear_conv')
# config.precision: the activations' dtype; parameters always stay float32.
PRECISIONS = ('float32', 'bfloat16')


def precision_dtype(precision: Optional[str]) -> Dtype:
  """'float32' (or None) / 'bfloat16' -> the dtype the networks compute in."""
  if precision not in (None, *PRECISIONS):
    raise ValueError(f"precision={precision!r}; use 'float32' or 'bfloat16'.")
  return jnp.bfloat16 if precision == 'bfloat16' else jnp.float32


_NHWC = ('NHWC', 'HWIO', 'NHWC')


# Below this many output pixels per image, XLA:CPU's convolution gradients are
# slower than an im2col GEMM's (measured on pix2pix's inner layers: up to 4x).
_SMALL_OUTPUT_PIXELS = 256
# Fewer output channels than this over at least this many output pixels (all
# images together): XLA:CPU's own convolution gradients are fastest.
_FEW_OUTPUT_CHANNELS = 16
_MANY_ROWS = 2048


def _conv_im2col(x, w, strides, padding):
  """The convolution as one GEMM over im2col patches; autodiff gives GEMMs too."""
  kh, kw, cin, cout = w.shape
  (sh, sw) = strides
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
  patches = jnp.concatenate(
    [
      xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
      for i in range(kh)
      for j in range(kw)
    ],
    axis=-1,
  )  # [n, ho, wo, kh*kw*cin]
  y = jnp.dot(
    patches.reshape(-1, kh * kw * cin),
    w.reshape(kh * kw * cin, cout),
    preferred_element_type=jnp.float32,
  )
  return y.reshape(x.shape[0], ho, wo, cout).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_cpu(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC)


def _conv_cpu_fwd(x, w, strides, padding):
  return _conv_cpu(x, w, strides, padding), (x, w)


def _conv_cpu_bwd(strides, padding, residuals, g):
  x, w = residuals
  kh, kw, cin, cout = w.shape
  (sh, sw), (ho, wo) = strides, g.shape[1:3]
  if ho * wo <= _SMALL_OUTPUT_PIXELS and cout >= 8:
    # Small outputs (the U-Net's inner layers): both gradients as GEMMs.
    _, vjp = jax.vjp(lambda x, w: _conv_im2col(x, w, strides, padding), x, w)
    return vjp(g)
  conv = lambda x, w: lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC)
  m = g.shape[0] * ho * wo
  if cout < _FEW_OUTPUT_CHANNELS and m >= _MANY_ROWS:
    # A handful of output channels over many pixels (the logit layer, the
    # U-Net's RGB output): XLA's own gradient kernels win there.
    _, vjp = jax.vjp(conv, x, w)
    return vjp(g)
  _, vjp_x = jax.vjp(lambda x: conv(x, w), x)
  (dx,) = vjp_x(g)
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  # dW[i, j] = (input tap (i, j))^T x (output gradient) over batch and output
  # pixels: one GEMM per kernel tap, written as g^T x so that its long
  # contraction is the leading dimension of both operands (1.5-4x faster on
  # XLA:CPU than the einsum 'nhwc,nhwo->co').
  g2 = g.reshape(m, cout)
  dw = jnp.stack(
    [
      jnp.dot(
        g2.T,
        xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw].reshape(m, cin),
        preferred_element_type=jnp.float32,
      ).T
      for i in range(kh)
      for j in range(kw)
    ]
  )
  return dx, dw.reshape(kh, kw, cin, cout).astype(w.dtype)


_conv_cpu.defvjp(_conv_cpu_fwd, _conv_cpu_bwd)


def conv_general_dilated(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  precision=None,
  **kwargs,
):
  """`lax.conv_general_dilated`, made faster on XLA:CPU. Same maths either way.

  On CPU, plain NHWC convolutions keep XLA's forward pass (so training,
  inference and exported functions compute identical pixels) but get their
  gradients from GEMMs, which XLA:CPU's own convolution kernels are 2-4x slower
  than (PyTorch's oneDNN does not have that gap): a GEMM per kernel tap for
  the weight gradient, and for small outputs (the U-Net's inner layers) both
  gradients through an im2col GEMM; layers with only a few output channels
  over many pixels keep XLA's gradients, which win there. Elsewhere (GPU/TPU)
  this is exactly `lax.conv_general_dilated`.
  """
  simple = (
    jax.default_backend() == 'cpu'
    and feature_group_count == 1
    and not kwargs
    and precision is None
    and all(d in (None, 1) for d in (lhs_dilation or (1,)) + (rhs_dilation or (1,)))
    and not isinstance(padding, str)
    and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  )
  if not simple:
    return lax.conv_general_dilated(
      lhs,
      rhs,
      window_strides,
      padding,
      lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      precision=precision,
      **kwargs,
    )
  return _conv_cpu(lhs, rhs, tuple(window_strides), tuple(tuple(p) for p in padding))


def conv(
  features: int,
  kernel: int,
  stride: int = 1,
  padding: Any = 'SAME',
  use_bias: bool = True,
  dtype: Any = jnp.float32,
  name: str = None,
) -> nn.Conv:
  """An nn.Conv with pix2pix's init and the CPU-friendly weight gradient."""
  return nn.Conv(
    features,
    (kernel, kernel),
    strides=(stride, stride),
    padding=padding,
    use_bias=use_bias,
    kernel_init=conv_init,
    dtype=dtype,
    conv_general_dilated=conv_general_dilated,
    name=name,
  )


# The variable collection of instance-norm statistics (`InstanceNorm`); the
# stylizers' tiling (`inference.NORM_STATS`) passes it in.
NORM_STATS = 'norm_stats'


class InstanceNorm(nn.Module):
  """PyTorch's InstanceNorm2d (no affine parameters) whose statistics can be
  captured from one pass and imposed on another: tiled stylizing normalises
  every tile with the whole frame's statistics (`inference.run_tiled`).

  - plain apply: `nn.InstanceNorm` (the same program, the same pixels);
  - apply with `mutable=[NORM_STATS]`: also stores this layer's per-example,
    per-channel float32 'mean' and 'var' [N, C] in that collection;
  - apply with a (not mutable) NORM_STATS collection in the variables:
    normalises with those statistics instead of the input's.
  """

  epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    capture = self.is_mutable_collection(NORM_STATS) and not self.is_initializing()
    if not capture and self.has_variable(NORM_STATS, 'mean'):
      mean = self.get_variable(NORM_STATS, 'mean')[:, None, None, :]
      var = self.get_variable(NORM_STATS, 'var')[:, None, None, :]
      return jnp.asarray((x - mean) * lax.rsqrt(var + self.epsilon), self.dtype)
    if capture:
      x32 = x.astype(jnp.float32)
      mean = x32.mean((1, 2))
      # flax's fast variance, as nn.InstanceNorm computes it.
      var = jnp.maximum(0.0, jnp.square(x32).mean((1, 2)) - jnp.square(mean))
      self.put_variable(NORM_STATS, 'mean', mean)
      self.put_variable(NORM_STATS, 'var', var)
    return nn.InstanceNorm(epsilon=self.epsilon, use_scale=False, use_bias=False, dtype=self.dtype)(
      x
    )


def make_norm(
  norm: str, train: bool, dtype: Dtype, affine: bool = True
) -> Callable[[jax.Array], jax.Array]:
  """Returns a fresh normalisation layer (call inside a compact method).

  affine=False drops batch norm's own scale and bias (`StyleNorm` brings per-style
  ones); instance norm has none either way."""
  if norm == 'batch':
    # pix2pix's BatchNorm2d: momentum 0.1 (flax: 0.9), eps 1e-5. Under jit on a
    # global batch sharded over devices, the statistics are the global batch's.
    return nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      use_scale=affine,
      use_bias=affine,
      dtype=dtype,
    )
  if norm == 'instance':
    # PyTorch's InstanceNorm2d default: no affine parameters.
    return InstanceNorm(epsilon=1e-5, dtype=dtype)
  if norm == 'none':
    return lambda x: x
  raise ValueError(f'Unknown norm {norm!r}; allowed: {NORMS}.')


# Parameters with one row per style ([S, ...]): a fine-tuning run with more styles
# grows them (`config.init_from`), keeping the old rows.
STYLE_TABLES = ('style_scale', 'style_shift', 'style_projection')


def mix(style: jax.Array, table: jax.Array) -> jax.Array:
  """Style weights [N, S] x a per-style table [S, C] -> [N, C]: the blend of the
  styles' rows (a one-hot row picks one style)."""
  return jnp.dot(style.astype(jnp.float32), table.astype(jnp.float32))


def check_style(style: Optional[jax.Array], num_styles: int, batch: int) -> jax.Array:
  """The [N, S] style weights a multi-style network was given; ValueError otherwise."""
  if style is None:
    raise ValueError(
      f'This network holds {num_styles} styles: pass style weights [N, {num_styles}] '
      '(a one-hot row per image picks a style; rows summing to 1 mix them).'
    )
  if style.shape != (batch, num_styles):
    raise ValueError(
      f'style weights have shape {style.shape}; this network needs [{batch}, {num_styles}] '
      '(one row per image, one column per style).'
    )
  return style


def style_args(module: Any, batch: int = 1) -> tuple:
  """Extra positional arguments for initialising or tracing `module`: () with
  one style, else an even [batch, S] mix (any weights give the same parameters)."""
  n = getattr(module, 'num_styles', 1)
  return () if n == 1 else (jnp.full((batch, n), 1.0 / n, jnp.float32),)


class StyleNorm(nn.Module):
  """Conditional normalisation (conditional instance norm, Dumoulin et al. 2017):
  the norm without affine parameters, then a scale and shift per channel taken
  from per-style tables [S, C] and blended by the style weights [N, S]. Mixing
  styles blends these per-layer style embeddings inside the network.

  Rows start at scale 1, shift 0: every style starts as the plain norm.
  """

  norm: str
  num_styles: int
  train: bool
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
    h = make_norm(self.norm, self.train, self.dtype, affine=False)(x)
    c = x.shape[-1]
    scale = self.param('style_scale', nn.initializers.ones, (self.num_styles, c))
    shift = self.param('style_shift', nn.initializers.zeros, (self.num_styles, c))
    gamma = mix(style, scale)[:, None, None, :].astype(self.dtype)
    beta = mix(style, shift)[:, None, None, :].astype(self.dtype)
    return h * gamma + beta


def style_norm(
  norm: str, train: bool, dtype: Dtype, num_styles: int, style: Optional[jax.Array]
) -> Callable[[jax.Array], jax.Array]:
  """A fresh normalisation layer h -> norm(h) (call inside a compact method): with
  one style exactly `make_norm`'s (today's parameter tree), with several a
  `StyleNorm` driven by `style` [N, S]."""
  if num_styles == 1:
    return make_norm(norm, train, dtype)
  layer = StyleNorm(norm, num_styles, train, dtype)
  return lambda h: layer(h, style)


def uses_bias(norm: str) -> bool:
  """Convolutions before a norm layer have no bias: the norm subtracts the
  mean and cancels it (pix2pix does this for batch norm; we also do it for
  instance norm, where a bias would get only rounding noise as gradient, which
  Adam then amplifies into random updates)."""
  return norm == 'none'


# Output phase r of a 4x4 stride-2 transposed convolution (padding 1) along an
# axis sees input pixels (m-1, m) through kernel taps (3, 1) when r = 0, and
# (m, m+1) through taps (2, 0) when r = 1.
_PHASE_TAPS = np.array([[3, 1], [2, 0]])


def phase_kernel(kernel: jax.Array) -> jax.Array:
  """A transposed-conv kernel [4, 4, cin, cout] (PyTorch's ConvTranspose2d
  weight [cin, cout, 4, 4] moved to HWIO) -> ConvTranspose4x4's [2, 2, cin, 4*cout]."""
  cin, cout = kernel.shape[2:]
  pk = kernel[_PHASE_TAPS[:, None, :, None], _PHASE_TAPS[None, :, None, :]]
  return pk.transpose(2, 3, 4, 0, 1, 5).reshape(2, 2, cin, 4 * cout)


def transposed_kernel(pk: jax.Array) -> jax.Array:
  """The inverse of `phase_kernel`."""
  cin, cout = pk.shape[2], pk.shape[3] // 4
  pk = pk.reshape(2, 2, cin, 2, 2, cout).transpose(3, 4, 0, 1, 2, 5)  # [ry, rx, wy, wx, ...]
  kernel = jnp.zeros((4, 4, cin, cout), pk.dtype)
  return kernel.at[_PHASE_TAPS[:, None, :, None], _PHASE_TAPS[None, :, None, :]].set(pk)


class ConvTranspose4x4(nn.Module):
  """4x4 stride-2 transposed convolution, exactly PyTorch's ConvTranspose2d(4, 2, 1).

  Each output pixel sees a 2x2 window of the input (`_PHASE_TAPS`), so the
  layer is one 2x2 VALID convolution of the 1-padded input that produces the
  four output phases as channel groups, then an interleave: the transposed
  convolution's FLOPs, but its gradient is an ordinary convolution gradient,
  which XLA:CPU runs ~100x faster than `lax.conv_transpose`'s.

  The kernel is stored in that phase layout, [2, 2, cin, 4*cout] (same number
  of weights, same N(0, 0.02) init), so no call pays for rearranging it;
  `phase_kernel`/`transposed_kernel` convert from/to PyTorch's layout.
  """

  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, h, w, cin = x.shape
    pk = self.param('kernel', conv_init, (2, 2, cin, 4 * self.features))
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = conv_general_dilated(
      xp.astype(self.dtype),
      pk.astype(self.dtype),
      (1, 1),
      ((0, 0), (0, 0)),
      dimension_numbers=_NHWC,
    )  # [n, h+1, w+1, 4*cout]
    y = y.reshape(n, h + 1, w + 1, 2, 2, self.features)
    # Phase (ry, rx) starts at window (ry, rx): out[2m+ry, 2n+rx] = y[m+ry, n+rx, ry, rx].
    rows = [
      jnp.stack([y[:, ry : ry + h, rx : rx + w, ry, rx] for rx in (0, 1)], axis=3) for ry in (0, 1)
    ]  # each [n, h, w, 2(rx), c]
    out = jnp.stack(rows, axis=2)  # [n, h, 2(ry), w, 2(rx), c]
    out = out.reshape(n, 2 * h, 2 * w, self.features)
    if self.use_bias:
      out = out + self.param('bias', nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return out


class ResizeConv(nn.Module):
  """x2 upsampling then a 3x3 conv (Odena et al., 2016).

  `method` 'nearest' copies each pixel to a 2x2 block; 'bilinear' interpolates
  at half-pixel centres with edges replicated: the [1, 3, 3, 1] transposed filter
  of the official CUT generator's anti-aliased `Upsample` (tests/test_models.py
  checks the equivalence), smoother than the nearest copy's 2-pixel period,
  which a few layers can turn into a grid.
  """

  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  method: str = 'nearest'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.method == 'nearest':
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    else:
      n, h, w, c = x.shape
      x = jax.image.resize(x, (n, 2 * h, 2 * w, c), self.method)
    return conv(
      self.features, 3, padding=((1, 1), (1, 1)), use_bias=self.use_bias, dtype=self.dtype
    )(x)


def make_upsample(kind: str, features: int, use_bias: bool, dtype: Dtype) -> nn.Module:
  if kind == 'conv_transpose':
    return ConvTranspose4x4(features, use_bias=use_bias, dtype=dtype)
  if kind == 'resize_conv':
    return ResizeConv(features, use_bias=use_bias, dtype=dtype)
  if kind == 'bilinear_conv':
    return ResizeConv(features, use_bias=use_bias, dtype=dtype, method='bilinear')
  raise ValueError(f'Unknown upsample {kind!r}; allowed: {UPSAMPLES}.')


def down_conv(features: int, use_bias: bool, dtype: Dtype) -> nn.Conv:
  """pix2pix's Conv2d(k=4, s=2, p=1)."""
  return conv(features, 4, 2, padding=((1, 1), (1, 1)), use_bias=use_bias, dtype=dtype)
