"""Real multi-process training: 2 processes x 2 CPU devices on loopback (gloo). All `slow`."""

import os
import re
import signal
import socket
import subprocess
import time

import jax
import numpy as np
import pytest

from conftest import LONG
from conftest import ROOT
from conftest import assert_same_training
from conftest import main_command
from conftest import run_main
from conftest import wait_for
from conftest import xla_flags
from shopstyle_jax import checkpoints
from shopstyle_jax import load_stylizer

pytestmark = pytest.mark.slow

# Batch norm: statistics over the global batch, the case where sharding matters.
OVERRIDES = ('--config.model.norm=batch',)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start_two_processes(tmp_path, workdir, data_dir, *overrides, per_process=((), ())):
  """main.py as process 0 and 1 of a 2-process job (2 CPU devices each);
  `per_process`: more arguments for each."""
  address = f'127.0.0.1:{free_port()}'
  env = {
    **os.environ,
    'PYTHONUNBUFFERED': '1',
    'JAX_PLATFORMS': 'cpu',
    'XLA_FLAGS': xla_flags(2),
  }
  procs, log_paths = [], []
  for pid in range(2):
    log_paths.append(str(tmp_path / f'{os.path.basename(workdir)}_log{pid}.txt'))
    with open(log_paths[-1], 'w') as log:
      procs.append(
        subprocess.Popen(
          main_command(
            workdir,
            data_dir,
            *OVERRIDES,
            *overrides,
            *per_process[pid],
            f'--coordinator_address={address}',
            '--num_processes=2',
            f'--process_id={pid}',
          ),
          cwd=ROOT,
          env=env,
          stdout=log,
          stderr=subprocess.STDOUT,
        )
      )
  return procs, log_paths


def kill_all(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()


def wait_all(procs, log_paths, timeout=600):
  """Exit codes and logs; on a timeout (a hang) kills both, so nothing outlives the test."""
  try:
    codes = [p.wait(timeout=timeout) for p in procs]
  finally:
    kill_all(procs)
  texts = [open(path).read() for path in log_paths]
  return codes, texts


def test_two_processes_train_like_one_process_with_four_devices(tmp_path):
  """From a fresh shared data dir: one process builds the catalogue, the other
  waits for it; then both train as one process with 4 devices would."""
  data_dir = str(tmp_path / 'fresh_tfds')
  workdir = str(tmp_path / 'multi')
  codes, texts = wait_all(*start_two_processes(tmp_path, workdir, data_dir))
  assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
  for pid, text in enumerate(texts):
    assert f'Process {pid} of 2 finished at step 4.' in text
    assert '4 global devices' in text
  # TFDS prints this when it builds; the waiter logs what it waits for.
  assert sum('Downloading and preparing dataset' in t for t in texts) == 1
  assert (
    sum('Waiting for another process to finish building synthetic_catalog/tiny' in t for t in texts)
    == 1
  )
  # Only process 0 writes events and progress.
  assert 'Eval at step 4' in texts[0] and 'Eval at step 4' not in texts[1]
  assert len([f for f in os.listdir(workdir) if f.startswith('events.out')]) == 1

  # The checkpoint restores in a single process.
  assert checkpoints.available_steps(workdir) == [2, 4]
  stylizer = load_stylizer(workdir)
  photo = np.random.RandomState(0).randint(0, 256, (40, 24, 3), dtype=np.uint8)
  assert stylizer(photo).shape == (40, 24, 3)

  # Same global batches, same parameters as one process with 4 devices.
  single = str(tmp_path / 'single')
  run_main(single, data_dir, *OVERRIDES, env={'XLA_FLAGS': xla_flags(4)})
  keys = ('g_params', 'd_params', 'g_batch_stats')
  a, _ = checkpoints.restore_subtree(workdir, keys, 4)
  b, _ = checkpoints.restore_subtree(single, keys, 4)
  start, _ = checkpoints.restore_subtree(single, keys, 2)
  for key in ('g_params', 'd_params'):
    assert_same_training(a[key], b[key], start[key])
  for x, y in zip(jax.tree.leaves(a['g_batch_stats']), jax.tree.leaves(b['g_batch_stats'])):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(y))))


def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path, data_dir):
  """A preempted worker (SIGTERM to process 1 only): both processes agree on
  the step, save it together and exit 0."""
  workdir = str(tmp_path / 'preempted')
  procs, log_paths = start_two_processes(tmp_path, workdir, data_dir, *LONG)
  try:
    wait_for(log_paths[0], r'\] \[3\] train/', *procs, timeout=300)
  except AssertionError:
    kill_all(procs)
    raise
  procs[1].send_signal(signal.SIGTERM)
  codes, texts = wait_all(procs, log_paths, timeout=120)
  assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
  steps = [
    int(re.search(rf'Process {pid} of 2 finished at step (\d+)\.', text).group(1))
    for pid, text in enumerate(texts)
  ]
  assert steps[0] == steps[1] >= 3
  assert f'Stopped at step {steps[0]} by SIGTERM' in texts[0]
  assert checkpoints.available_steps(workdir) == [steps[0]]
  tree, step = checkpoints.restore_subtree(workdir, ('g_params',), None)
  assert step == steps[0] and jax.tree.leaves(tree)


@pytest.mark.slow
def test_processes_started_with_different_configs_all_refuse(tmp_path, data_dir):
  """Another --config.seed on one process would train diverged replicas silently
  (another width: a gloo abort after minutes): all refuse at once, naming the key.
  Per-host paths may differ."""
  workdir = str(tmp_path / 'mismatch')
  start = time.time()
  procs, log_paths = start_two_processes(
    tmp_path,
    workdir,
    data_dir,
    per_process=((), ('--config.seed=1', f'--config.data.cache_dir={tmp_path}/cache1')),
  )
  codes, texts = wait_all(procs, log_paths, timeout=300)
  assert all(code not in (0, None) for code in codes), codes
  assert time.time() - start < 120
  for text in texts:
    # Only the seed: the cache dirs differ too, but they are each host's own.
    assert re.search(
      r'FATAL: .*The processes were started with different configs: seed '
      r'\(process 0: 0, process 1: 1\)\. Every process',
      text,
    ), text[-3000:]
  assert checkpoints.available_steps(workdir) == []


@pytest.mark.slow
def test_an_unreachable_coordinator_is_named(tmp_path):
  """Before: 5 minutes of silence, then 'another task died'."""
  address = f'127.0.0.1:{free_port()}'  # Nobody listens there.
  start = time.time()
  proc = subprocess.run(
    main_command(
      f'{tmp_path}/w',
      str(tmp_path / 'tfds'),
      f'--coordinator_address={address}',
      '--num_processes=2',
      '--process_id=1',
      '--coordinator_timeout=5',
    ),
    cwd=ROOT,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS': xla_flags(1)},
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert time.time() - start < 60
  assert f'Waiting for the coordinator at {address} (process 1 of 2)' in proc.stderr
  assert (f'Process 1 of 2 could not join the job at {address} within 5 s') in proc.stderr
  assert 'another task died' not in proc.stderr
