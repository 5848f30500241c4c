"""workdir.py: config.json written, refused, read back and merged with today's defaults."""

import json
import os

import pytest

from conftest import load_config
from shopstyle_jax import workdir as workdir_lib


def _write(path, config=None, **extra):
  workdir_lib.write_config(config or load_config('tiny'), str(path), extra)
  return json.loads((path / 'config.json').read_text())


def test_write_then_read_back(tmp_path):
  saved = _write(tmp_path, run={'devices': 8})
  assert saved['run'] == {'devices': 8} and saved['model']['generator'] == 'unet'
  assert workdir_lib.is_workdir(str(tmp_path))
  assert workdir_lib.read_config(str(tmp_path)).to_dict() == saved
  assert not list(tmp_path.glob('*.tmp'))


def test_other_model_shapes_are_refused_run_lengths_are_not(tmp_path):
  config = load_config('tiny')
  before = _write(tmp_path, config)
  config.num_train_steps += 10  # A longer run resumes.
  assert _write(tmp_path, config)['num_train_steps'] == before['num_train_steps'] + 10
  config.model.width *= 2
  config.model.depth -= 1
  with pytest.raises(
    ValueError,
    match=r'different model shapes \(config\.model\.depth: '
    r'.*config\.model\.width: ',
  ):
    _write(tmp_path, config)
  assert json.loads((tmp_path / 'config.json').read_text())['model'] == before['model']


def test_read_config_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='nowhere not found: .* is not a shopstyle_jax'):
    workdir_lib.read_config(str(tmp_path / 'nowhere'))
  with pytest.raises(FileNotFoundError, match='config.json not found: .* is not a shopstyle'):
    workdir_lib.read_config(str(tmp_path))
  assert not workdir_lib.is_workdir(str(tmp_path))
  (tmp_path / 'config.json').write_text('{"model": ')
  with pytest.raises(ValueError, match='config.json is damaged'):
    workdir_lib.read_config(str(tmp_path))


def test_load_config_fills_keys_added_since_the_run(tmp_path):
  run = tmp_path / 'run'
  run.mkdir()
  old = _write(run)
  del old['data']['test_fraction']
  old['data'].pop('manual_dir', None)
  (tmp_path / 'config.json').write_text(json.dumps(old))
  config = workdir_lib.load_config(str(tmp_path))
  assert config.data.test_fraction == 0.1  # configs/default.py's
  assert config.data.name == old['data']['name']
  assert config.data.folder is None
  config.data.folder = '/some/folder'  # A typed placeholder, so overridable.
  assert isinstance(config.loss.vgg_layers, tuple)


def test_overridable_types():
  config = workdir_lib.overridable({'a': None, 'b': [1, 2], 'c': {'d': None, 'e': 1.5}})
  assert config.a is None and config.b == (1, 2) and config.c.e == 1.5
  config.a = 'x'
  config.c.d = 3
  assert (config.a, config.c.d) == ('x', 3)


def test_a_run_from_before_new_model_keys_resumes_and_the_method_is_a_shape_key():
  fixture = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'v0', 'workdir', 'config.json'
  )
  with open(fixture) as f:
    saved = json.load(f)
  assert 'method' not in saved and 'nce_mlp_channels' not in saved['model']
  config = workdir_lib.load_config(os.path.dirname(fixture))
  assert config.method == 'paired'
  assert workdir_lib.model_shape_differences(saved, config) == []
  config.method = 'cut'
  assert workdir_lib.model_shape_differences(saved, config) == ["config.method: 'paired' -> 'cut'"]
  # CUT's second discriminator adds networks to the state: switching it is a shape change.
  config.method = 'paired'
  config.loss.sharp_disc_weight = 0.2
  assert workdir_lib.model_shape_differences(saved, config) == [
    'config.loss.sharp_disc_weight: 0.0 -> 0.2'
  ]
