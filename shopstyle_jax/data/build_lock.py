"""One builder per directory: a file lock around dataset builds and conversions.

Every process of a run prepares its data, and hosts may share the data
directory (NFS) or each have their own. Without a lock, processes sharing it
all build the same dataset at once and all but the first fail to rename their
copy into place. With it, one process builds while the others wait on the lock
(logging what they wait for), then find the finished copy and reuse it. There
is no collective barrier and no timeout: a build may take most of an hour.

The lock is `filelock.FileLock` (flock; on NFS, Linux emulates it with POSIX
locks, which hosts see). Where it cannot work (a gs:// or other non-local path,
a filesystem without locks, a read-only directory) the build runs unlocked, as
before, with a warning.
"""

import contextlib
import os
import time
from typing import Iterator

import filelock
from absl import logging

# While waiting, say so about once a minute.
_LOG_EVERY_S = 60.0
# Between two attempts at the lock: a waiter starts at most this late.
_POLL_S = 1.0


def lock_path_for(path: os.PathLike | str) -> str:
  """The lock file of what is built at `path`: a hidden file beside it."""
  path = os.fspath(path).rstrip('/')
  parent, name = os.path.split(path)
  return os.path.join(parent, f'.{name}.lock')


def _unlocked(what: str, lock_file: str, reason: str) -> None:
  logging.warning(
    '%s without a lock (%s: %s): processes sharing this directory must not '
    'do it at the same time; do it once beforehand or give each host its '
    'own directory.',
    what[:1].upper() + what[1:],
    lock_file,
    reason,
  )


@contextlib.contextmanager
def held(lock_file: os.PathLike | str, what: str) -> Iterator[None]:
  """Holds the build lock `lock_file` while the body does `what`.

  `what` says what is built, for the log: 'building edges2shoes in /data'.
  Waits as long as another process holds the lock, logging what it waits for.
  The body must check again whether the result is complete: the process that
  held the lock has usually just built it.
  """
  lock_file = os.fspath(lock_file)
  if '://' in lock_file:  # gs://, s3://...: epath's domain, no flock there.
    _unlocked(what, lock_file, 'not a local path')
    yield
    return
  lock = filelock.FileLock(
    lock_file, poll_interval=_POLL_S, fallback_to_soft=False, preserve_lock_file=True
  )
  try:
    _acquire(lock, what)
    locked = True
  except OSError as e:  # No locks on this filesystem, a read-only directory...
    _unlocked(what, lock_file, f'{type(e).__name__}: {e}')
    locked = False
  try:
    yield
  finally:
    if locked:
      lock.release()


def _acquire(lock: filelock.BaseFileLock, what: str) -> None:
  """Takes `lock`, logging about once a minute while another process has it."""
  os.makedirs(os.path.dirname(lock.lock_file) or '.', exist_ok=True)
  try:
    lock.acquire(timeout=0)
    return
  except filelock.Timeout:
    pass
  logging.info(
    'Waiting for another process to finish %s (lock file %s held).', what, lock.lock_file
  )
  start = time.monotonic()
  while True:
    try:
      lock.acquire(timeout=_LOG_EVERY_S)
      break
    except filelock.Timeout:
      logging.info(
        'Still waiting for another process to finish %s (lock file %s held, %.0f min so far).',
        what,
        lock.lock_file,
        (time.monotonic() - start) / 60,
      )
  logging.info('Done waiting for %s (%.0f s).', lock.lock_file, time.monotonic() - start)
