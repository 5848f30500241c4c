"""Failure behaviour with real processes: signals, kill -9, NaNs, bad settings."""

import concurrent.futures
import errno
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from conftest import LONG
from conftest import ROOT
from conftest import main_command
from conftest import run_main
from conftest import trained_config
from conftest import wait_for
from conftest import xla_flags
from shopstyle_jax import checkpoints
from shopstyle_jax import load_stylizer
from shopstyle_jax import parallel

RESUMED = re.compile(r'Resumed from the checkpoint at step (\d+)\.')
TMP = '.orbax-checkpoint-tmp'  # What Orbax appends to a step's folder while writing it.


def start_main(workdir, data_dir, *overrides, log_path, env=None):
  cmd = main_command(workdir, data_dir, *overrides)
  env = dict(os.environ, PYTHONUNBUFFERED='1', XLA_FLAGS=xla_flags(1), **(env or {}))
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
  """SIGTERM (with a second run on the same workdir refused meanwhile, and the
  resume) and SIGINT: each saves the step it stopped at and exits with its code."""
  workdir, log_path = str(tmp_path / 'w'), str(tmp_path / 'log.txt')
  proc, log = start_main(workdir, data_dir, *LONG, log_path=log_path)
  try:
    wait_for(log_path, r'\] \[3\] train/', proc)  # a few steps done
    if sig == signal.SIGTERM:
      # A second run on the workdir is refused at once, naming the first, which trains on.
      second = run_main(workdir, data_dir, *LONG, check=False, timeout=120)
      assert second.returncode == 1
      assert (
        f'FATAL: WorkdirInUseError: Workdir {workdir} is in use by another training run '
        f'(process {proc.pid} on host {socket.gethostname()}'
      ) in second.stderr
      assert second.stderr.count('Traceback') == 0
      assert proc.poll() is None
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code
  finally:
    if proc.poll() is None:
      proc.kill()
    log.close()
  assert not os.path.exists(os.path.join(workdir, '.lock'))
  text = open(log_path).read()
  stopped = int(re.search(r'Stopped at step (\d+) by ' + sig.name, text).group(1))
  assert stopped >= 3
  assert checkpoints.available_steps(workdir) == [stopped]
  if sig == signal.SIGINT:
    return  # Resuming from it is the same code path as below.
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
  frequent = (
    '--config.num_train_steps=40',
    '--config.checkpoint_every_steps=1',
    '--config.eval_every_steps=1000',
    '--config.keep_checkpoints=2',
    '--config.log_every_steps=1',
  )
  resumes, saved = 0, {}
  for trial in range(3):
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
  assert resumes >= 2
  final = run_main(workdir, data_dir, *frequent)
  assert 'Training from step' in final.stderr
  assert checkpoints.available_steps(workdir)[-1] == 40


@pytest.mark.slow
def test_nonfinite_training_stops_without_checkpointing_bad_state(
  tmp_path, data_dir, trained_workdir
):
  workdir = str(tmp_path / 'w')
  shutil.copytree(trained_workdir, workdir)  # Checkpoints at steps 2 and 4 (shared: copied).
  good = g_params(workdir, 4)
  # Resumed with a learning rate this large, the first D update blows D up and
  # every step from then on is non-finite and skipped.
  proc = run_main(
    workdir,
    data_dir,
    '--config.optimizer.learning_rate=1e30',
    '--config.max_nonfinite_steps=3',
    '--config.num_train_steps=50',
    '--config.checkpoint_every_steps=1',
    '--config.eval_every_steps=1000',
    check=False,
  )
  assert proc.returncode == 1
  match = re.search(
    r'NonFiniteError: 3 consecutive non-finite steps, the last at step (\d+) '
    r'\(non-finite: ([a-z_, ]+)\)',
    proc.stderr,
  )
  assert match, proc.stderr[-2000:]
  assert int(match.group(1)) == 7  # steps 5, 6 and 7
  assert 'g_loss' in match.group(2)
  assert 'Not checkpointing step 5' in proc.stderr
  assert checkpoints.available_steps(workdir) == [2, 4]
  assert_same(g_params(workdir, 4), good)
  for key in ('g_params', 'd_params'):
    tree, _ = checkpoints.restore_subtree(workdir, (key,), 4)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(tree))


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_a_run_that_saves_no_finite_step_fails_and_says_so(
  tmp_path, tiny_config, caplog, monkeypatch
):
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
  assert (
    'Training ended at step 3, but the last 2 step(s) were non-finite and skipped: the '
    'latest checkpoint is step 1.'
  ) in caplog.text
  # Resumed from step 1, no step of the run is finite: an error, not a silent exit 0.
  config.num_train_steps = 4
  with pytest.raises(
    train.NonFiniteError,
    match=(
      r'Training ended at step 4 without saving any step of this run \(steps 2 to 4\): every '
      r'step it would have checkpointed was non-finite, the last 3 in a row '
      r'\(config.max_nonfinite_steps=10\); the latest checkpoint is step 1.'
    ),
  ):
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
  assert (
    f'Resuming the run in {workdir} on other data than it trained on so far '
    f"(config.data.folder: None -> '{photos}'): from step 1 it trains on the new "
    'data.'
  ) in caplog.text


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


