"""VGG19 perceptual-loss network and its weight loading (offline, fast).

The Keras ImageNet file is never downloaded here: tests write files in its
layout with random values and check the Flax network against an independent
NumPy re-implementation of Keras' VGG19 that reads the same file with h5py.
"""

import logging
import pathlib
import shutil
from typing import Dict, Optional, Tuple

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shopstyle_jax import weights
from shopstyle_jax.models import vgg

# (filters, convs) per block of VGG19, restated here so the test does not
# depend on the module's own table.
_VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
_DEFAULT_LAYERS = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')
# Tolerance of Flax (float32) vs the float64 reference: per layer,
# |flax - ref| <= RTOL * |ref| + RTOL * max|ref|.
_RTOL = 1e-4


def _conv_shapes() -> Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]]:
  """{'block1_conv1': (kernel HWIO shape, bias shape), ...} for VGG19."""
  shapes, cin = {}, 3
  for b, (filters, convs) in enumerate(_VGG19_BLOCKS, 1):
    for i in range(1, convs + 1):
      shapes[f'block{b}_conv{i}'] = ((3, 3, cin, filters), (filters,))
      cin = filters
  return shapes


def _dataset_names(layer: str, layout: str) -> Tuple[str, str]:
  """Weight names as Keras writes them in `weight_names`."""
  if layout == 'keras1':  # The published ImageNet notop file.
    return f'{layer}_W_1:0', f'{layer}_b_1:0'
  return f'{layer}/kernel:0', f'{layer}/bias:0'  # Keras 2 save_weights.


_Shapes = Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]]


def write_keras_vgg19_h5(
  path: pathlib.Path,
  seed: int = 0,
  layout: str = 'keras2',
  fill: bool = True,
  override: Optional[_Shapes] = None,
  drop: Tuple[str, ...] = (),
) -> None:
  """Writes a Keras VGG19 notop weights file (save_weights layout), random values.

  Root attr `layer_names` (input, convs, pools); one group per layer with attr
  `weight_names`; datasets at group/<weight name>. `fill=False` leaves the
  datasets unwritten (layout-only files); `override` changes shapes and `drop`
  omits conv layers, to build wrong files.
  """
  rng = np.random.default_rng(seed)
  shapes = dict(_conv_shapes(), **(override or {}))
  layer_names = ['input_1']
  for b, (_, convs) in enumerate(_VGG19_BLOCKS, 1):
    layer_names += [f'block{b}_conv{i}' for i in range(1, convs + 1)] + [f'block{b}_pool']
  layer_names = [n for n in layer_names if n not in drop]
  with h5py.File(path, 'w') as f:
    f.attrs['layer_names'] = np.array([n.encode('utf8') for n in layer_names])
    if layout == 'keras2':
      f.attrs['backend'] = b'tensorflow'
      f.attrs['keras_version'] = b'2.2.4'
    for name in layer_names:
      g = f.create_group(name)
      if name not in shapes:  # Input and pooling layers: no weights.
        g.attrs['weight_names'] = np.array([], dtype=np.float64)
        continue
      kernel_shape, bias_shape = shapes[name]
      kernel_name, bias_name = _dataset_names(name, layout)
      g.attrs['weight_names'] = np.array([kernel_name.encode(), bias_name.encode()])
      if fill:
        fan_in = int(np.prod(kernel_shape[:3]))
        g.create_dataset(
          kernel_name,
          data=rng.standard_normal(kernel_shape, np.float32) * np.float32(np.sqrt(2.0 / fan_in)),
        )
        g.create_dataset(bias_name, data=rng.standard_normal(bias_shape, np.float32) * 5)
      else:
        g.create_dataset(kernel_name, shape=kernel_shape, dtype=np.float32)
        g.create_dataset(bias_name, shape=bias_shape, dtype=np.float32)


