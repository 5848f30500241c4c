"""Model shapes, parameter counts against the official code, and the exact
transposed-convolution formulation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

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
  ref = (
    jax.lax.conv_general_dilated(
      x,
      kernel[::-1, ::-1],
      (1, 1),
      ((2, 2), (2, 2)),
      lhs_dilation=(2, 2),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
    )
    + 0.1
  )
  got = layer.apply(v, x)
  assert got.shape == (2, 10, 14, 4)
  np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_conv_transpose_4x4_matches_flax_conv_transpose():
  x = jax.random.normal(jax.random.key(2), (1, 6, 6, 5))
  ours = layers.ConvTranspose4x4(3, use_bias=False)
  v = jax.jit(ours.init)(jax.random.key(3), x)
  theirs = nn.ConvTranspose(
    3, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False, transpose_kernel=True
  )
  # flax's transpose_kernel=True uses the forward conv's kernel (HWOI): swap I/O.
  k = jnp.swapaxes(layers.transposed_kernel(v['params']['kernel']), 2, 3)
  np.testing.assert_allclose(
    ours.apply(v, x), theirs.apply({'params': {'kernel': k}}, x), atol=1e-5
  )


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
  out = jax.eval_shape(
    lambda: d.apply(d.init(jax.random.key(0), x, x, train=False), x, x, train=False)
  )
  assert out.shape == (1, 30, 30, 1)  # 70x70 receptive fields on a 256 image


@pytest.mark.parametrize(
  'kw',
  [
    dict(generator='unet', norm='instance', upsample='resize_conv'),
    dict(
      generator='unet', norm='instance', upsample='resize_conv', output_upsample='conv_transpose'
    ),
    dict(generator='unet', norm='batch', upsample='conv_transpose', noise_channels=2),
    dict(generator='resnet', norm='instance', upsample='conv_transpose'),
    dict(generator='resnet', norm='none', upsample='resize_conv'),
    dict(generator='unet', norm='instance', upsample='bilinear_conv'),
  ],
)
def test_generators_keep_shape_and_range(kw, tiny_model_config):
  m = tiny_model_config
  m.update(depth=3, width=4, resnet_blocks=1, dropout=0.5, **kw)
  g = generators.create_generator(m)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  v = seeded_variables(lambda: g.init(jax.random.key(1), x, train=False))

  @jax.jit
  def run(v, noise_seed):
    infer = g.apply(v, x, train=False)
    train, _ = g.apply(
      v,
      x,
      train=True,
      rngs={'dropout': jax.random.key(2), 'noise': jax.random.key(noise_seed)},
      mutable=['batch_stats'],
    )
    return infer, train

  y, y2 = run(v, 3)
  assert y.shape == x.shape and y.dtype == jnp.float32
  assert y2.shape == x.shape
  # In range by the final tanh, not by small initial weights: with every weight 30
  # times larger the outputs saturate at +-1 and stay within.
  y_big, _ = run({**v, 'params': jax.tree.map(lambda p: 30 * p, v['params'])}, 3)
  assert float(jnp.abs(y_big).max()) <= 1.0
  assert float(jnp.mean(jnp.abs(y_big) > 0.99)) > 0.1
  if kw.get('noise_channels'):
    # Noise is an input in training and zero at inference.
    y4, y3 = run(v, 4)
    assert float(jnp.abs(y2 - y3).max()) > 0
    np.testing.assert_array_equal(y, y4)


def test_output_upsample_changes_only_the_outermost_layer(tiny_model_config):
  """resize_conv inside, a transposed conv (one kernel per output phase) last."""
  m = tiny_model_config
  m.update(generator='unet', depth=3, width=4, upsample='resize_conv')
  x = jnp.zeros((1, 16, 16, 3))
  shapes = {}
  for last in ('', 'conv_transpose'):
    m.output_upsample = last
    g = generators.create_generator(m)
    v = jax.eval_shape(lambda: g.init(jax.random.key(0), x, train=False))
    shapes[last] = jax.tree.map(lambda a: a.shape, v['params'])
  flat = {
    k: {
      jax.tree_util.keystr(p): a
      for p, a in jax.tree_util.tree_leaves_with_path(v, is_leaf=lambda t: isinstance(t, tuple))
    }
    for k, v in shapes.items()
  }
  plain, mixed = flat[''], flat['conv_transpose']
  same = {k for k in plain if mixed.get(k) == plain[k]}
  # Only the output layer differs: the 3x3 resize conv [3, 3, 2*width, 3] becomes
  # a phase kernel [2, 2, 2*width, 4*3] (a 4x4 transposed conv).
  assert {k: a for k, a in plain.items() if k not in same} == {
    "['ResizeConv_2']['Conv_0']['kernel']": (3, 3, 8, 3),
    "['ResizeConv_2']['Conv_0']['bias']": (3,),
  }
  assert {k: a for k, a in mixed.items() if k not in same} == {
    "['ConvTranspose4x4_0']['kernel']": (2, 2, 8, 12),
    "['ConvTranspose4x4_0']['bias']": (3,),
  }


def cut_upsample_1d(x: np.ndarray) -> np.ndarray:
  """The official CUT `Upsample` (filt_size 4, stride 2, replication pad) on the
  rows of x [n, ...], by its definition: pad 1, transposed conv with the filter
  [1, 3, 3, 1] / 4 at stride 2 and padding 2, then drop the first and last rows."""
  padded = np.concatenate([x[:1], x, x[-1:]])
  full = np.zeros((2 * len(padded) + 2,) + x.shape[1:])
  for i, row in enumerate(padded):
    for k, weight in enumerate(np.array([1, 3, 3, 1]) / 4):
      full[2 * i + k] += weight * row
  return full[2:-2][1:-1]


def test_bilinear_conv_upsamples_as_the_official_cut_generator():
  x = np.asarray(jax.random.normal(jax.random.key(0), (2, 5, 7, 3)))
  layer = layers.ResizeConv(3, method='bilinear')
  v = layer.init(jax.random.key(1), x)
  identity = np.zeros((3, 3, 3, 3), np.float32)
  identity[1, 1] = np.eye(3)  # The 3x3 conv passes the upsampled input through.
  conv = {'kernel': identity, 'bias': np.zeros(3, np.float32)}
  assert jax.tree.map(np.shape, v['params']) == {'Conv_0': jax.tree.map(np.shape, conv)}
  out = layer.apply({'params': {'Conv_0': conv}}, x)
  ref = np.stack([cut_upsample_1d(cut_upsample_1d(im).swapaxes(0, 1)).swapaxes(0, 1) for im in x])
  assert out.shape == (2, 10, 14, 3)
  np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.fixture
def tiny_model_config():
  from conftest import load_config  # pylint: disable=g-import-not-at-top

  return load_config('tiny').model


def test_bfloat16_generator_runs_in_bfloat16_with_float32_params():
  g = generators.UNetGenerator(width=4, depth=3, norm='instance', dtype=jnp.bfloat16)
  x = jnp.zeros((1, 16, 16, 3))
  v = jax.eval_shape(lambda: g.init(jax.random.key(0), x, train=False))  # Nothing compiled.
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v))
  assert jax.eval_shape(lambda v: g.apply(v, x, train=False), v).dtype == jnp.float32
  jaxpr = str(jax.make_jaxpr(lambda v: g.apply(v, x, train=False))(v))
  assert 'bf16' in jaxpr


_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
  'kernel,stride,pad,size,cout',
  [
    # One case of each gradient path in the fast lane, the others `slow`.
    (4, 2, 1, 11, 8),
    pytest.param(4, 1, 1, 11, 8, marks=_SLOW),
    pytest.param(2, 1, 0, 11, 8, marks=_SLOW),
    pytest.param(3, 1, 1, 11, 8, marks=_SLOW),
    pytest.param(7, 1, 0, 11, 8, marks=_SLOW),
    # Outputs past the im2col threshold: GEMM per tap for the weight gradient...
    (4, 2, 1, 40, 8),
    pytest.param(2, 1, 0, 20, 16, marks=_SLOW),
    # ...and XLA's own gradients for few output channels over many pixels.
    (4, 1, 1, 40, 1),
    pytest.param(2, 1, 0, 40, 12, marks=_SLOW),
  ],
)
def test_cpu_conv_equals_xla(kernel, stride, pad, size, cout):
  """Every CPU gradient path (im2col GEMM; GEMM per tap; XLA's) is XLA's maths."""
  x = jax.random.normal(jax.random.key(0), (2, size, size - 2, 5))
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 5, cout))
  padding = ((pad, pad), (pad, pad))

  def loss(conv, x, w):
    y = conv(x, w, (stride, stride), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return jnp.sum(jnp.sin(y))

  ours = jax.jit(jax.value_and_grad(lambda x, w: loss(layers.conv_general_dilated, x, w), (0, 1)))(
    x, w
  )
  ref = jax.jit(jax.value_and_grad(lambda x, w: loss(jax.lax.conv_general_dilated, x, w), (0, 1)))(
    x, w
  )
  np.testing.assert_allclose(ours[0], ref[0], rtol=1e-4)
  for a, b in zip(ours[1], ref[1]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# Unpaired methods (CycleGAN, CUT): encoder taps, the unconditional discriminator.


def test_resnet_9blocks_parameter_count_against_the_official():
  g = generators.ResnetGenerator()  # width 64, 9 blocks, instance norm, conv_transpose
  v = jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 256, 256, 3)), train=False))
  assert count(v) == 11_659_651
  # The official resnet_9blocks (CycleGAN, CUT --no_antialias --no_antialias_up)
  # has 11,378,179: a bias on every conv, and 3x3 transposed convs where ours are 4x4.
  p = v['params']
  up = [p[f'ConvTranspose4x4_{i}']['kernel'].shape for i in (0, 1)]  # [2, 2, cin, 4 * cout]
  biases = sum(
    x['kernel'].shape[-1] for k, x in p.items() if k.startswith('Conv_') and 'bias' not in x
  ) + sum(s[3] // 4 for s in up)
  up_4x4 = sum(int(np.prod(s)) for s in up)
  up_3x3 = sum(9 * s[2] * s[3] // 4 for s in up)
  assert (biases, up_4x4, up_3x3) == (5_248, 655_360, 368_640)
  assert count(v) - up_4x4 + up_3x3 + biases == 11_378_179


def test_encode_tap_shapes():
  x = jnp.zeros((2, 64, 64, 3))
  g = generators.ResnetGenerator(width=8, blocks=9)
  v = jax.eval_shape(lambda: g.init(jax.random.key(0), x, train=False))
  assert g.nce_taps == ('pad', 'down1', 'down2', 'block1', 'block5')
  feats = jax.eval_shape(lambda v: g.apply(v, x, train=False, method=g.encode), v)
  assert [f.shape for f in feats] == [
    (2, 70, 70, 3),
    (2, 32, 32, 16),
    (2, 16, 16, 32),
    (2, 16, 16, 32),
    (2, 16, 16, 32),
  ]
  assert generators.ResnetGenerator(blocks=3).nce_taps[3:] == ('block1', 'block3')
  assert generators.ResnetGenerator(blocks=1).nce_taps[3:] == ('block1',)

  g = generators.UNetGenerator(width=8, depth=6)
  v = jax.eval_shape(lambda: g.init(jax.random.key(0), x, train=False))
  assert g.tap_names == ('input', 'enc1', 'enc2', 'enc3', 'enc4', 'enc5', 'enc6')
  feats = jax.eval_shape(lambda v: g.apply(v, x, train=False, method=g.encode, taps=g.tap_names), v)
  assert [f.shape for f in feats] == [
    (2, 64, 64, 3),
    (2, 32, 32, 8),
    (2, 16, 16, 16),
    (2, 8, 8, 32),
    (2, 4, 4, 64),
    (2, 2, 2, 64),
    (2, 1, 1, 64),
  ]
  assert g.nce_taps == g.tap_names[:5]


def test_encode_rejects_unknown_taps():
  g = generators.ResnetGenerator(width=4, blocks=2)
  x = jnp.zeros((1, 16, 16, 3))
  v = jax.eval_shape(lambda: g.init(jax.random.key(0), x, train=False))
  for taps in [('block3',), (), ('input',)]:
    with pytest.raises(ValueError, match='allowed'):
      jax.eval_shape(lambda v: g.apply(v, x, train=False, method=g.encode, taps=taps), v)


def seeded_variables(init, seed=0):
  """Variables of init's shapes: weights drawn N(0, 0.1) by NumPy (jit-compiling flax's
  random init costs XLA:CPU seconds per parameter shape), batch-norm statistics at their
  initial mean 0 and variance 1."""
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if 'batch_stats' in name:
      return jnp.full(s.shape, 1.0 if name.endswith("['var']") else 0.0, s.dtype)
    return jnp.asarray(0.1 * rng.standard_normal(s.shape, np.float32))

  return jax.tree_util.tree_map_with_path(draw, jax.eval_shape(init))


def _forward_and_taps(g, x, sub_taps):
  """One compiled program: __call__ (intermediates captured, then with taps) and encode;
  checks they agree and that encode at `sub_taps` needs only its own part of the params."""
  v = seeded_variables(lambda: g.init(jax.random.key(0), x, train=False))
  flat = traverse_util.flatten_dict(v)
  part = traverse_util.flatten_dict(
    jax.eval_shape(
      lambda: g.init(jax.random.key(0), x, train=False, method=g.encode, taps=sub_taps)
    )
  )
  assert part and set(part) < set(flat)
  assert all(part[k].shape == flat[k].shape for k in part)
  only_encoder = traverse_util.unflatten_dict({k: flat[k] for k in part})

  @jax.jit
  def run(v, only_encoder, x):
    y, state = g.apply(v, x, train=False, capture_intermediates=True)
    inter = {k: o['__call__'][0] for k, o in state['intermediates'].items() if k != '__call__'}
    return (
      y,
      inter,
      g.apply(v, x, train=False, method=g.encode, taps=g.tap_names),
      g.apply(v, x, train=False, taps=g.tap_names),
      g.apply(only_encoder, x, train=False, method=g.encode, taps=sub_taps),
    )

  y, inter, feats, (y2, feats2), sub = run(v, only_encoder, x)
  np.testing.assert_array_equal(y2, y)  # asking for taps changes nothing
  for a, b in zip(feats, feats2):
    np.testing.assert_array_equal(a, b)  # encode = the taps of the full pass
  feats = dict(zip(g.tap_names, feats))
  for t, a in zip(sub_taps, sub):
    np.testing.assert_array_equal(a, feats[t])
  return feats, inter


def test_resnet_taps_are_the_full_forward_intermediates():
  g = generators.ResnetGenerator(width=4, blocks=5)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  feats, inter = _forward_and_taps(g, x, ('down2',))
  # Rebuilt from the forward's module outputs: the same computation.
  np.testing.assert_array_equal(feats['pad'], generators.reflect_pad(x, 3))
  np.testing.assert_array_equal(feats['down1'], inter['Conv_1'])
  np.testing.assert_array_equal(feats['down2'], inter['Conv_2'])
  h = jax.nn.relu(inter['InstanceNorm_2'])
  for k in range(1, 6):
    h = h + inter[f'InstanceNorm_{2 + 2 * k}']
    np.testing.assert_allclose(feats[f'block{k}'], h, atol=1e-6)


def test_unet_taps_are_the_full_forward_intermediates():
  g = generators.UNetGenerator(width=4, depth=4, norm='instance', noise_channels=1)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  feats, inter = _forward_and_taps(g, x, ('enc2',))
  np.testing.assert_array_equal(feats['input'], jnp.concatenate([x, 0 * x[..., :1]], -1))
  lrelu = lambda h: jax.nn.leaky_relu(h, 0.2)
  np.testing.assert_allclose(feats['enc1'], lrelu(inter['Conv_0']), atol=1e-6)
  np.testing.assert_allclose(feats['enc2'], lrelu(inter['InstanceNorm_0']), atol=1e-6)
  np.testing.assert_allclose(feats['enc3'], lrelu(inter['InstanceNorm_1']), atol=1e-6)
  np.testing.assert_allclose(feats['enc4'], jax.nn.relu(inter['Conv_3']), atol=1e-6)


def tree_norm(tree):
  return jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(tree)))


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_gradients_of_taps_reach_the_shared_params():
  g = generators.ResnetGenerator(width=4, blocks=5)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  v = seeded_variables(lambda: g.init(jax.random.key(0), x, train=False))

  def loss(params):
    feats = g.apply({'params': params}, x, train=False, method=g.encode)
    return sum(jnp.mean(jnp.sin(f)) for f in feats)

  grads = jax.jit(jax.grad(loss))(v['params'])
  assert jax.tree.structure(grads) == jax.tree.structure(v['params'])
  norms = {k: float(tree_norm(g_)) for k, g_ in grads.items()}
  encoder = [f'Conv_{i}' for i in range(13)]  # 7x7, 2 downsamplings, 5 blocks x 2
  assert all(norms[k] > 0 for k in encoder), norms
  assert all(norms[k] == 0 for k in norms if k not in encoder), norms  # the decoder's


def disc_param_count(channels, width, num_layers, norm):
  """The PatchGAN's parameters: 4x4 convs; norm 'batch' adds scale and bias, 'none' a bias."""
  extra = {'batch': 2, 'instance': 0, 'none': 1}[norm]
  total, prev = 16 * channels * width + width, width
  for n in range(1, num_layers + 1):
    f = width * min(2**n, 8)
    total, prev = total + 16 * prev * f + extra * f, f
  return total + 16 * prev + 1