def test_disk_check_counts_every_kept_checkpoint_plus_one(tmp_path, tiny_config, monkeypatch):
  """Orbax writes a step before deleting the oldest: keep_checkpoints + 1 must fit."""
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  need = 10 * 2**20
  monkeypatch.setattr(
    shutil, 'disk_usage', lambda _: shutil._ntuple_diskusage(2**40, 2**40 - 3 * need, 3 * need)
  )
  checkpoints.check_workdir(str(tmp_path / 'a'), need, keep=2)  # 3 fit
  with pytest.raises(OSError, match=r'4 more must fit \(config.keep_checkpoints=3 kept'):
    checkpoints.check_workdir(str(tmp_path / 'b'), need, keep=3)
  # Training passes config.keep_checkpoints: room for 3 of its checkpoints, 4 needed.
  monkeypatch.setattr(checkpoints, 'state_bytes', lambda _: need)
  tiny_config.keep_checkpoints = 3
  with pytest.raises(OSError, match='config.keep_checkpoints=3'):
    train.train_and_evaluate(tiny_config, str(tmp_path / 'c'))
  assert checkpoints.available_steps(str(tmp_path / 'c')) == []


def test_a_workdir_that_is_a_file_is_called_a_file(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  with pytest.raises(NotADirectoryError, match=f'Workdir {blocker} is a file, not a folder'):
    checkpoints.check_workdir(str(blocker), 1)
  with pytest.raises(NotADirectoryError, match=f'{blocker} is a file, not a folder'):
    checkpoints.check_workdir(str(blocker / 'w'), 1)


def fail_save_at(monkeypatch, step):
  """Makes the background write of checkpoint `step` fail with ENOSPC, as a full
  disk does (Orbax's own tests fail a save the same way: a commit future that raises)."""
  original = ocp.StandardCheckpointHandler.async_save

  async def async_save(self, directory, *args, **kwargs):
    futures = list(await original(self, directory, *args, **kwargs) or [])
    path = str(getattr(directory, 'path', directory))
    if f'{os.sep}{step}{TMP}' in path:
      failed = concurrent.futures.Future()
      failed.set_exception(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path))
      futures.append(failed)
    return futures

  monkeypatch.setattr(ocp.StandardCheckpointHandler, 'async_save', async_save)


