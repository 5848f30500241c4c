"""Model shapes, parameter counts against the official code, and the exact
transposed-convolution formulation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shopstyle_jax.models import discriminators
from shopstyle_jax.models import generators
from shopstyle_jax.models import layers


def count(variables):
  return sum(x.size for x in jax.tree.leaves(variables['params']))


def test_conv_transpose_4x4_equals_the_transposed_convolution():
  x = jax.random.normal(jax.random.key(0), (2, 5, 7, 3))
  layer = layers.ConvTranspose4x4(4)
  v = jax.jit(layer.init)(jax.random.key(1), x)
  assert v['params']['kernel'].shape == (2, 2, 3, 16)  # phase layout, 4*4*3*4 weights
  kernel = layers.transposed_kernel(v['params']['kernel'])
  np.testing.assert_array_equal(layers.phase_kernel(kernel), v['params']['kernel'])
  v = {'params': {'kernel': v['params']['kernel'], 'bias': v['params']['bias'] + 0.1}}
  # PyTorch's ConvTranspose2d(k=4, s=2, p=1) by definition: dilate the input
  # by 2, pad by k-1-p = 2, correlate with the spatially flipped kernel.
  ref = jax.lax.conv_general_dilated(
      x, kernel[::-1, ::-1], (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + 0.1
  got = layer.apply(v, x)
  assert got.shape == (2, 10, 14, 4)
  np.testing.assert_allclose(got, ref, atol=1e-5)


def test_conv_transpose_4x4_matches_flax_conv_transpose():
  x = jax.random.normal(jax.random.key(2), (1, 6, 6, 5))
  ours = layers.ConvTranspose4x4(3, use_bias=False)
  v = jax.jit(ours.init)(jax.random.key(3), x)
  theirs = nn.ConvTranspose(3, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                            use_bias=False, transpose_kernel=True)
  # flax's transpose_kernel=True uses the forward conv's kernel (HWOI): swap I/O.
  k = jnp.swapaxes(layers.transposed_kernel(v['params']['kernel']), 2, 3)
  np.testing.assert_allclose(ours.apply(v, x), theirs.apply({'params': {'kernel': k}}, x),
                             atol=1e-5)


def test_unet_256_has_the_official_parameter_count():
  g = generators.UNetGenerator()  # width 64, depth 8, batch norm, dropout
  v = jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 256, 256, 3)), train=False))
  # pytorch-CycleGAN-and-pix2pix unet_256 (norm=batch): 54,413,955 parameters
  # (+ batch-norm scale/bias, which PyTorch also counts as parameters).
  assert count(v) == 54_413_955


def test_patchgan_70_has_the_official_parameter_count():
  d = discriminators.PatchDiscriminator()
  x = jnp.zeros((1, 256, 256, 3))
  v = jax.eval_shape(lambda: d.init(jax.random.key(0), x, x, train=False))
  assert count(v) == 2_768_705
  out = jax.eval_shape(lambda: d.apply(d.init(jax.random.key(0), x, x, train=False), x, x,
                                       train=False))
  assert out.shape == (1, 30, 30, 1)  # 70x70 receptive fields on a 256 image


@pytest.mark.parametrize('kw', [
    dict(generator='unet', norm='instance', upsample='resize_conv'),
    dict(generator='unet', norm='batch', upsample='conv_transpose', noise_channels=2),
    dict(generator='resnet', norm='instance', upsample='conv_transpose'),
    dict(generator='resnet', norm='none', upsample='resize_conv'),
])
def test_generators_keep_shape_and_range(kw, tiny_model_config):
  m = tiny_model_config
  m.update(depth=3, width=4, resnet_blocks=1, dropout=0.5, **kw)
  g = generators.create_generator(m)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  v = jax.jit(g.init, static_argnames='train')(jax.random.key(1), x, train=False)

  @jax.jit
  def run(v, noise_seed):
    infer = g.apply(v, x, train=False)
    train, _ = g.apply(v, x, train=True, rngs={'dropout': jax.random.key(2),
                                               'noise': jax.random.key(noise_seed)},
                       mutable=['batch_stats'])
    return infer, train

  y, y2 = run(v, 3)
  assert y.shape == x.shape and y.dtype == jnp.float32
  assert float(jnp.abs(y).max()) <= 1.0
  assert y2.shape == x.shape
  if kw.get('noise_channels'):
    # Noise is an input in training and zero at inference.
    y4, y3 = run(v, 4)
    assert float(jnp.abs(y2 - y3).max()) > 0
    np.testing.assert_array_equal(y, y4)


@pytest.fixture
def tiny_model_config():
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  return load_config('tiny').model


def test_bfloat16_generator_runs_in_bfloat16_with_float32_params():
  g = generators.UNetGenerator(width=4, depth=3, norm='instance', dtype=jnp.bfloat16)
  x = jnp.zeros((1, 16, 16, 3))
  v = jax.jit(g.init, static_argnames='train')(jax.random.key(0), x, train=False)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v))
  assert jax.jit(g.apply, static_argnames='train')(v, x, train=False).dtype == jnp.float32
  jaxpr = str(jax.make_jaxpr(lambda v: g.apply(v, x, train=False))(v))
  assert 'bf16' in jaxpr


@pytest.mark.parametrize('kernel,stride,pad,size,cout', [
    (4, 2, 1, 11, 8), (4, 1, 1, 11, 8), (2, 1, 0, 11, 8), (3, 1, 1, 11, 8), (7, 1, 0, 11, 8),
    # Outputs past the im2col threshold: GEMM per tap for the weight gradient...
    (4, 2, 1, 40, 8), (2, 1, 0, 20, 16),
    # ...and XLA's own gradients for few output channels over many pixels.
    (4, 1, 1, 40, 1), (2, 1, 0, 40, 12)])
def test_cpu_conv_equals_xla(kernel, stride, pad, size, cout):
  """Every CPU gradient path (im2col GEMM; GEMM per tap; XLA's) is XLA's maths."""
  x = jax.random.normal(jax.random.key(0), (2, size, size - 2, 5))
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 5, cout))
  padding = ((pad, pad), (pad, pad))

  def loss(conv, x, w):
    y = conv(x, w, (stride, stride), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return jnp.sum(jnp.sin(y))

  ours = jax.jit(jax.value_and_grad(lambda x, w: loss(layers.conv_general_dilated, x, w),
                                    (0, 1)))(x, w)
  ref = jax.jit(jax.value_and_grad(lambda x, w: loss(jax.lax.conv_general_dilated, x, w),
                                   (0, 1)))(x, w)
  np.testing.assert_allclose(ours[0], ref[0], rtol=1e-4)
  for a, b in zip(ours[1], ref[1]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
