"""Failure behaviour with real processes: signals, kill -9, NaNs, bad settings."""

import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import LONG, ROOT, main_command, run_main, wait_for
from shopstyle_jax import checkpoints
from shopstyle_jax import load_stylizer

RESUMED = re.compile(r'Resumed from the checkpoint at step (\d+)\.')


def start_main(workdir, data_dir, *overrides, log_path):
  cmd = main_command(workdir, data_dir, *overrides)
  env = dict(os.environ, PYTHONUNBUFFERED='1', XLA_FLAGS='')
  log = open(log_path, 'w')
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log


def g_params(workdir, step):
  """The checkpoint's generator weights, as host arrays."""
  tree, _ = checkpoints.restore_subtree(workdir, ('g_params',), step)
  return tree['g_params']


def assert_same(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.slow
@pytest.mark.parametrize('sig,code', [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_saves_current_step_and_exits(tmp_path, data_dir, sig, code):
  workdir, log_path = str(tmp_path / 'w'), str(tmp_path / 'log.txt')
  proc, log = start_main(workdir, data_dir, *LONG, log_path=log_path)
  wait_for(log_path, r'\] \[3\] train/', proc)  # a few steps done
  proc.send_signal(sig)
  assert proc.wait(timeout=120) == code
  log.close()
  text = open(log_path).read()
  stopped = int(re.search(r'Stopped at step (\d+) by ' + sig.name, text).group(1))
  assert stopped >= 3
  assert checkpoints.available_steps(workdir) == [stopped]
  saved = g_params(workdir, stopped)
  # The rerun resumes at exactly that step, from that checkpoint, left as it was.
  proc2 = run_main(workdir, data_dir, f'--config.num_train_steps={stopped + 2}')
  assert int(RESUMED.search(proc2.stderr).group(1)) == stopped
  assert f'Training from step {stopped} to {stopped + 2}' in proc2.stderr
  assert_same(g_params(workdir, stopped), saved)


@pytest.mark.slow
def test_kill_9_at_random_moments_never_loses_a_checkpoint(tmp_path, data_dir):
  """SIGKILL, often in the middle of a checkpoint write (one every step)."""
  workdir = str(tmp_path / 'w')
  rng = random.Random(0)
  frequent = ('--config.num_train_steps=40', '--config.checkpoint_every_steps=1',
              '--config.eval_every_steps=1000', '--config.keep_checkpoints=2',
              '--config.log_every_steps=1')
  resumes, saved = 0, {}
  for trial in range(5):
    log_path = str(tmp_path / f'log{trial}.txt')
    before = checkpoints.available_steps(workdir)
    proc, log = start_main(workdir, data_dir, *frequent, log_path=log_path)
    wait_for(log_path, r'\] \[\d+\] train/', proc)  # compiled and stepping
    time.sleep(rng.uniform(0.0, 1.5))
    proc.kill()
    proc.wait()
    log.close()
    text = open(log_path).read()
    if before:
      # The run resumed from the latest complete checkpoint.
      assert int(RESUMED.search(text).group(1)) == before[-1]
      resumes += 1
    after = checkpoints.available_steps(workdir)
    # Every listed checkpoint is complete and restorable; none went backwards, and
    # those listed before the kill still hold the weights they held then.
    restored = {s: g_params(workdir, s) for s in after}
    for s in set(before) & set(after):
      assert_same(restored[s], saved[s])
    saved = restored
    if before:
      assert after and after[-1] >= before[-1]
  assert resumes >= 3
  final = run_main(workdir, data_dir, *frequent)
  assert 'Training from step' in final.stderr
  assert checkpoints.available_steps(workdir)[-1] == 40


@pytest.mark.slow
def test_nonfinite_training_stops_without_checkpointing_bad_state(tmp_path, data_dir):
  workdir = str(tmp_path / 'w')
  run_main(workdir, data_dir, '--config.num_train_steps=2', '--config.eval_every_steps=1000')
  good = g_params(workdir, 2)
  # Resumed with a learning rate this large, the first D update blows D up and
  # every step from then on is non-finite and skipped.
  proc = run_main(workdir, data_dir, '--config.optimizer.learning_rate=1e30',
                  '--config.max_nonfinite_steps=3', '--config.num_train_steps=50',
                  '--config.checkpoint_every_steps=1', '--config.eval_every_steps=1000',
                  check=False)
  assert proc.returncode == 1
  match = re.search(r'NonFiniteError: 3 consecutive non-finite steps, the last at step (\d+) '
                    r'\(non-finite: ([a-z_, ]+)\)', proc.stderr)
  assert match, proc.stderr[-2000:]
  assert int(match.group(1)) == 5  # steps 3, 4 and 5
  assert 'g_loss' in match.group(2)
  assert 'Not checkpointing step 3' in proc.stderr
  assert checkpoints.available_steps(workdir) == [2]
  assert_same(g_params(workdir, 2), good)
  for key in ('g_params', 'd_params'):
    tree, _ = checkpoints.restore_subtree(workdir, (key,), 2)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(tree))


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_a_run_that_saves_no_finite_step_fails_and_says_so(tmp_path, tiny_config, caplog,
                                                          monkeypatch):
  """Fewer non-finite steps in a row than max_nonfinite_steps, but at every checkpoint."""
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.methods import paired  # pylint: disable=g-import-not-at-top
  make_train_step = paired.make_train_step

  def poisoned(*args, **kwargs):
    """The real step, on NaN targets from the second step (state.step 1) on."""
    step = make_train_step(*args, **kwargs)

    def fn(state, batch, vgg_params=None):
      target = jnp.where(state.step >= 1, jnp.nan, batch['target'])
      return step(state, {**batch, 'target': target}, vgg_params)
    return fn

  monkeypatch.setattr(paired, 'make_train_step', poisoned)
  workdir = str(tmp_path / 'w')
  config = tiny_config
  config.num_train_steps, config.checkpoint_every_steps = 3, 1
  config.eval_every_steps = 1000
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(config, workdir)
  assert checkpoints.available_steps(workdir) == [1]
  assert ('Training ended at step 3, but the last 2 step(s) were non-finite and skipped: the '
          'latest checkpoint is step 1.') in caplog.text
  # Resumed from step 1, no step of the run is finite: an error, not a silent exit 0.
  config.num_train_steps = 4
  with pytest.raises(train.NonFiniteError, match=(
      r'Training ended at step 4 without saving any step of this run \(steps 2 to 4\): every '
      r'step it would have checkpointed was non-finite, the last 3 in a row '
      r'\(config.max_nonfinite_steps=10\); the latest checkpoint is step 1.')):
    train.train_and_evaluate(config, workdir)
  assert checkpoints.available_steps(workdir) == [1]


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_resuming_on_other_data_warns(tmp_path, tiny_config, caplog):
  """(tests/test_main.py checks that a resume on the same data does not warn.)"""
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top
  workdir, photos = str(tmp_path / 'w'), tmp_path / 'photos'
  photos.mkdir()
  rs = np.random.RandomState(0)
  for i in range(4):
    Image.fromarray(rs.randint(0, 256, (40, 48, 3), np.uint8)).save(photos / f'{i}.jpg')
  config = tiny_config
  config.num_train_steps, config.eval_every_steps = 1, 1000
  train.train_and_evaluate(config, workdir)
  config.num_train_steps = 2
  config.data.folder, config.data.cache_dir = str(photos), str(tmp_path / 'cache')
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(config, workdir)
  assert (f"Resuming the run in {workdir} on other data than it trained on so far "
          f"(config.data.folder: None -> '{photos}'): from step 1 it trains on the new "
          'data.') in caplog.text


@pytest.mark.slow
def test_unusable_workdir_is_refused(tmp_path, data_dir):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  proc = run_main(str(blocker / 'w'), data_dir, check=False)
  assert proc.returncode == 1 and 'FATAL' in proc.stderr and str(blocker) in proc.stderr


def test_too_little_disk_is_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(shutil, 'disk_usage', lambda _: shutil._ntuple_diskusage(10, 9, 1))
  with pytest.raises(OSError, match='MiB free'):
    checkpoints.check_workdir(str(tmp_path), 10 * 2**20)


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, trained_workdir):
  workdir = str(tmp_path / 'copy')
  shutil.copytree(trained_workdir, workdir)
  step = checkpoints.available_steps(workdir)[-1]
  state_dir = os.path.join(workdir, 'checkpoints', str(step), 'state')
  for root, _, files in os.walk(state_dir):
    for name in files:
      if name not in ('_METADATA', '_CHECKPOINT_METADATA', 'commit_success.txt'):
        with open(os.path.join(root, name), 'wb') as f:
          f.write(b'garbage')
  with pytest.raises(ValueError, match='could not be read'):
    load_stylizer(workdir)
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['model']['generator'] == 'unet'  # nothing else touched