@pytest.fixture(scope='module')
def keras_h5(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp('vgg') / 'vgg19_notop_random.h5'
  write_keras_vgg19_h5(path, seed=123, layout='keras1')
  return path


# --- Independent NumPy reference (float64) ------------------------------------


def _reference_features(
  h5_path: pathlib.Path, images: np.ndarray, layout: str = 'keras1', bgr: bool = True
) -> Dict[str, np.ndarray]:
  """Keras VGG19 ReLU outputs of [-1, 1] RGB images, computed with NumPy."""
  x = (images.astype(np.float64) + 1.0) / 2.0 * 255.0  # [-1, 1] -> [0, 255] RGB.
  if bgr:
    x = x[..., [2, 1, 0]]  # keras imagenet_utils 'caffe' mode: RGB -> BGR, then
  x = x - np.array([103.939, 116.779, 123.68])  # subtract the BGR mean pixel.
  out = {}
  with h5py.File(h5_path, 'r') as f:
    for b, (_, convs) in enumerate(_VGG19_BLOCKS, 1):
      if b > 1:  # 2x2 stride-2 max pooling.
        n, h, w, c = x.shape
        x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
      for i in range(1, convs + 1):
        layer = f'block{b}_conv{i}'
        kernel_name, bias_name = _dataset_names(layer, layout)
        kernel = np.asarray(f[layer][kernel_name], np.float64)  # [3, 3, in, out].
        bias = np.asarray(f[layer][bias_name], np.float64)
        # 'same' 3x3 cross-correlation via im2col: patch (dy, dx) is x shifted.
        n, h, w, c = x.shape
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        patches = np.stack(
          [padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=3
        )  # [n, h, w, 9, c].
        x = np.einsum('nhwkc,kco->nhwo', patches, kernel.reshape(9, c, -1)) + bias
        x = np.maximum(x, 0.0)
        out[f'relu{b}_{i}'] = x
        if b == 5 and i == 1:  # Deepest layer the tests compare.
          return out
  return out


def _images(n: int = 1, size: int = 32, seed: int = 0, width: Optional[int] = None) -> np.ndarray:
  shape = (n, size, width or size, 3)
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _assert_close(actual, reference, name: str) -> None:
  reference = np.asarray(reference)
  np.testing.assert_allclose(
    np.asarray(actual, np.float64),
    reference,
    rtol=_RTOL,
    atol=_RTOL * np.abs(reference).max(),
    err_msg=name,
  )


# --- (a) Flax features == NumPy reference on the same Keras-layout file --------


def test_features_match_numpy_reference_at_every_default_layer(keras_h5):
  params, description = weights.load_vgg19_params(str(keras_h5), _DEFAULT_LAYERS)
  assert 'Keras VGG19 notop layout' in description and str(keras_h5.name) in description
  images = _images()
  with jax.default_matmul_precision('highest'):
    features = vgg.VGG19(layers=_DEFAULT_LAYERS).apply({'params': params}, jnp.asarray(images))
  reference = _reference_features(keras_h5, images)
  assert set(features) == set(_DEFAULT_LAYERS)
  for name in _DEFAULT_LAYERS:
    ref = reference[name]
    assert features[name].shape == ref.shape, name
    # The random file must exercise the ReLUs (neither all dead nor all linear).
    assert 0.05 < (ref > 0).mean() < 0.95, name
    _assert_close(features[name], ref, name)
  # The comparison has teeth: skipping the RGB->BGR flip is far outside tolerance.
  rgb = _reference_features(keras_h5, images, bgr=False)['relu1_1']
  assert np.abs(rgb - reference['relu1_1']).max() > 100 * _RTOL * np.abs(rgb).max()


def test_keras2_layout_loads_same_values(tmp_path):
  """Keras 2 files (block1_conv1/block1_conv1/kernel:0) load like Keras 1 ones."""
  path = tmp_path / 'keras2.h5'
  write_keras_vgg19_h5(path, seed=7, layout='keras2')
  layers = ('relu1_1', 'relu2_1')
  params, _ = weights.load_vgg19_params(path, layers)
  assert set(params) == {'block1_conv1', 'block1_conv2', 'block2_conv1'}
  with h5py.File(path, 'r') as f:
    for layer, p in params.items():
      np.testing.assert_array_equal(p['kernel'], f[f'{layer}/{layer}/kernel:0'][()])
      np.testing.assert_array_equal(p['bias'], f[f'{layer}/{layer}/bias:0'][()])
  images = _images(n=2, size=17, seed=1, width=19)  # Odd sizes: pooling floors, as Keras'.
  with jax.default_matmul_precision('highest'):  # No TF32 if run on a GPU.
    features = vgg.VGG19(layers=layers).apply({'params': params}, jnp.asarray(images))
  reference = _reference_features(path, images, layout='keras2')
  assert features['relu2_1'].shape == (2, 8, 9, 128)
  for name in layers:
    _assert_close(features[name], reference[name], name)


def test_bfloat16_compute_keeps_float32_params(keras_h5):
  layers = ('relu1_2', 'relu2_1')
  params, _ = weights.load_vgg19_params(keras_h5, layers)
  images = jnp.asarray(_images(size=16))
  f32 = vgg.VGG19(layers=layers).apply({'params': params}, images)
  bf16 = vgg.VGG19(layers=layers, dtype=jnp.bfloat16).apply({'params': params}, images)
  for name in layers:
    assert bf16[name].dtype == jnp.bfloat16
    err = np.abs(np.asarray(bf16[name], np.float32) - np.asarray(f32[name])).max()
    assert err < 0.05 * np.abs(np.asarray(f32[name])).max(), name
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(params))


# --- (b) 'random' is deterministic per seed -------------------------------------


def test_random_weights_are_deterministic_per_seed():
  layers = ('relu1_1', 'relu3_1')
  a, description = weights.load_vgg19_params('random', layers, seed=0)
  b, _ = weights.load_vgg19_params('random', layers, seed=0)
  c, _ = weights.load_vgg19_params('random', layers, seed=1)
  assert description.startswith('random (seed 0')
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a['block1_conv1']['kernel'], c['block1_conv1']['kernel'])
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, vgg.init_random_params(layers, 0))
  # A conv's weights do not depend on the cut.
  short = vgg.init_random_params(('relu2_1',), 0)
  for name in short:
    np.testing.assert_array_equal(short[name]['kernel'], a[name]['kernel'])
  # He init: features neither vanish nor explode at the deepest default layer.
  params = vgg.init_random_params(('relu5_1',), 0)
  out = vgg.VGG19(layers=('relu5_1',)).apply({'params': params}, jnp.asarray(_images()))
  assert 1.0 < float(jnp.std(out['relu5_1'])) < 1e4


