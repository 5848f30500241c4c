"""The export command line (in process) and load_exported: the same pixels as
load_stylizer, also in a process that has only jax and numpy (`slow`)."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from absl import flags

import shopstyle_jax
from conftest import assert_pixel_rule
from shopstyle_jax import StylizeOptions
from shopstyle_jax import export
from shopstyle_jax import exporting
from shopstyle_jax import inference
from shopstyle_jax import load_stylizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a process where everything but jax and numpy is unimportable; it also writes
# what the exported file gives in this process, to compare the same program's pixels.
_STANDALONE = """
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
"""


def _photos():
  # Single photos: a batch's float rounding may differ between this process
  # (8 simulated devices) and the standalone one; batches are compared in-process.
  rs = np.random.RandomState(0)
  return {
    'single': rs.randint(0, 256, (37, 53, 3), np.uint8),
    'wide': rs.randint(0, 256, (32, 70, 3), np.uint8),
    'gray': rs.randint(0, 256, (5, 9), np.uint8),
  }


def _cli(*args) -> int:
  """Runs the export command line in this process, on fresh flags."""
  flag_values = flags.FlagValues()
  export.define_flags(flag_values)
  flag_values(['export', *args])
  return export.run(flag_values)


@pytest.fixture(scope='module')
def exported_file(tmp_path_factory, trained_workdir):
  path = str(tmp_path_factory.mktemp('export') / 'stylizer.bin')
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout):
    assert _cli(f'--workdir={trained_workdir}', f'--output={path}') == 0
  assert f'Wrote {path} (' in stdout.getvalue() and 'step 4' in stdout.getvalue()
  # --verify: the reloaded file against load_stylizer, two compiled programs (pixel rule).
  assert re.search(
    r'Verified.*max difference 0|differs from load_stylizer by up to 1 level', stdout.getvalue()
  ), stdout.getvalue()
  return path


@pytest.mark.slow
def test_exported_needs_only_jax_and_numpy_and_matches(tmp_path, trained_workdir):
  """`python -m shopstyle_jax.export` writes the file; a process without the package's
  dependencies loads it and gives this process's pixels."""
  photos = _photos()
  np.savez(tmp_path / 'photos.npz', **photos)
  env = dict(os.environ, PYTHONPATH=ROOT)  # This process's backend (8 CPU devices).
  exported_file = str(tmp_path / 'stylizer.bin')
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'shopstyle_jax.export',
      '--noverify',
      f'--workdir={trained_workdir}',
      f'--output={exported_file}',
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-5000:]
  proc = subprocess.run(
    [
      sys.executable,
      '-c',
      _STANDALONE,
      exported_file,
      str(tmp_path / 'photos.npz'),
      str(tmp_path / 'out.npz'),
    ],
    cwd=str(tmp_path),
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-5000:]
  got = np.load(tmp_path / 'out.npz')
  exported = shopstyle_jax.load_exported(exported_file)
  stylizer = load_stylizer(trained_workdir)
  for name, photo in photos.items():
    assert_pixel_rule(got[name], exported(photo), same_program=True)
    assert_pixel_rule(got[name], stylizer(photo))  # Exported vs jitted: two programs.
  assert_pixel_rule(
    got['adjusted'], exported(photos['single'], brightness=0.1, contrast=1.2), same_program=True
  )
  assert_pixel_rule(got['options'], got['adjusted'], same_program=True)


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
  assert_pixel_rule(exported(photo), stylizer(photo))
  batch = np.random.RandomState(2).randint(0, 256, (3, 30, 70, 3), np.uint8)
  assert_pixel_rule(exported(batch), stylizer(batch))
  assert_pixel_rule(exported(photo, max_side=40), stylizer(photo, max_side=40))
  assert_pixel_rule(
    exported(photo, StylizeOptions(max_side=40)), exported(photo, max_side=40), same_program=True
  )
  # Symbolic batch, height and width: no re-export for a new shape.
  padded = np.zeros((3, 2 * stylizer.factor, stylizer.factor, 3), np.float32)
  assert exported.run(padded).shape == padded.shape
  with pytest.raises(Exception, match='multiple|divisib|shape'):
    exported.run(np.zeros((1, stylizer.factor + 1, stylizer.factor, 3), np.float32))