def test_a_failed_save_stops_training_at_once_and_is_cleaned_up(
  tmp_path, tiny_config, monkeypatch, caplog
):
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path / 'w')
  config = trained_config(tiny_config.data.data_dir)  # trained_workdir's compiled step.
  config.num_train_steps, config.checkpoint_every_steps = 30, 5
  config.eval_every_steps, config.log_every_steps = 1000, 1000
  fail_save_at(monkeypatch, 10)
  # Steps as slow as real ones, so that the background write ends within an interval.
  global_batch = parallel.global_batch
  monkeypatch.setattr(
    parallel, 'global_batch', lambda *args: time.sleep(0.3) or global_batch(*args)
  )
  with pytest.raises(Exception) as info:
    train.train_and_evaluate(config, workdir)
  message = str(info.value)
  match = re.fullmatch(
    r'Saving the checkpoint of step 10 in \S+ failed \(no space left on the device\)\. '
    r'Training stopped at step (\d+); the last good checkpoint is step 5\. Free some space '
    r'\(or lower config.keep_checkpoints\), then rerun the same command to resume\.',
    message,
  )
  assert match, message
  assert type(info.value).__name__ == 'SaveError'
  # At once: not at the next save, one interval (5 steps) later.
  assert 10 < int(match.group(1)) < 15
  assert checkpoints.available_steps(workdir) == [5]
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', f'10{TMP}'))

  # The rerun removes the unfinished save, says so, and resumes from step 5.
  monkeypatch.undo()
  config.num_train_steps = 10
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, workdir)
  assert (
    f'Removed 1 unfinished checkpoint(s) an interrupted run left in '
    f'{os.path.join(workdir, "checkpoints")}: 10{TMP}.'
  ) in caplog.text
  assert 'Resumed from the checkpoint at step 5.' in caplog.text
  assert checkpoints.available_steps(workdir) == [5, 10]
  assert not [n for n in os.listdir(os.path.join(workdir, 'checkpoints')) if TMP in n]


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


def copy_workdir(trained_workdir, tmp_path):
  workdir = str(tmp_path / 'copy')
  shutil.copytree(trained_workdir, workdir)
  return workdir


def test_other_model_settings_without_config_json_change_nothing(
  tmp_path, trained_workdir, tiny_config
):
  """config.json deleted, then a rerun with another width: refused before config.json
  is written, so the right command still resumes."""
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  workdir = copy_workdir(trained_workdir, tmp_path)
  config_json = os.path.join(workdir, 'config.json')
  os.remove(config_json)
  config = tiny_config
  config.model.width = 16
  with pytest.raises(ValueError) as info:
    train.train_and_evaluate(config, workdir)
  assert re.search(
    r"do not fit this config's networks \(\d+ arrays differ, e\.g\. "
    r'g_params/\S+: checkpoint \([\d, ]*8\), config \([\d, ]*16\)',
    str(info.value),
  ), str(info.value)
  assert not os.path.exists(config_json)
  assert checkpoints.available_steps(workdir) == [2, 4]
  config.model.width, config.num_train_steps = 8, 6
  train.train_and_evaluate(config, workdir)
  assert checkpoints.available_steps(workdir)[-1] == 6
  with open(config_json) as f:
    assert json.load(f)['model']['width'] == 8


def test_load_stylizer_names_what_does_not_fit_config_json(tmp_path, trained_workdir):
  workdir = copy_workdir(trained_workdir, tmp_path)
  config_json = os.path.join(workdir, 'config.json')
  with open(config_json) as f:
    config = json.load(f)
  config['model']['width'] = 16
  with open(config_json, 'w') as f:
    json.dump(config, f)
  with pytest.raises(ValueError) as info:
    load_stylizer(workdir)
  message = str(info.value)
  assert f'Checkpoint step 4 of {workdir} does not fit the generator its config.json' in message
  assert re.search(
    r'params/Conv_0/kernel: checkpoint \(\d+, \d+, 3, 8\), config '
    r'\(\d+, \d+, 3, 16\)',
    message,
  ), message
  assert 'model.width=16' in message


def test_a_corrupt_latest_checkpoint_resumes_from_the_newest_intact_one(
  tmp_path, trained_workdir, tiny_config, caplog
):
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  workdir = copy_workdir(trained_workdir, tmp_path)
  data = os.path.join(workdir, 'checkpoints', '4', 'state', 'ocdbt.process_0', 'd')
  for name in os.listdir(data):  # Truncated array data, as a broken copy leaves it.
    with open(os.path.join(data, name), 'r+b') as f:
      f.truncate(100)
  config = tiny_config
  config.num_train_steps = 6
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, workdir)
  checkpoint_dir = os.path.join(workdir, 'checkpoints')
  assert re.search(
    rf'Checkpoint step 4 in {re.escape(checkpoint_dir)} is corrupt or '
    r'incomplete \(.+\); trying the next older one\.',
    caplog.text,
  ), caplog.text
  assert 'Resumed from the checkpoint at step 2.' in caplog.text
  assert (
    f'Resuming from step 2, the newest intact checkpoint; the unreadable step(s) 4 were '
    f'moved to {os.path.join(checkpoint_dir, ".corrupt")}'
  ) in caplog.text
  assert checkpoints.available_steps(workdir) == [2, 4, 6]  # Step 4 saved again, intact.
  g_params(workdir, 4)