# --- (c) Clear errors for wrong specs and files ---------------------------------


def test_missing_path_raises_file_not_found_naming_it(tmp_path):
  path = tmp_path / 'nowhere' / 'vgg19.h5'
  with pytest.raises(FileNotFoundError, match='does not exist') as info:
    weights.load_vgg19_params(str(path), _DEFAULT_LAYERS)
  assert str(path) in str(info.value)
  assert '--config.loss.vgg_weights=' in str(info.value)


def test_text_file_is_refused_naming_it(tmp_path):
  path = tmp_path / 'vgg19.h5'
  path.write_text('not an h5 file\n')
  with pytest.raises(ValueError, match='not an HDF5') as info:
    weights.load_vgg19_params(str(path), _DEFAULT_LAYERS)
  assert str(path) in str(info.value)


@pytest.mark.parametrize('kind', ['wrong_shape', 'vgg16_like', 'theano_kernels'])
def test_wrong_layout_h5_is_refused_naming_file_and_layer(tmp_path, kind):
  path = tmp_path / f'{kind}.h5'
  if kind == 'wrong_shape':
    write_keras_vgg19_h5(path, fill=False, override={'block1_conv1': ((3, 3, 3, 32), (32,))})
    bad_layer = 'block1_conv1'
  elif kind == 'vgg16_like':  # VGG16 has no 4th conv in blocks 3-5.
    write_keras_vgg19_h5(path, fill=False, drop=('block3_conv4', 'block4_conv4', 'block5_conv4'))
    bad_layer = 'block3_conv4'
  else:  # Theano (OIHW) kernels.
    write_keras_vgg19_h5(path, fill=False, override={'block2_conv1': ((128, 64, 3, 3), (128,))})
    bad_layer = 'block2_conv1'
  with pytest.raises(ValueError, match='not a Keras VGG19 notop') as info:
    # Even a cut before the bad layer refuses the file.
    weights.load_vgg19_params(path, ('relu1_1',))
  assert str(path) in str(info.value) and bad_layer in str(info.value)


def test_unknown_spec_lists_allowed_values():
  for spec in ('imagnet', 'vgg', ''):
    with pytest.raises(ValueError, match="'imagenet'.*'random'"):
      weights.load_vgg19_params(spec, _DEFAULT_LAYERS)
  with pytest.raises(ValueError, match='PyTorch'):
    weights.load_vgg19_params('/tmp/vgg19-dcbb9e9d.pth', _DEFAULT_LAYERS)
  with pytest.raises(ValueError, match='relu6_1'):
    weights.load_vgg19_params('random', ('relu6_1',))


# --- (d) 'imagenet' offline: loud fallback; cache and download ------------------


