"""python -m shopstyle_jax.export and load_exported: the same pixels as load_stylizer."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import shopstyle_jax
from shopstyle_jax import exporting
from shopstyle_jax import load_stylizer
from shopstyle_jax import StylizeOptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a process where everything but jax and numpy is unimportable.
_STANDALONE = '''
import sys
for name in ('flax', 'optax', 'orbax', 'ml_collections', 'clu', 'tensorflow', 'grain',
             'tensorflow_datasets', 'PIL', 'cv2', 'dm_pix', 'absl.flags',
             'shopstyle_jax.stylize', 'shopstyle_jax.export', 'shopstyle_jax.batch',
             'shopstyle_jax.workdir', 'shopstyle_jax.models', 'shopstyle_jax.checkpoints'):
  sys.modules[name] = None
import numpy as np
import shopstyle_jax
stylizer = shopstyle_jax.load_exported(sys.argv[1])
photos = np.load(sys.argv[2])
outputs = {k: stylizer(v) for k, v in photos.items()}
outputs['adjusted'] = stylizer(photos['single'], brightness=0.1, contrast=1.2)
outputs['options'] = stylizer(photos['single'],
                              options=shopstyle_jax.StylizeOptions(brightness=0.1, contrast=1.2))
np.savez(sys.argv[3], **outputs)
'''


def _photos():
  # Single photos: a batch's float rounding may differ between this process
  # (8 simulated devices) and the standalone one; batches are compared in-process.
  rs = np.random.RandomState(0)
  return {'single': rs.randint(0, 256, (37, 53, 3), np.uint8),
          'wide': rs.randint(0, 256, (32, 70, 3), np.uint8),
          'gray': rs.randint(0, 256, (5, 9), np.uint8)}


@pytest.fixture(scope='module')
def exported_file(tmp_path_factory, trained_workdir):
  path = str(tmp_path_factory.mktemp('export') / 'stylizer.bin')
  env = dict(os.environ, XLA_FLAGS='')
  proc = subprocess.run(
      [sys.executable, '-m', 'shopstyle_jax.export', f'--workdir={trained_workdir}',
       f'--output={path}'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-5000:]
  assert 'Verified' in proc.stdout and 'max difference 0' in proc.stdout, proc.stdout
  return path


def test_exported_needs_only_jax_and_numpy_and_matches(tmp_path, exported_file,
                                                       trained_workdir):
  photos = _photos()
  np.savez(tmp_path / 'photos.npz', **photos)
  env = dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, '-c', _STANDALONE, exported_file,
                         str(tmp_path / 'photos.npz'), str(tmp_path / 'out.npz')],
                        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-5000:]
  got = np.load(tmp_path / 'out.npz')
  stylizer = load_stylizer(trained_workdir)
  for name, photo in photos.items():
    np.testing.assert_array_equal(got[name], stylizer(photo), err_msg=name)
  np.testing.assert_array_equal(got['adjusted'],
                                stylizer(photos['single'], brightness=0.1, contrast=1.2))
  np.testing.assert_array_equal(got['options'], got['adjusted'])


def test_load_exported_in_process(exported_file, trained_workdir):
  exported = shopstyle_jax.load_exported(exported_file)
  stylizer = load_stylizer(trained_workdir)
  assert exported.factor == stylizer.factor and exported.step == stylizer.step
  meta = exported.metadata
  assert meta['style'] == 'sketch' and meta['dataset'] == stylizer.config.data.name
  assert meta['model']['depth'] == stylizer.config.model.depth
  assert set(meta['platforms']) >= {'cpu', 'cuda'}
  assert meta['input_shape'] == f'(b, {stylizer.factor}*h, {stylizer.factor}*w, 3)'
  photo = np.random.RandomState(1).randint(0, 256, (100, 41, 4), np.uint8)  # RGBA
  np.testing.assert_array_equal(exported(photo), stylizer(photo))
  batch = np.random.RandomState(2).randint(0, 256, (3, 30, 70, 3), np.uint8)
  np.testing.assert_array_equal(exported(batch), stylizer(batch))
  np.testing.assert_array_equal(exported(photo, max_side=40), stylizer(photo, max_side=40))
  np.testing.assert_array_equal(exported(photo, StylizeOptions(max_side=40)),
                                stylizer(photo, max_side=40))
  # Symbolic batch, height and width: no re-export for a new shape.
  padded = np.zeros((3, 2 * stylizer.factor, stylizer.factor, 3), np.float32)
  assert exported.run(padded).shape == padded.shape
  with pytest.raises(Exception, match='multiple|divisib|shape'):
    exported.run(np.zeros((1, stylizer.factor + 1, stylizer.factor, 3), np.float32))


def test_export_metadata_and_bad_files(tmp_path, exported_file):
  with zipfile.ZipFile(exported_file) as zf:
    names = zf.namelist()
    meta = json.loads(zf.read('metadata.json'))
  assert names[:2] == ['metadata.json', 'function.stablehlo']
  assert len(names) == 2 + meta['num_weights'] and meta['step'] == 4
  assert exporting.read_metadata(exported_file) == meta

  (tmp_path / 'junk.bin').write_bytes(b'not a zip')
  with pytest.raises(ValueError, match='not a file written by'):
    shopstyle_jax.load_exported(str(tmp_path / 'junk.bin'))
  with zipfile.ZipFile(tmp_path / 'other.zip', 'w') as zf:
    zf.writestr('metadata.json', json.dumps({'format': 'something else'}))
  with pytest.raises(ValueError, match='not a file written by'):
    shopstyle_jax.load_exported(str(tmp_path / 'other.zip'))


def test_import_is_light():
  code = ('import sys, shopstyle_jax; heavy = [m for m in ("jax", "flax", "orbax", '
          '"tensorflow") if m in sys.modules]; print(heavy)')
  proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                        text=True, timeout=60)
  assert proc.stdout.strip() == '[]', proc.stdout + proc.stderr