def write_lock(workdir, **fields):
  """A lock file as another run would hold it (live: our parent process on this host)."""
  now = time.time()
  record = {
    'host': socket.gethostname(),
    'pid': os.getppid(),
    'since': now - 60,
    'since_text': 'a minute ago',
    'heartbeat': now,
    'token': 'other',
    **fields,
  }
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, '.lock'), 'w') as f:
    json.dump(record, f)
  return record


def test_a_second_run_in_a_locked_workdir_is_refused(tmp_path, tiny_config):
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path / 'w')
  write_lock(workdir)
  with pytest.raises(Exception) as info:
    train.train_and_evaluate(tiny_config, workdir)
  assert type(info.value).__name__ == 'WorkdirInUseError'
  assert re.search(
    rf'Workdir {re.escape(workdir)} is in use by another training run \(process '
    rf'{os.getppid()} on host {re.escape(socket.gethostname())}, since a minute ago; last '
    rf'heartbeat \d+ s ago; lock file {re.escape(workdir)}/\.lock\)',
    str(info.value),
  )
  assert checkpoints.available_steps(workdir) == []
  assert not os.path.exists(os.path.join(workdir, 'config.json'))
  with open(os.path.join(workdir, '.lock')) as f:
    assert json.load(f)['token'] == 'other'  # Left to its holder.


def test_workdir_lock_is_exclusive_refreshed_and_removed(tmp_path):
  from shopstyle_jax import workdir_lock  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path)
  with workdir_lock.WorkdirLock(workdir, heartbeat=0.1) as holder:
    with open(holder.path) as f:
      first = json.load(f)
    assert (first['host'], first['pid']) == (socket.gethostname(), os.getpid())
    with pytest.raises(workdir_lock.WorkdirInUseError, match=f'process {os.getpid()} on host'):
      workdir_lock.WorkdirLock(workdir).acquire()
    time.sleep(0.5)
    with open(holder.path) as f:
      assert json.load(f)['heartbeat'] > first['heartbeat']  # The heartbeat thread beats.
    assert not holder.lost
  assert not os.path.exists(os.path.join(workdir, '.lock'))


@pytest.mark.parametrize(
  'stale,why',
  [
    ({'host': 'elsewhere', 'heartbeat': time.time() - 600}, r'its last heartbeat was \d+ s ago'),
    ({'pid': 2**22 + 1}, rf'process {2**22 + 1} on this host \(\S+\) is gone'),
  ],
)
def test_a_stale_workdir_lock_is_taken_over(tmp_path, caplog, stale, why):
  from shopstyle_jax import workdir_lock  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path)
  old = write_lock(workdir, **stale)
  with caplog.at_level(logging.WARNING):
    lock = workdir_lock.WorkdirLock(workdir)
    lock.acquire()
  assert re.search(
    rf'Took over the stale lock of workdir {re.escape(workdir)}, held by process '
    rf'{old["pid"]} on host {old["host"]} since a minute ago: {why}\.',
    caplog.text,
  ), caplog.text
  with open(lock.path) as f:
    assert json.load(f)['token'] == lock.token
  lock.release()
  assert os.listdir(workdir) == []


def test_a_lock_taken_over_is_noticed(tmp_path, caplog):
  from shopstyle_jax import workdir_lock  # pylint: disable=g-import-not-at-top

  lock = workdir_lock.WorkdirLock(str(tmp_path), heartbeat=0.05)
  lock.acquire()
  write_lock(str(tmp_path), pid=12345, host='elsewhere')
  with caplog.at_level(logging.ERROR):
    deadline = time.time() + 10
    while not lock.lost and time.time() < deadline:
      time.sleep(0.05)
  assert lock.lost
  assert 'held by process 12345 on host elsewhere' in caplog.text
  lock.release()
  with open(lock.path) as f:
    assert json.load(f)['token'] == 'other'  # Not ours to remove.