def test_conditional_discriminator_parameters_are_unchanged():
  x = jnp.zeros((1, 64, 64, 3))
  d = discriminators.PatchDiscriminator()
  v = jax.eval_shape(lambda: d.init(jax.random.key(0), x, x, train=False))
  shapes = {'/'.join(k): s.shape for k, s in traverse_util.flatten_dict(v).items()}
  # The tree of the code before the unconditional discriminator, hard-coded.
  assert shapes == {
    'params/Conv_0/kernel': (4, 4, 6, 64),
    'params/Conv_0/bias': (64,),
    'params/Conv_1/kernel': (4, 4, 64, 128),
    'params/BatchNorm_0/scale': (128,),
    'params/BatchNorm_0/bias': (128,),
    'params/Conv_2/kernel': (4, 4, 128, 256),
    'params/BatchNorm_1/scale': (256,),
    'params/BatchNorm_1/bias': (256,),
    'params/Conv_3/kernel': (4, 4, 256, 512),
    'params/BatchNorm_2/scale': (512,),
    'params/BatchNorm_2/bias': (512,),
    'params/Conv_4/kernel': (4, 4, 512, 1),
    'params/Conv_4/bias': (1,),
    'batch_stats/BatchNorm_0/mean': (128,),
    'batch_stats/BatchNorm_0/var': (128,),
    'batch_stats/BatchNorm_1/mean': (256,),
    'batch_stats/BatchNorm_1/var': (256,),
    'batch_stats/BatchNorm_2/mean': (512,),
    'batch_stats/BatchNorm_2/var': (512,),
  }
  for kw, expected in [
    (dict(norm='instance'), 2_766_913),
    (dict(norm='none', num_layers=4, width=32), 1_744_609),
  ]:
    d = discriminators.PatchDiscriminator(**kw)
    v = jax.eval_shape(lambda: d.init(jax.random.key(0), x, x, train=False))
    assert count(v) == expected == disc_param_count(6, d.width, d.num_layers, d.norm)


