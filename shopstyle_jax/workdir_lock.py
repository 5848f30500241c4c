"""One training run per workdir: the lock file `<workdir>/.lock`.

Two runs in one workdir would train side by side and delete each other's
checkpoints. Process 0 of a run holds the lock. It must work where the workdir
is shared by hosts (NFS, where POSIX locks may stay on each client), so it is
a plain file, created with O_EXCL, holding the holder's host, pid, start time
and a heartbeat that a daemon thread refreshes every `HEARTBEAT_SECONDS`. A
second run is refused with a message naming the holder. A lock is stale, and
taken over (logged), when its heartbeat is older than `STALE_SECONDS` (a
crashed host) or its process is gone (same host: a killed run). It is removed
when the run ends, however it ends short of a kill.
"""

import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from typing import Optional

from absl import logging

LOCK_FILE = '.lock'
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


class WorkdirInUseError(RuntimeError):
  """Another run holds the workdir's lock."""


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, LOCK_FILE)


def _pid_running(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Someone else's process.
    return True
  return True


def _when(timestamp: float) -> str:
  return datetime.datetime.fromtimestamp(timestamp).astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')


class WorkdirLock:
  """The lock of one workdir: `acquire()`, then `release()` (or use `with`).

  `lost` turns True if the heartbeat finds the file no longer ours (another
  run judged it stale and took it over): the run should stop.
  """

  def __init__(
    self, workdir: str, heartbeat: float = HEARTBEAT_SECONDS, stale_after: float = STALE_SECONDS
  ):
    self.path = lock_path(workdir)
    self.workdir = workdir
    self.heartbeat = heartbeat
    self.stale_after = stale_after
    self.host = socket.gethostname()
    self.pid = os.getpid()
    self.token = uuid.uuid4().hex
    self.since = None
    self.lost = False
    self._stop = threading.Event()
    self._thread = None

  def _record(self) -> dict:
    return {
      'host': self.host,
      'pid': self.pid,
      'since': self.since,
      'since_text': _when(self.since),
      'heartbeat': time.time(),
      'token': self.token,
    }

  @staticmethod
  def _read(path: str) -> Optional[dict]:
    """The lock's record; None if it is gone; {} if it cannot be parsed."""
    try:
      with open(path) as f:
        record = json.load(f)
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {}
    return record if isinstance(record, dict) else {}

  def _stale(self, record: dict) -> Optional[str]:
    """Why the lock in `record` is stale; None while its holder is alive."""
    heartbeat = record.get('heartbeat')
    if not isinstance(heartbeat, (int, float)):
      try:
        heartbeat = os.path.getmtime(self.path)
      except OSError:
        return 'it is gone'
    age = time.time() - heartbeat
    if age > self.stale_after:
      return f'its last heartbeat was {age:.0f} s ago'
    pid = record.get('pid')
    if record.get('host') == self.host and isinstance(pid, int) and not _pid_running(pid):
      return f'process {pid} on this host ({self.host}) is gone'
    return None

  def _refusal(self, record: dict) -> WorkdirInUseError:
    heartbeat = record.get('heartbeat')
    age = (
      f'; last heartbeat {time.time() - heartbeat:.0f} s ago'
      if isinstance(heartbeat, (int, float))
      else ''
    )
    holder = (
      f'process {record.get("pid", "?")} on host {record.get("host", "?")}, since '
      f'{record.get("since_text", "?")}{age}'
    )
    return WorkdirInUseError(
      f'Workdir {self.workdir} is in use by another training run ({holder}; lock file '
      f"{self.path}). Two runs in one workdir would delete each other's checkpoints: wait "
      f'for that run to end, stop it, or use another --workdir. If it is gone, its lock '
      f'counts as stale {self.stale_after / 60:.0f} minutes after its last heartbeat (at '
      'once on the same host); or delete the lock file.'
    )

  def acquire(self) -> None:
    """Takes the lock, or raises WorkdirInUseError naming its holder."""
    self.since = time.time()
    for _ in range(20):
      if self._create():
        break
      record = self._read(self.path)
      if record is None:
        continue  # Released meanwhile: try again.
      if not record:
        with contextlib.suppress(OSError):
          if time.time() - os.path.getmtime(self.path) < 5:
            time.sleep(0.2)  # Being written by its holder: read it again.
            continue
      why = self._stale(record)
      if why is None:
        raise self._refusal(record)
      if self._take_over(record):
        logging.warning(
          'Took over the stale lock of workdir %s, held by process %s on host %s since %s: %s.',
          self.workdir,
          record.get('pid', '?'),
          record.get('host', '?'),
          record.get('since_text', '?'),
          why,
        )
        break
    else:
      raise WorkdirInUseError(f'Could not take the lock {self.path}: it keeps changing hands.')
    self._thread = threading.Thread(target=self._beat, name='workdir-lock-heartbeat', daemon=True)
    self._thread.start()

  def _create(self) -> bool:
    """Creates the lock file holding our record; False if it exists."""
    try:
      fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, 'w') as f:
      json.dump(self._record(), f)
      f.flush()
      os.fsync(f.fileno())
    return True

  def _take_over(self, stale: dict) -> bool:
    """Replaces the stale lock `stale` by ours; False if another run got there first."""
    aside = f'{self.path}.stale.{self.token}'
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return False
    moved = self._read(aside) or {}
    if moved.get('token') != stale.get('token') or moved.get('pid') != stale.get('pid'):
      # Not the lock we judged stale: another run's fresh one. Put it back, unless
      # a third run has locked meanwhile.
      with contextlib.suppress(OSError):
        os.link(aside, self.path)
      with contextlib.suppress(OSError):
        os.remove(aside)
      return False
    with contextlib.suppress(OSError):
      os.remove(aside)
    return self._create()

  def _beat(self) -> None:
    """Refreshes the heartbeat until released; notices a lock taken over."""
    while not self._stop.wait(self.heartbeat):
      record = self._read(self.path)
      if not record or record.get('token') != self.token:
        holder = (
          f'process {record.get("pid", "?")} on host {record.get("host", "?")}'
          if record
          else 'nobody (the file is gone)'
        )
        logging.error(
          "The lock of workdir %s is no longer this run's: it is held by %s.", self.workdir, holder
        )
        self.lost = True  # After the message: whoever sees `lost` can find its reason.
        return
      tmp = f'{self.path}.{self.token}.tmp'
      try:
        with open(tmp, 'w') as f:
          json.dump(self._record(), f)
        os.replace(tmp, self.path)
      except OSError as e:  # A storage hiccup: try again at the next beat.
        logging.warning('Could not refresh the lock of workdir %s: %s', self.workdir, e)

  def release(self) -> None:
    """Stops the heartbeat and removes the lock file if it is still ours."""
    self._stop.set()
    if self._thread is not None and self._thread is not threading.current_thread():
      self._thread.join(timeout=5)
    record = self._read(self.path)
    if record and record.get('token') == self.token:
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.path)

  def __enter__(self) -> 'WorkdirLock':
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()