def test_export_metadata_and_bad_files(tmp_path, exported_file):
  with zipfile.ZipFile(exported_file) as zf:
    names = zf.namelist()
    meta = json.loads(zf.read('metadata.json'))
    members = {n: zf.read(n) for n in names}
  assert names[:2] == ['metadata.json', 'function.stablehlo']
  # The tiling functions (format 2) come last.
  assert names[-2:] == ['norm_stats.stablehlo', 'with_norm_stats.stablehlo']
  assert len(names) == 4 + meta['num_weights'] and meta['step'] == 4
  assert exporting.read_metadata(exported_file) == meta

  def damaged(name, data=None, skip=(), replace=None):
    path = tmp_path / name
    if data is not None:
      path.write_bytes(data)
      return str(path)
    with zipfile.ZipFile(path, 'w') as zf:
      for n, d in members.items():
        if n not in skip:
          zf.writestr(n, (replace or {}).get(n, d))
    return str(path)

  whole = open(exported_file, 'rb').read()
  cases = {
    'random bytes': damaged('junk.bin', os.urandom(3000)),
    'truncated': damaged('cut.bin', whole[: len(whole) // 2]),
    'truncated end': damaged('cut_end.bin', whole[:-30]),
    'no metadata': damaged('no_meta.bin', skip=('metadata.json',)),
    'no function': damaged('no_function.bin', skip=('function.stablehlo',)),
    'no weight': damaged('no_weight.bin', skip=(names[-3],)),
    'no tiling function': damaged('no_tiling.bin', skip=(names[-1],)),
    'bad function': damaged('bad_function.bin', replace={'function.stablehlo': b'\0' * 64}),
    'bad weight': damaged('bad_weight.bin', replace={names[2]: b'\x93NUMPY junk'}),
    'bad metadata': damaged('bad_meta.bin', replace={'metadata.json': b'{not json'}),
  }
  for what, path in cases.items():
    with pytest.raises(ValueError, match='is not a shopstyle_jax exported stylizer') as e:
      shopstyle_jax.load_exported(path)
    assert path in str(e.value) and 'export it again' in str(e.value), (what, e.value)
  with zipfile.ZipFile(tmp_path / 'other.zip', 'w') as zf:
    zf.writestr('metadata.json', json.dumps({'format': 'something else'}))
  with pytest.raises(ValueError, match='is not a shopstyle_jax exported stylizer'):
    shopstyle_jax.load_exported(str(tmp_path / 'other.zip'))
  with pytest.raises(FileNotFoundError):
    shopstyle_jax.load_exported(str(tmp_path / 'missing.bin'))


def test_export_cli_mistakes_are_one_line_before_the_model_loads(
  tmp_path, trained_workdir, monkeypatch, capsys
):
  def no_model(*args, **kwargs):
    raise AssertionError('the model was loaded')

  monkeypatch.setattr(inference, 'load_stylizer', no_model)
  (tmp_path / 'a_file').write_text('')
  output = f'--output={tmp_path / "stylizer.bin"}'
  for args, message in [
    ((f'--workdir={tmp_path / "nowhere"}', output), 'is not a shopstyle_jax workdir'),
    (
      (f'--workdir={trained_workdir}', '--step=999', output),
      r'No checkpoint at step 999 .*available steps: \[.*4\]',
    ),
    ((f'--workdir={trained_workdir}', f'--output={tmp_path / "a_file" / "s.bin"}'), 'Cannot write'),
    ((f'--workdir={trained_workdir}', f'--output={tmp_path}'), 'is a folder'),
  ]:
    assert _cli(*args) == 2, args
    err = capsys.readouterr().err
    assert err.startswith('Error: ') and err.count('\n') == 1, err
    assert re.search(message, err), (args, err)
  assert not (tmp_path / 'stylizer.bin').exists()


@pytest.mark.slow
def test_import_is_light():
  code = (
    'import sys, shopstyle_jax; heavy = [m for m in ("jax", "flax", "orbax", '
    '"tensorflow") if m in sys.modules]; print(heavy)'
  )
  proc = subprocess.run(
    [sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=60
  )
  assert proc.stdout.strip() == '[]', proc.stdout + proc.stderr