@pytest.mark.parametrize(
  'kw', [dict(), dict(norm='instance'), dict(norm='none', num_layers=4, width=32)]
)
def test_unconditional_discriminator_shape_and_parameter_count(kw):
  d = discriminators.UnconditionalPatchDiscriminator(**kw)
  x = jnp.zeros((2, 256, 256, 3))
  v = jax.eval_shape(lambda: d.init(jax.random.key(0), x, train=False))
  assert count(v) == disc_param_count(3, d.width, d.num_layers, d.norm)
  out = jax.eval_shape(lambda v: d.apply(v, x, train=False), v)
  assert out.shape == ((2, 30, 30, 1) if d.num_layers == 3 else (2, 14, 14, 1))
  if not kw:
    assert count(v) == 2_765_633


def test_unconditional_discriminator_is_the_conditional_body(tiny_model_config):
  m = tiny_model_config
  cond = discriminators.create_discriminator(m)
  uncond = discriminators.create_discriminator(m, conditional=False)
  assert isinstance(cond, discriminators.PatchDiscriminator)
  assert isinstance(uncond, discriminators.UnconditionalPatchDiscriminator)
  photo, image = jax.random.normal(jax.random.key(0), (2, 2, 32, 32, 3))

  v = seeded_variables(lambda: cond.init(jax.random.key(0), photo, image, train=False))
  v3 = seeded_variables(lambda: uncond.init(jax.random.key(0), image, train=False))

  @jax.jit
  def run(v, v3, photo, image):
    both = jnp.concatenate([photo, image], axis=-1)
    return (
      uncond.apply(v, both, train=False),
      cond.apply(v, photo, image, train=False),
      uncond.apply(v3, image, train=False),
    )

  on_both, conditional, on_image = run(v, v3, photo, image)
  np.testing.assert_array_equal(on_both, conditional)
  assert on_image.shape == (2, 6, 6, 1)  # tiny: 2 layers, 32 -> 16 -> 8 -> 7 -> 6