def test_imagenet_offline_falls_back_to_random_with_warning(tmp_path, monkeypatch, caplog):
  def no_network(*args, **kwargs):
    raise OSError('network is unreachable (test)')

  monkeypatch.setattr(weights, 'download_file', no_network)
  cache = tmp_path / 'empty_cache'
  with caplog.at_level(logging.WARNING, logger='absl'):
    params, description = weights.load_vgg19_params(
      'imagenet', ('relu1_1',), seed=3, cache_dir=cache
    )
  assert description.startswith('random (seed 3)')
  assert 'ImageNet weights unavailable' in description and 'unreachable' in description
  warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
  assert any(
    'RANDOM WEIGHTS' in r.getMessage() and weights.KERAS_VGG19_NOTOP_URL in r.getMessage()
    for r in warnings
  )
  jax.tree_util.tree_map(
    np.testing.assert_array_equal, params, vgg.init_random_params(('relu1_1',), 3)
  )
  with pytest.raises(OSError, match='unreachable'):
    weights.load_vgg19_params(
      'imagenet', ('relu1_1',), cache_dir=cache, allow_random_fallback=False
    )


def test_imagenet_downloads_once_then_uses_verified_cache(tmp_path, monkeypatch, caplog):
  source = tmp_path / 'published.h5'
  write_keras_vgg19_h5(source, fill=False)
  # Pretend this file is the published one.
  monkeypatch.setattr(weights, 'KERAS_VGG19_NOTOP_MD5', weights.md5sum(source))
  calls = []

  def fake_download(url, dest, md5=None, timeout=60.0):
    calls.append(url)
    shutil.copyfile(source, dest)

  monkeypatch.setattr(weights, 'download_file', fake_download)
  cache = tmp_path / 'cache'
  cache.mkdir()
  _, description = weights.load_vgg19_params('imagenet', ('relu1_1',), cache_dir=cache)
  cached = cache / weights.KERAS_VGG19_NOTOP_FILENAME
  assert description.startswith('imagenet') and str(cached) in description
  assert calls == [weights.KERAS_VGG19_NOTOP_URL]
  weights.load_vgg19_params('imagenet', ('relu1_1',), cache_dir=cache)
  assert len(calls) == 1  # Cache hit.
  cached.write_bytes(b'corrupt')  # Wrong md5: downloaded again.
  with caplog.at_level(logging.WARNING, logger='absl'):
    _, description = weights.load_vgg19_params('imagenet', ('relu1_1',), cache_dir=cache)
  assert len(calls) == 2 and description.startswith('imagenet')
  assert any('md5' in r.getMessage() for r in caplog.records)


def test_download_file_is_atomic_and_checks_md5(tmp_path):
  source = tmp_path / 'source.bin'
  source.write_bytes(b'vgg' * 1000)
  dest = tmp_path / 'cache' / 'file.h5'
  weights.download_file(source.as_uri(), dest, md5=weights.md5sum(source))
  assert dest.read_bytes() == source.read_bytes()
  dest.unlink()
  with pytest.raises(ValueError, match='md5'):
    weights.download_file(source.as_uri(), dest, md5='0' * 32)
  assert list(dest.parent.iterdir()) == []  # No partial or temp file left.


def test_local_file_with_other_md5_is_accepted_and_described(keras_h5):
  _, description = weights.load_vgg19_params(keras_h5, ('relu1_1',))
  assert 'is not the published' in description and weights.KERAS_VGG19_NOTOP_MD5 in description


# --- (e) The network is cut after the deepest requested layer -------------------


def test_cut_after_deepest_layer_creates_no_later_params(keras_h5):
  expected = {'block1_conv1', 'block1_conv2', 'block2_conv1'}
  assert set(vgg.init_random_params(('relu2_1',), 0)) == expected
  params, _ = weights.load_vgg19_params(keras_h5, ('relu2_1',))
  assert set(params) == expected
  model = vgg.VGG19(layers=('relu2_1',))
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
  assert set(variables['params']) == expected
  features = model.apply({'params': params}, jnp.asarray(_images(size=16)))
  assert set(features) == {'relu2_1'} and features['relu2_1'].shape == (1, 8, 8, 128)
  # Order of the request does not matter; only requested layers come back.
  features = vgg.VGG19(layers=('relu2_1', 'relu1_1')).apply(
    {'params': params}, jnp.asarray(_images(size=16))
  )
  assert set(features) == {'relu1_1', 'relu2_1'}


def test_layer_names_follow_keras():
  assert vgg.VGG_LAYERS[0] == 'relu1_1' and vgg.VGG_LAYERS[-1] == 'relu5_4'
  assert len(vgg.VGG_LAYERS) == 16
  assert list(vgg.param_shapes(vgg.VGG_LAYERS)) == list(_conv_shapes())
