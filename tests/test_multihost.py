"""Real multi-process training: 2 processes x 2 CPU devices on loopback (gloo)."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np

from conftest import ROOT, run_main
from shopstyle_jax import checkpoints
from shopstyle_jax import load_stylizer

# Batch norm: statistics over the global batch, the case where sharding matters.
OVERRIDES = ('--config.model.norm=batch',)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one_process_with_four_devices(tmp_path, data_dir):
  workdir = str(tmp_path / 'multi')
  address = f'127.0.0.1:{free_port()}'
  env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'JAX_PLATFORMS': 'cpu',
         'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  procs, logs = [], []
  for pid in range(2):
    logs.append(open(tmp_path / f'log{pid}.txt', 'w+'))
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'main.py'),
         f'--config={os.path.join(ROOT, "configs/tiny.py")}', f'--workdir={workdir}',
         f'--config.data.data_dir={data_dir}', *OVERRIDES, f'--coordinator_address={address}',
         '--num_processes=2', f'--process_id={pid}'],
        cwd=ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
  codes = [p.wait(timeout=600) for p in procs]
  texts = []
  for log in logs:
    log.seek(0)
    texts.append(log.read())
  assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
  for pid, text in enumerate(texts):
    assert f'Process {pid} of 2 finished at step 4.' in text
    assert '4 global devices' in text
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
  run_main(single, data_dir, *OVERRIDES,
           env={'XLA_FLAGS': '--xla_force_host_platform_device_count=4'})
  keys = ('g_params', 'd_params', 'g_batch_stats')
  a, _ = checkpoints.restore_subtree(workdir, keys, 4)
  b, _ = checkpoints.restore_subtree(single, keys, 4)
  diffs = jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)
  assert max(jax.tree.leaves(diffs)) < 1e-5
