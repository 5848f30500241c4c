"""The evaluate command line (in process, and once as `python -m shopstyle_jax.evaluate`)
and evaluate_checkpoint: the metrics, the JSON, the grid, config overrides."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from conftest import xla_flags
from shopstyle_jax import evaluate
from shopstyle_jax import evaluation
from shopstyle_jax import inference
from shopstyle_jax import load_stylizer
from shopstyle_jax import workdir as workdir_lib
from shopstyle_jax.data import pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args) -> int:
  """Runs the evaluate command line in this process, on fresh flags."""
  argv = ['evaluate', *args]
  flag_values = flags.FlagValues()
  evaluate.define_flags(argv, flag_values)
  flag_values(argv)
  return evaluate.run(flag_values)


def test_cli_table_json_and_grid(tmp_path, trained_workdir, data_dir, capsys):
  out, grid = tmp_path / 'eval.json', tmp_path / 'grid.png'
  assert (
    _cli(
      f'--workdir={trained_workdir}',
      f'--config.data.data_dir={data_dir}',
      f'--output={out}',
      f'--grid={grid}',
      '--grid_rows=3',
    )
    == 0
  )
  stdout = capsys.readouterr().out
  results = json.loads(out.read_text())
  for key in evaluate.METRICS:
    assert np.isfinite(results[key]), key
  assert results['num_examples'] == 16  # The whole test split of the tiny catalogue.
  assert results['step'] == 4 and results['workdir'] == trained_workdir
  assert results['dataset'] == 'synthetic_catalog/tiny' and results['style'] == 'sketch'
  assert results['overrides'] == {'data.data_dir': data_dir}
  assert 'PSNR (dB)' in stdout and 'identity (photo)' in stdout
  assert f'{results["psnr"]:.2f}' in stdout
  # The colour shift on product pixels: smaller with preserve_color (which keeps the
  # stylized lightness, so not zero; halved in test_stylize_shop on a vivid product).
  assert 0 < results['ciede2000_preserve_color'] < results['ciede2000']
  # Without the lightness term preserve_color leaves only gamut clipping.
  assert results['ciede2000_chroma_preserve_color'] < 0.5 * results['ciede2000_chroma']
  assert 'median CIEDE2000' in stdout
  image = np.asarray(Image.open(grid))
  assert image.shape == (3 * (32 + 2), 3 * (32 + 2), 3)  # 3 rows of photo | target | output
  # Without --output: in the workdir, named after the step, the data and the style.
  workdir = str(tmp_path / 'copy')
  shutil.copytree(trained_workdir, workdir)  # trained_workdir is shared: not written.
  assert _cli(f'--workdir={workdir}', '--num_examples=4', '--step=2') == 0
  with open(os.path.join(workdir, 'evaluation', 'step_2_tiny_sketch.json')) as f:
    assert json.load(f)['num_examples'] == 4


def test_model_overrides_are_refused(trained_workdir, capsys):
  assert _cli(f'--workdir={trained_workdir}', '--config.model.width=4') == 2
  assert 'model.width' in capsys.readouterr().err
  assert _cli(f'--workdir={os.path.dirname(trained_workdir)}') == 2
  assert 'is not a shopstyle_jax workdir' in capsys.readouterr().err
  assert _cli(f'--workdir={trained_workdir}', '--step=999') == 2
  assert 'Error: ' in capsys.readouterr().err


@pytest.mark.slow
def test_module_runs_as_a_program(tmp_path, trained_workdir):
  out = tmp_path / 'eval.json'
  env = dict(os.environ, PYTHONUNBUFFERED='1', XLA_FLAGS=xla_flags(1))
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'shopstyle_jax.evaluate',
      f'--workdir={trained_workdir}',
      '--num_examples=4',
      f'--output={out}',
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-5000:]
  assert json.loads(out.read_text())['num_examples'] == 4
  assert 'PSNR (dB)' in proc.stdout


def test_metrics_match_a_direct_computation(trained_workdir):
  config = workdir_lib.load_config(trained_workdir)
  results, grid = evaluate.evaluate_checkpoint(
    config, trained_workdir, num_examples=12, grid_rows=2
  )
  assert results['num_examples'] == 12 and grid.shape == (2 * 34, 3 * 34, 3)

  stylizer = load_stylizer(trained_workdir)
  config.eval.num_examples = 12
  scores = {k: [] for k in evaluate.METRICS}
  for batch in pipeline.create_eval_batches(config, 0, 1):
    valid = batch['valid']
    photo, target = batch['photo'][valid], batch['target'][valid]
    out = inference.stylize_fn(stylizer.generator, stylizer.variables, photo)
    for k, v in evaluation.scores(photo, target, out).items():
      scores[k].extend(np.asarray(v).tolist())
  assert len(scores['psnr']) == 12
  for k in evaluate.METRICS:
    assert results[k] == pytest.approx(np.mean(scores[k]), rel=1e-5, abs=1e-5), k


@pytest.mark.skipif(
  importlib.util.find_spec('shopstyle_jax.data.folder') is None,
  reason='config.data.folder is not supported by this pipeline yet',
)
def test_folder_of_pairs(tmp_path, trained_workdir):
  pairs = tmp_path / 'pairs'
  rs = np.random.RandomState(0)
  for i in range(8):
    for sub in ('photos', 'targets'):
      os.makedirs(pairs / sub, exist_ok=True)
    photo = rs.randint(0, 256, (40, 40, 3), np.uint8)
    Image.fromarray(photo).save(pairs / 'photos' / f'{i}.jpg', quality=95)
    Image.fromarray(255 - photo[..., :1].repeat(3, -1)).save(pairs / 'targets' / f'{i}.png')
  config = workdir_lib.load_config(trained_workdir)
  config.data.folder = str(pairs)
  config.data.cache_dir = str(tmp_path / 'cache')
  config.data.test_fraction = 0.5
  results, _ = evaluate.evaluate_checkpoint(config, trained_workdir)
  assert results['dataset'] == str(pairs)
  assert 1 <= results['num_examples'] < 8
  for key in evaluate.METRICS:
    assert np.isfinite(results[key]), key
  shutil.rmtree(tmp_path / 'cache')
