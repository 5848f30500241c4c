"""main.py end to end in real subprocesses: outputs, resume, exactness."""

import glob
import json
import os

import jax
import numpy as np
import pytest

from conftest import run_main
from shopstyle_jax import checkpoints


def tensorboard_tags(workdir):
  """{tag: [steps]} from the TensorBoard event files in workdir."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  tags = {}
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents.*')):
    acc = event_accumulator.EventAccumulator(path, size_guidance={'tensors': 0, 'images': 0})
    acc.Reload()
    for kind in ('tensors', 'images', 'scalars'):
      for tag in acc.Tags().get(kind, []):
        events = getattr(acc, {'tensors': 'Tensors', 'images': 'Images',
                               'scalars': 'Scalars'}[kind])(tag)
        tags.setdefault(tag, []).extend(e.step for e in events)
  return tags


CONSTANT_LR = ('--config.optimizer.decay_start_fraction=1.0',)


def g_params(workdir, step):
  tree, _ = checkpoints.restore_subtree(workdir, ('g_params',), step)
  return tree['g_params']


@pytest.fixture(scope='module')
def run_4_then_8(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('resume'))
  # A constant learning rate, so that 4 steps then 8 is comparable with 8 at once
  # (pix2pix's decay depends on the total number of steps).
  first = run_main(workdir, data_dir, *CONSTANT_LR)  # tiny: 4 steps, checkpoints every 2
  second = run_main(workdir, data_dir, '--config.num_train_steps=8', *CONSTANT_LR)
  return workdir, first, second


def test_run_writes_config_checkpoints_and_events(run_4_then_8):
  workdir, first, _ = run_4_then_8
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  assert config['image_size'] == 32 and config['model']['generator'] == 'unet'
  assert config['run']['devices'] >= 1
  tags = tensorboard_tags(workdir)
  for tag in ('eval/psnr', 'eval/ssim', 'train/g_loss', 'train/d_loss', 'train/g_mse',
              'train/learning_rate', 'train/steps_per_second'):
    assert tag in tags, (tag, sorted(tags))
  assert 'eval/input_target_output' in tags
  assert max(tags['eval/psnr']) == 8 and 4 in tags['eval/psnr']
  assert 'Training from step 0 to 4' in first.stderr


def test_rerun_resumes_at_the_saved_step(run_4_then_8):
  workdir, _, second = run_4_then_8
  assert 'Resumed from the checkpoint at step 4' in second.stderr
  assert 'other data' not in second.stderr  # Same data: no warning.
  assert 'Training from step 4 to 8' in second.stderr
  # keep_checkpoints=3, every 2 steps: 4, 6, 8 remain.
  assert checkpoints.available_steps(workdir) == [4, 6, 8]


def test_resumed_run_equals_an_uninterrupted_run(run_4_then_8, tmp_path, data_dir):
  workdir, _, _ = run_4_then_8
  straight = str(tmp_path / 'straight')
  run_main(straight, data_dir, '--config.num_train_steps=8', *CONSTANT_LR)
  a, b = g_params(workdir, 8), g_params(straight, 8)
  diffs = [float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
  # Same data batches (iterator state restored), same optimizer state.
  assert max(diffs) == 0.0


def test_changed_model_shape_is_refused(run_4_then_8, data_dir):
  workdir, _, _ = run_4_then_8
  proc = run_main(workdir, data_dir, '--config.num_train_steps=10', '--config.model.width=16',
                  *CONSTANT_LR, check=False)
  assert proc.returncode != 0
  assert 'config.model.width: 8 -> 16' in proc.stderr
  assert checkpoints.available_steps(workdir) == [4, 6, 8]


@pytest.mark.slow
def test_config_error_is_one_fatal_line_and_exit_status_2(tmp_path):
  # The other config errors are tested in process (tests/test_config.py).
  workdir = tmp_path / 'w'
  proc = run_main(str(workdir), 'unused', '--config.model.widht=16', check=False, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.splitlines() == [
      "FATAL: Unknown config key in --config.model.widht=16: config.model has no field 'widht'. "
      'Did you mean config.model.width? Fields of config.model: depth, disc_layers, disc_width, '
      'dropout, generator, noise_channels, norm, resnet_blocks, upsample, width.']
  assert not workdir.exists()


def test_init_from_starts_from_another_runs_weights(trained_workdir, tmp_path, data_dir):
  workdir = str(tmp_path / 'finetune')
  # With a negligible learning rate (0 is refused) the weights after 2 steps are
  # the source's: Adam moves each by at most about 2 * 1e-30.
  proc = run_main(workdir, data_dir, f'--config.init_from={trained_workdir}',
                  '--config.optimizer.learning_rate=1e-30', '--config.num_train_steps=2',
                  '--config.eval_every_steps=100')
  assert 'Initialised both networks from' in proc.stderr
  for key in ('g_params', 'd_params'):
    src, _ = checkpoints.restore_subtree(trained_workdir, (key,))
    dst, _ = checkpoints.restore_subtree(workdir, (key,), 2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-20), src, dst)
  # A step folder works too; other shapes are refused with the differing arrays named.
  step_dir = os.path.join(trained_workdir, 'checkpoints', '4')
  bad = run_main(str(tmp_path / 'bad'), data_dir, f'--config.init_from={step_dir}',
                 '--config.model.width=16', check=False)
  assert bad.returncode == 1
  assert 'the networks do not match this config' in bad.stderr
