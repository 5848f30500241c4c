"""main.py end to end in real subprocesses: outputs, resume across processes, exactness,
the one config-error line. All `slow`: tests/test_train.py covers the same in process."""

import json
import os

import pytest

from conftest import load_config
from conftest import run_main
from conftest import tensorboard_tags
from shopstyle_jax import checkpoints

pytestmark = pytest.mark.slow


def g_params(workdir, step):
  tree, _ = checkpoints.restore_subtree(workdir, ('g_params',), step)
  return tree['g_params']


@pytest.fixture(scope='module')
def run_4_then_8(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('resume'))
  # A constant learning rate, so that 4 steps then 8 is comparable with 8 at once
  # (pix2pix's decay depends on the total number of steps).
  first = run_main(workdir, data_dir)  # tiny: 4 steps, checkpoints every 2
  second = run_main(workdir, data_dir, '--config.num_train_steps=8')
  return workdir, first, second


def test_run_writes_config_checkpoints_and_events(run_4_then_8):
  workdir, _, _ = run_4_then_8
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  assert config['image_size'] == 32 and config['model']['generator'] == 'unet'
  assert config['run']['devices'] >= 1
  tags = tensorboard_tags(workdir)
  for tag in (
    'eval/psnr',
    'eval/ssim',
    'train/g_loss',
    'train/d_loss',
    'train/g_mse',
    'train/learning_rate',
    'train/steps_per_second',
  ):
    assert tag in tags, (tag, sorted(tags))
  assert 'eval/input_target_output' in tags
  assert max(tags['eval/psnr']) == 8 and 4 in tags['eval/psnr']


def test_rerun_resumes_at_the_saved_step(run_4_then_8):
  workdir, _, second = run_4_then_8
  assert 'Resumed from the checkpoint at step 4' in second.stderr
  assert 'other data' not in second.stderr  # Same data: no warning.
  # keep_checkpoints=3, every 2 steps: 4, 6, 8 remain.
  assert checkpoints.available_steps(workdir) == [4, 6, 8]
  tree, _ = checkpoints.restore_subtree(workdir, ('step',), 8)
  assert int(tree['step']) == 8


def test_config_error_is_one_fatal_line_and_exit_status_2(tmp_path):
  # The other config errors are tested in process (tests/test_config.py).
  workdir = tmp_path / 'w'
  proc = run_main(str(workdir), 'unused', '--config.model.widht=16', check=False, timeout=120)
  assert proc.returncode == 2
  fields = ', '.join(sorted(load_config('tiny').model))
  assert proc.stderr.splitlines() == [
    "FATAL: Unknown config key in --config.model.widht=16: config.model has no field 'widht'. "
    f'Did you mean config.model.width? Fields of config.model: {fields}.'
  ]
  assert not workdir.exists()
