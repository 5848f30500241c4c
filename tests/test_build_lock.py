"""Build locks: processes sharing a data or cache dir build each dataset once.

The slow tests start two real Python processes that call `pipeline.prepare` on
the same fresh directory at the same moment (a file barrier lines them up):
the catalogue, edges2shoes from a manual-dir archive and a photo folder.
"""

import errno
import json
import logging
import os
import subprocess
import sys
import threading
import time

import filelock
import pytest
from test_datasets import write_archive
from test_folder import _mixed_folder

from conftest import ROOT
from shopstyle_jax.data import build_lock
from shopstyle_jax.data import catalog

# Imports first, then waits for the other process, then prepares.
_PREPARE = r"""
import json, logging, os, sys, time
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], 'tests')]
from conftest import load_config
from shopstyle_jax.data import pipeline
logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s', force=True)
config = load_config('tiny')
config.data.update(json.loads(sys.argv[2]))
open(sys.argv[3], 'w').close()
while not os.path.exists(sys.argv[4]):
  time.sleep(0.01)
pipeline.prepare(config)
print('Prepared.')
"""


def _prepare_in_two_processes(tmp_path, data: dict) -> list[str]:
  """Runs pipeline.prepare in two processes at once; returns their outputs."""
  env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'JAX_PLATFORMS': 'cpu'}
  ready = [str(tmp_path / f'ready{i}') for i in range(2)]
  procs = [
    subprocess.Popen(
      [sys.executable, '-c', _PREPARE, ROOT, json.dumps(data), ready[i], ready[1 - i]],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  try:
    outputs = [p.communicate(timeout=300)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, out in zip(procs, outputs):
    assert p.returncode == 0 and 'Prepared.' in out, out[-3000:]
  return outputs


def _check_one_built_one_waited(outputs: list[str], built: str) -> None:
  assert sum(built in out for out in outputs) == 1, outputs
  assert sum('Waiting for another process to finish' in out for out in outputs) == 1, outputs


@pytest.mark.slow
def test_two_processes_build_the_catalogue_once(tmp_path):
  data_dir = tmp_path / 'tfds'
  outputs = _prepare_in_two_processes(tmp_path, {'data_dir': str(data_dir)})
  _check_one_built_one_waited(outputs, 'Generating dataset synthetic_catalog')
  version = str(catalog.SyntheticCatalog.VERSION)
  config_dir = data_dir / 'synthetic_catalog' / 'tiny'
  assert sorted(os.listdir(config_dir)) == [f'.{version}.lock', version]


@pytest.mark.slow
def test_two_processes_build_edges2shoes_once(tmp_path):
  manual = tmp_path / 'manual'
  write_archive(manual / 'edges2shoes.tar.gz', 'edges2shoes')
  outputs = _prepare_in_two_processes(
    tmp_path,
    {
      'name': 'edges2shoes',
      'data_dir': str(tmp_path / 'tfds'),
      'manual_dir': str(manual),
      'style': 'sketch',
    },
  )
  _check_one_built_one_waited(outputs, 'Generating dataset edges2shoes')


@pytest.mark.slow
def test_two_processes_convert_a_folder_once(tmp_path):
  root = _mixed_folder(tmp_path / 'photos')
  cache = tmp_path / 'cache'
  outputs = _prepare_in_two_processes(
    tmp_path, {'folder': str(root), 'cache_dir': str(cache), 'style': 'oil'}
  )
  _check_one_built_one_waited(outputs, f'Converting {root} (')
  entries = sorted(os.listdir(cache))
  assert len(entries) == 2 and entries[0] == f'.{entries[1]}.lock', entries


def test_lock_path_is_a_hidden_file_beside_the_target():
  assert build_lock.lock_path_for('/d/ds/cfg/1.1.0') == '/d/ds/cfg/.1.1.0.lock'
  assert build_lock.lock_path_for('/cache/shop-ab12/') == '/cache/.shop-ab12.lock'


def test_a_waiter_says_what_it_waits_for(tmp_path, caplog, monkeypatch):
  monkeypatch.setattr(build_lock, '_LOG_EVERY_S', 0.2)
  monkeypatch.setattr(build_lock, '_POLL_S', 0.05)
  lock_file = str(tmp_path / 'sub' / '.x.lock')
  os.makedirs(os.path.dirname(lock_file))
  events = []

  def wait():
    with build_lock.held(lock_file, 'building x'):
      events.append('built')

  with caplog.at_level(logging.INFO):
    # Another holder: flock excludes other open files, also in this process.
    with filelock.FileLock(lock_file, preserve_lock_file=True):
      waiter = threading.Thread(target=wait)
      waiter.start()
      time.sleep(0.7)
      assert not events
    waiter.join(timeout=10)
  assert events == ['built']
  text = caplog.text
  assert (f'Waiting for another process to finish building x (lock file {lock_file} held).') in text
  assert 'Still waiting for another process to finish building x' in text
  assert f'Done waiting for {lock_file}' in text


def test_unlockable_paths_build_without_a_lock(tmp_path, caplog, monkeypatch):
  ran = []
  with build_lock.held('gs://bucket/tfds/ds/.1.0.0.lock', 'building ds'):
    ran.append('gs')

  def no_locks(*args, **kwargs):
    raise OSError(errno.ENOLCK, 'No locks available')

  monkeypatch.setattr(filelock.FileLock, 'acquire', no_locks)
  with build_lock.held(str(tmp_path / '.x.lock'), 'converting x'):
    ran.append('local')
  assert ran == ['gs', 'local']
  assert (
    'Building ds without a lock (gs://bucket/tfds/ds/.1.0.0.lock: not a local path)' in caplog.text
  )
  assert 'Converting x without a lock' in caplog.text and 'No locks available' in caplog.text