@pytest.mark.slow
@pytest.mark.parametrize('during', ['the first compile', 'training'])
def test_a_second_ctrl_c_exits_at_once_and_cleanly(tmp_path, data_dir, during):
  workdir, log_path = str(tmp_path / 'w'), str(tmp_path / 'log.txt')
  if during == 'training':
    proc, log = start_main(workdir, data_dir, *LONG, log_path=log_path)
    wait_for(log_path, r'\] \[3\] train/', proc)
  else:  # Without the compilation cache the first step compiles for seconds.
    proc, log = start_main(
      workdir, data_dir, *LONG, log_path=log_path, env={'SHOPSTYLE_JAX_NO_CACHE': '1'}
    )
    wait_for(log_path, r'Training from step 0 to', proc)
    time.sleep(1.0)
  try:
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    start = time.time()
    code = proc.wait(timeout=60)
    took = time.time() - start
  finally:
    if proc.poll() is None:
      proc.kill()
    log.close()
  text = open(log_path).read()
  assert code == 130, text[-3000:]
  assert took < 10, took
  assert text.count('Traceback') <= 1, text[-5000:]
  assert 'A second Ctrl-C: exiting at once, without saving.' in text
  assert not os.path.exists(os.path.join(workdir, '.lock'))


def huge_png(path, width, height):
  """A PNG whose header says `width` x `height`, with only a few rows of data:
  what matters is that it is refused before anything decodes it."""

  def chunk(kind, data):
    return (
      struct.pack('>I', len(data))
      + kind
      + data
      + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)
    )

  rows = zlib.compress(b''.join(b'\0' + b'\xff' * 3 * width for _ in range(4)))
  path.write_bytes(
    b'\x89PNG\r\n\x1a\n'
    + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
    + chunk(b'IDAT', rows)
    + chunk(b'IEND', b'')
  )


