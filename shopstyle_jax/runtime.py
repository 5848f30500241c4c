"""Process-level set-up: cache directories and JAX's persistent compilation cache."""

import logging
import os

import jax


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


class _DropLibraryInfo(logging.Filter):
  """Drops INFO/DEBUG records logged from inside the given libraries, and the
  tracebacks of their errors (each background thread of a failed checkpoint
  write logs its own; the message stays, and the caller reports the failure)."""

  def __init__(self, packages: tuple[str, ...]):
    super().__init__()
    self._markers = tuple(f'{os.sep}{p}{os.sep}' for p in packages)

  def filter(self, record: logging.LogRecord) -> bool:
    if not any(m in record.pathname for m in self._markers):
      return True
    if record.exc_info or record.exc_text:
      record.exc_info, record.exc_text = None, None
    return record.levelno >= logging.WARNING


def quiet_library_logs(packages: tuple[str, ...] = ('orbax', 'grain', 'tensorflow_datasets')
                       ) -> None:
  """Keeps the console readable: these libraries log every checkpoint step at INFO."""
  flt = _DropLibraryInfo(packages)
  for handler in logging.getLogger().handlers:
    if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):
      handler.addFilter(flt)
