"""Process-level set-up: cache directories, JAX's persistent compilation cache,
log filters, and the memory this process may still use."""

import logging as std_logging  # Filters on the handlers of the standard library.
import os
from typing import Any, Optional

import jax
from absl import logging


def cache_root() -> str:
  """The package's cache folder (not created): `$SHOPSTYLE_JAX_CACHE_DIR`, else
  `$XDG_CACHE_HOME/shopstyle_jax`, else `~/.cache/shopstyle_jax`."""
  if os.environ.get('SHOPSTYLE_JAX_CACHE_DIR'):
    return os.path.expanduser(os.environ['SHOPSTYLE_JAX_CACHE_DIR'])
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  return os.path.join(os.path.expanduser(base), 'shopstyle_jax')


def cache_dir(*parts: str) -> str:
  """`cache_root()` joined with `parts`, created."""
  path = os.path.join(cache_root(), *parts)
  os.makedirs(path, exist_ok=True)
  return path


def enable_compilation_cache() -> None:
  """Turns on JAX's persistent compilation cache, so reruns skip compiling.

  `JAX_COMPILATION_CACHE_DIR` (JAX's own variable) wins; `SHOPSTYLE_JAX_NO_CACHE=1`
  turns the cache off.
  """
  if os.environ.get('SHOPSTYLE_JAX_NO_CACHE') == '1':
    return
  path = os.environ.get('JAX_COMPILATION_CACHE_DIR') or cache_dir('jax_compilation_cache')
  try:
    jax.config.update('jax_compilation_cache_dir', path)
    # Cache every program that took more than a fraction of a second to build:
    # on CPU even small programs take seconds.
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  except Exception as e:  # An unwritable cache must never stop a run.
    logging.warning('Compilation cache disabled (%s).', e)


class _DropLibraryInfo(std_logging.Filter):
  """Drops INFO/DEBUG records logged from inside the given libraries, and the
  tracebacks of their errors (each background thread of a failed checkpoint
  write logs its own; the message stays, and the caller reports the failure)."""

  def __init__(self, packages: tuple[str, ...]):
    super().__init__()
    self._markers = tuple(f'{os.sep}{p}{os.sep}' for p in packages)

  def filter(self, record: std_logging.LogRecord) -> bool:
    if not any(m in record.pathname for m in self._markers):
      return True
    if record.exc_info or record.exc_text:
      record.exc_info, record.exc_text = None, None
    return record.levelno >= std_logging.WARNING


def quiet_library_logs(
  packages: tuple[str, ...] = ('orbax', 'grain', 'tensorflow_datasets'),
) -> None:
  """Keeps the console readable: these libraries log every checkpoint step at INFO."""
  flt = _DropLibraryInfo(packages)
  for handler in std_logging.getLogger().handlers:
    if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):
      handler.addFilter(flt)


def size_text(num_bytes: float) -> str:
  """'1.5 GiB', or '300 MiB' below a GiB."""
  if num_bytes >= 2**30:
    return f'{num_bytes / 2**30:.1f} GiB'
  return f'{num_bytes / 2**20:.0f} MiB'


# A cgroup limit at or above this means "no limit" (v1 writes 2^63 rounded to pages).
_NO_LIMIT = 2**60
# (root, controller, limit file, usage file, reclaimable page cache in memory.stat)
# for cgroup v2 and v1.
_CGROUP_LAYOUTS = (
  ('/sys/fs/cgroup', '', 'memory.max', 'memory.current', 'inactive_file'),
  (
    '/sys/fs/cgroup/memory',
    'memory',
    'memory.limit_in_bytes',
    'memory.usage_in_bytes',
    'total_inactive_file',
  ),
)


def _read_int(path: str) -> Optional[int]:
  try:
    with open(path) as f:
      text = f.read().strip()
  except OSError:
    return None
  return int(text) if text.isdigit() else None


def _stat(path: str, key: str) -> int:
  try:
    with open(path) as f:
      for line in f:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == key:
          return int(fields[1])
  except (OSError, ValueError):
    pass
  return 0


def _cgroup_dirs(root: str, controller: str) -> list[str]:
  """This process's cgroup folder under `root` and its ancestors (a limit set on
  any of them applies), those that exist; `controller`: '' for cgroup v2."""
  relative = ''
  try:
    with open('/proc/self/cgroup') as f:
      for line in f:
        _, names, path = line.rstrip('\n').split(':', 2)
        if (controller and controller in names.split(',')) or (not controller and not names):
          relative = path.strip('/')
  except (OSError, ValueError):
    pass
  dirs = []
  while True:
    folder = os.path.join(root, relative) if relative else root
    if os.path.isdir(folder) and folder not in dirs:
      dirs.append(folder)
    if not relative:
      return dirs
    relative = os.path.dirname(relative)


def _cgroup_available() -> Optional[tuple[int, str]]:
  """(bytes, where from) that the tightest cgroup memory limit leaves: its limit
  minus its usage, plus the page cache it may reclaim (inactive files)."""
  best = None
  for root, controller, limit_file, usage_file, reclaimable in _CGROUP_LAYOUTS:
    for folder in _cgroup_dirs(root, controller):
      limit = _read_int(os.path.join(folder, limit_file))
      usage = _read_int(os.path.join(folder, usage_file))
      if limit is None or limit >= _NO_LIMIT or usage is None:
        continue
      free = max(limit - usage + _stat(os.path.join(folder, 'memory.stat'), reclaimable), 0)
      free = min(free, limit)
      if best is None or free < best[0]:
        best = (
          free,
          f'the cgroup memory limit {os.path.join(folder, limit_file)} '
          f'({limit / 2**30:.1f} GiB, {usage / 2**30:.1f} GiB in use)',
        )
  return best


def available_memory(device: Any = None) -> Optional[tuple[int, str]]:
  """(Bytes this process can still allocate, where the figure comes from), or None
  where nothing says.

  On the host (`device` None or a CPU device): the least of the kernel's
  MemAvailable and what the cgroup's memory limit leaves (a container's limit,
  /sys/fs/cgroup/memory.max or, with cgroup v1, memory.limit_in_bytes), so a
  container is not taken for the whole machine. On an accelerator: its free
  memory as JAX reports it.
  """
  if device is not None and device.platform != 'cpu':
    stats = device.memory_stats() or {}
    if 'bytes_limit' not in stats:
      return None
    free = stats['bytes_limit'] - stats.get('bytes_in_use', 0)
    return free, f'{device.device_kind} memory ({stats["bytes_limit"] / 2**30:.1f} GiB)'
  found = []
  available = _stat('/proc/meminfo', 'MemAvailable:')
  if available:
    found.append((available * 1024, 'MemAvailable in /proc/meminfo'))
  cgroup = _cgroup_available()
  if cgroup:
    found.append(cgroup)
  return min(found) if found else None