def stylize_cli(*args) -> int:
  """The stylize command line in this process, on fresh flags."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  from shopstyle_jax import stylize  # pylint: disable=g-import-not-at-top

  flag_values = flags.FlagValues()
  stylize.define_flags(flag_values)
  flag_values(['stylize', *args])
  return stylize.run(flag_values)


def test_one_huge_photo_is_refused_by_name_and_the_others_are_done(
  tmp_path, trained_workdir, monkeypatch, capsys
):
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top

  photos, out = tmp_path / 'photos', tmp_path / 'out'
  photos.mkdir()
  rs = np.random.RandomState(0)
  for name in ('a', 'c'):
    Image.fromarray(rs.randint(0, 256, (40, 24, 3), np.uint8)).save(photos / f'{name}.png')
  huge_png(photos / 'b_huge.png', 10000, 10000)
  # A container's 8 GiB: decoding fits, stylizing at full size does not.
  monkeypatch.setattr(
    runtime, 'available_memory', lambda device=None: (8 * 2**30, 'a test limit'), raising=False
  )
  # Without tiling (`--tile_threshold=0`); tiled, it would be stylized in bounded memory.
  assert (
    stylize_cli(
      f'--workdir={trained_workdir}', f'--input={photos}', f'--output={out}', '--tile_threshold=0'
    )
    == 0
  )
  out_text = capsys.readouterr().out  # The summary lists the failures.
  match = re.search(
    r'failed: b_huge\.png: 10000x10000 \(100 megapixels\) would need about '
    r'(\d+\.\d) GiB to stylize, more than the 8\.0 GiB available \(a test '
    r'limit\): use --max_side=(\d+) or less\.',
    out_text,
  )
  assert match, out_text
  assert '2 done, 0 skipped (output already there), 1 failed.' in out_text
  assert sorted(os.listdir(out)) == ['a.png', 'c.png']
  # The side it suggests fits (decoding at full size, the network at that side).
  from shopstyle_jax import batch  # pylint: disable=g-import-not-at-top

  side = int(match.group(2))
  stylizer = load_stylizer(trained_workdir)
  check = batch.MemoryCheck(batch.DeviceRunner(stylizer), side, 1)
  check.check(10000, 10000)
  with pytest.raises(batch.PhotoTooLargeError):
    batch.MemoryCheck(batch.DeviceRunner(stylizer), side + 256, 1).check(10000, 10000)
  # Too large even to decode: no --max_side helps.
  monkeypatch.setattr(runtime, 'available_memory', lambda device=None: (2**30, 'a test limit'))
  with pytest.raises(batch.PhotoTooLargeError, match='shrink the file first'):
    check.check(10000, 10000)


def test_training_that_would_not_fit_in_memory_is_refused_before_it_runs(
  tmp_path, trained_workdir, tiny_config, monkeypatch
):
  """Before: image_size=4096 was OOM-killed with nothing logged. A low limit stands
  in for a small machine."""
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(
    runtime, 'available_memory', lambda device=None: (2**20, 'a test limit'), raising=False
  )
  fresh = str(tmp_path / 'fresh')
  with pytest.raises(MemoryError) as info:
    train.train_and_evaluate(tiny_config, fresh)
  assert re.fullmatch(
    r'Initialising the networks \(config.image_size=32\) needs about \d+ MiB on the host, '
    r"for all its CPU devices \(XLA's estimate of the compiled program's buffers\), more "
    r'than the 1 MiB available \(a test limit\)\. Lower config.image_size, or use a machine '
    r'with more memory\.',
    str(info.value),
  ), str(info.value)
  # Resuming (no initialisation): the train step is refused before its first run.
  workdir = copy_workdir(trained_workdir, tmp_path)
  tiny_config.num_train_steps = 6
  with pytest.raises(MemoryError) as info:
    train.train_and_evaluate(tiny_config, workdir)
  assert re.match(
    r'A train step \(config.image_size=32, config.batch_size=8 over 8 device\(s\)\) needs '
    r'about \d+ MiB on the host, for all its CPU devices .* Lower config.batch_size or '
    r'config.image_size',
    str(info.value),
  ), str(info.value)
  assert checkpoints.available_steps(workdir) == [2, 4]


def test_available_memory_honours_a_container_limit(tmp_path, monkeypatch):
  """A container's cgroup limit counts, not only the host's memory."""
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top

  v2, v1 = tmp_path / 'v2', tmp_path / 'v1'
  v2.mkdir()
  (v2 / 'memory.max').write_text(f'{2 * 2**30}\n')
  (v2 / 'memory.current').write_text(f'{3 * 2**29}\n')
  (v2 / 'memory.stat').write_text(f'anon 1\ninactive_file {2**28}\n')
  v1.mkdir()
  (v1 / 'memory.limit_in_bytes').write_text('9223372036854771712\n')  # No limit.
  (v1 / 'memory.usage_in_bytes').write_text('5\n')
  monkeypatch.setattr(
    runtime,
    '_CGROUP_LAYOUTS',
    (
      (str(v2), '', 'memory.max', 'memory.current', 'inactive_file'),
      (str(v1), 'memory', 'memory.limit_in_bytes', 'memory.usage_in_bytes', 'total_inactive_file'),
    ),
  )
  free, source = runtime.available_memory()
  assert free == 3 * 2**28  # 2 GiB - 1.5 GiB in use + 256 MiB of reclaimable cache
  assert source == (f'the cgroup memory limit {v2}/memory.max (2.0 GiB, 1.5 GiB in use)')
  (v2 / 'memory.max').write_text('max\n')
  free, source = runtime.available_memory()
  assert source == 'MemAvailable in /proc/meminfo' and free > 0


FORKED_WORKER = """
import os, signal, sys, time
from shopstyle_jax import stopping
os.setpgrp()  # Its own process group, as a terminal's foreground job.
stop = stopping.StopRequest()
if os.fork() == 0:  # A data worker.
  time.sleep(5)
  os._exit(0)
time.sleep(0.5)
os.killpg(os.getpgrp(), signal.SIGINT)  # One Ctrl-C: it reaches both processes.
time.sleep(1.5)
print('still running; received', stop.received, flush=True)
"""


@pytest.mark.slow
def test_one_ctrl_c_reaching_a_forked_worker_counts_once(tmp_path):
  proc = subprocess.run(
    [sys.executable, '-c', FORKED_WORKER],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'still running; received {int(signal.SIGINT)}' in proc.stdout
  assert 'A second Ctrl-C' not in proc.stderr
