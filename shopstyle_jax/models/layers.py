"""Building blocks shared by the generators and the discriminator."""

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Dtype = Any

# pix2pix initialises every conv with N(0, 0.02) and biases with 0.
conv_init = nn.initializers.normal(0.02)

NORMS = ('instance', 'batch', 'none')
UPSAMPLES = ('conv_transpose', 'resize_conv')


_NHWC = ('NHWC', 'HWIO', 'NHWC')


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_gemm_wgrad(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC)


def _conv_gemm_wgrad_fwd(x, w, strides, padding):
  return _conv_gemm_wgrad(x, w, strides, padding), (x, w)


def _conv_gemm_wgrad_bwd(strides, padding, residuals, g):
  x, w = residuals
  _, vjp_x = jax.vjp(
      lambda x: lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC), x)
  (dx,) = vjp_x(g)
  kh, kw, cin, cout = w.shape
  (sh, sw), (ho, wo) = strides, g.shape[1:3]
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  # dW[i, j] = sum over batch and output pixels of input tap (i, j) x output
  # gradient: one GEMM per kernel tap.
  dw = jnp.stack([
      jnp.einsum('nhwc,nhwo->co', xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw],
                 g, preferred_element_type=jnp.float32)
      for i in range(kh) for j in range(kw)])
  return dx, dw.reshape(kh, kw, cin, cout).astype(w.dtype)


_conv_gemm_wgrad.defvjp(_conv_gemm_wgrad_fwd, _conv_gemm_wgrad_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """`lax.conv_general_dilated`, with a faster weight gradient on XLA:CPU.

  XLA:CPU computes convolution weight gradients 2-4x slower than a GEMM per
  kernel tap does (and than PyTorch's oneDNN). On CPU, plain NHWC
  convolutions therefore take their weight gradient that way; the forward
  pass and the input gradient stay XLA's. Elsewhere (GPU/TPU) this is exactly
  `lax.conv_general_dilated`. Same maths either way.
  """
  simple = (jax.default_backend() == 'cpu' and feature_group_count == 1
            and not kwargs and precision is None
            and all(d in (None, 1) for d in (lhs_dilation or (1,)) + (rhs_dilation or (1,)))
            and not isinstance(padding, str)
            and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
  if not simple:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, precision=precision, **kwargs)
  return _conv_gemm_wgrad(lhs, rhs, tuple(window_strides), tuple(tuple(p) for p in padding))


def conv(features: int, kernel: int, stride: int = 1, padding: Any = 'SAME',
         use_bias: bool = True, dtype: Any = jnp.float32, name: str = None) -> nn.Conv:
  """An nn.Conv with pix2pix's init and the CPU-friendly weight gradient."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                 use_bias=use_bias, kernel_init=conv_init, dtype=dtype,
                 conv_general_dilated=conv_general_dilated, name=name)


def make_norm(norm: str, train: bool, dtype: Dtype) -> Callable[[jax.Array], jax.Array]:
  """Returns a fresh normalisation layer (call inside a compact method)."""
  if norm == 'batch':
    # pix2pix's BatchNorm2d: momentum 0.1 (flax: 0.9), eps 1e-5. Under jit on a
    # global batch sharded over devices, the statistics are the global batch's.
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        dtype=dtype)
  if norm == 'instance':
    # PyTorch's InstanceNorm2d default: no affine parameters.
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, dtype=dtype)
  if norm == 'none':
    return lambda x: x
  raise ValueError(f'Unknown norm {norm!r}; allowed: {NORMS}.')


def uses_bias(norm: str) -> bool:
  """Convolutions before a norm layer have no bias: the norm subtracts the
  mean and cancels it (pix2pix does this for batch norm; we also do it for
  instance norm, where a bias would get only rounding noise as gradient, which
  Adam then amplifies into random updates)."""
  return norm == 'none'


class ConvTranspose4x4(nn.Module):
  """4x4 stride-2 transposed convolution, exactly PyTorch's ConvTranspose2d(4, 2, 1).

  Output pixel 2m+r along an axis only sees input pixels m-1, m (r=0, kernel
  taps 3, 1) or m, m+1 (r=1, taps 2, 0). So the layer is one 2x2 VALID
  convolution of the 1-padded input producing all four output phases as
  channel groups, followed by an interleave. Same FLOPs as the transposed
  convolution, but its gradient is an ordinary convolution gradient, which
  XLA:CPU runs ~100x faster than that of `lax.conv_transpose`.

  The kernel has PyTorch's layout transposed to HWIO: kernel[ky, kx, cin, cout]
  multiplies input (i, j) into output (2i - 1 + ky, 2j - 1 + kx).
  """
  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, h, w, cin = x.shape
    kernel = self.param('kernel', conv_init, (4, 4, cin, self.features))
    # Phase r along an axis takes taps (3, 1) for r=0 and (2, 0) for r=1, in
    # window order (earlier input pixel first).
    taps = jnp.array([[3, 1], [2, 0]])
    # phase_kernels[ry, rx] = kernel[taps[ry]][:, taps[rx]] -> [2, 2, 2, 2, cin, cout]
    pk = kernel[taps[:, None, :, None], taps[None, :, None, :]]
    # -> [2(wy), 2(wx), cin, ry, rx, cout] so each phase is a channel group.
    pk = pk.transpose(2, 3, 4, 0, 1, 5).reshape(2, 2, cin, 4 * self.features)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = conv_general_dilated(xp.astype(self.dtype), pk.astype(self.dtype), (1, 1),
                             ((0, 0), (0, 0)), dimension_numbers=_NHWC)  # [n, h+1, w+1, 4*cout]
    y = y.reshape(n, h + 1, w + 1, 2, 2, self.features)
    # Phase (ry, rx) starts at window (ry, rx): out[2m+ry, 2n+rx] = y[m+ry, n+rx, ry, rx].
    rows = [jnp.stack([y[:, ry:ry + h, rx:rx + w, ry, rx] for rx in (0, 1)], axis=3)
            for ry in (0, 1)]  # each [n, h, w, 2(rx), c]
    out = jnp.stack(rows, axis=2)  # [n, h, 2(ry), w, 2(rx), c]
    out = out.reshape(n, 2 * h, 2 * w, self.features)
    if self.use_bias:
      out = out + self.param('bias', nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return out


class ResizeConv(nn.Module):
  """Nearest-neighbour x2 upsampling then a 3x3 conv (Odena et al., 2016)."""
  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return conv(self.features, 3, padding=((1, 1), (1, 1)), use_bias=self.use_bias,
                dtype=self.dtype)(x)


def make_upsample(kind: str, features: int, use_bias: bool, dtype: Dtype) -> nn.Module:
  if kind == 'conv_transpose':
    return ConvTranspose4x4(features, use_bias=use_bias, dtype=dtype)
  if kind == 'resize_conv':
    return ResizeConv(features, use_bias=use_bias, dtype=dtype)
  raise ValueError(f'Unknown upsample {kind!r}; allowed: {UPSAMPLES}.')


def down_conv(features: int, use_bias: bool, dtype: Dtype) -> nn.Conv:
  """pix2pix's Conv2d(k=4, s=2, p=1)."""
  return conv(features, 4, 2, padding=((1, 1), (1, 1)), use_bias=use_bias, dtype=dtype)
