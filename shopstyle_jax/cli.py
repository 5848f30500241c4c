"""Command-line parsing shared by main.py and the other CLIs.

A config mistake (a missing config file, a syntax error in it, an unknown
`--config.*` key, a wrong type, a value `config_lib.validate` refuses) becomes
one line naming the file or key, not a traceback: `parse` raises `ConfigError`
with it, and `parse_or_exit`, the `flags_parser` of `app.run`, prints it as
`FATAL: ...` and exits 2. The flags are defined on any `flags.FlagValues`, so
tests can parse command lines in process, on a fresh one each time.

Light on purpose (absl and ml_collections only): `--help` and flag errors stay
instant; `config_lib` (and with it JAX) is imported only to validate.
"""

import difflib
import importlib.util
import inspect
import os
import re
import sys
from typing import Any, Optional, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

CONFIG = 'config'  # The config flag's name; overrides are `--config.KEY=VALUE`.


class ConfigError(ValueError):
  """A flag or config mistake, described in one line for the user."""


def define_train_flags(
  flag_values: flags.FlagValues = flags.FLAGS, argv: Optional[Sequence[str]] = None
) -> None:
  """main.py's flags. `argv` is where config_flags finds the `--config.*`
  overrides: the command line being parsed (default: sys.argv at parse time)."""
  config_flags.DEFINE_config_file(
    CONFIG,
    None,
    'Experiment config file (configs/*.py).',
    flag_values=flag_values,
    lock_config=True,
    sys_argv=None if argv is None else list(argv),
  )
  flags.DEFINE_string(
    'workdir',
    None,
    'Where checkpoints, TensorBoard events and config.json go.',
    flag_values=flag_values,
  )
  flags.DEFINE_string(
    'coordinator_address', None, 'Multi-host: host:port of process 0.', flag_values=flag_values
  )
  flags.DEFINE_integer(
    'num_processes', None, 'Multi-host: total number of processes.', flag_values=flag_values
  )
  flags.DEFINE_integer(
    'process_id', None, 'Multi-host: this process, 0..num_processes-1.', flag_values=flag_values
  )
  flags.DEFINE_integer(
    'coordinator_timeout',
    300,
    'Multi-host: seconds to wait for every process to join the job before giving up.',
    lower_bound=1,
    flag_values=flag_values,
  )
  flags.mark_flags_as_required([CONFIG, 'workdir'], flag_values=flag_values)


def load_config_file(spec: str) -> Any:
  """`get_config()` of `--config=PATH[:ARG]` (with ARG, if given), loaded as
  config_flags does; a missing file, a syntax error or a failing get_config
  raises ConfigError naming the file."""
  path, _, arg = spec.partition(':')
  if not path:
    raise ConfigError(f'--{CONFIG}={spec} names no file; use --{CONFIG}=configs/<experiment>.py.')
  if not os.path.isfile(path):
    folder = os.path.dirname(path) or '.'
    names = (
      sorted(n for n in os.listdir(folder) if n.endswith('.py') and n != '__init__.py')
      if os.path.isdir(folder)
      else []
    )
    close = difflib.get_close_matches(os.path.basename(path), names, n=1, cutoff=0.75)
    hint = (
      f' Did you mean {os.path.join(os.path.dirname(path), close[0])}?'
      if close
      else f' {folder}/ holds {", ".join(names)}.'
      if folder != '.' and names
      else ''
    )
    raise ConfigError(f'Config file {path} (from --{CONFIG}={spec}) does not exist.{hint}')
  try:
    module_spec = importlib.util.spec_from_file_location('_shopstyle_jax_cli_config', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    text = f': {e.text.strip()!r}' if e.text and e.text.strip() else ''
    raise ConfigError(
      f'Config file {path} has a syntax error at line {e.lineno}: {e.msg}{text}.'
    ) from e
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f'Config file {path} failed to load: {_one_line(e)}') from e
  get_config = getattr(module, 'get_config', None)
  if not callable(get_config):
    raise ConfigError(f'Config file {path} defines no get_config().')
  if arg and not inspect.signature(get_config).parameters:
    raise ConfigError(
      f'Config file {path} has no variants (its get_config() takes no '
      f'argument), but --{CONFIG}={spec} asks for {arg!r}; use '
      f'--{CONFIG}={path}.'
    )
  try:
    return get_config(arg) if arg else get_config()
  except Exception as e:  # pylint: disable=broad-except
    call = f'get_config({arg!r})' if arg else 'get_config()'
    raise ConfigError(f'Config file {path}: {call} failed: {_one_line(e)}') from e


def parse(
  argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS, *, validate: bool = False
) -> list[str]:
  """Parses argv (argv[0] is the program) into flag_values, returning the
  arguments left over, as `flag_values(argv)` does; any mistake raises
  ConfigError. validate: also `config_lib.validate` the config (without the
  device-count checks, which need the devices)."""
  argv = list(argv)
  try:
    rest = flag_values(argv)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(_diagnose(argv, flag_values) or _one_line(e)) from e
  if CONFIG not in flag_values:
    return rest
  config = flag_values[CONFIG].value
  if not isinstance(config, ml_collections.ConfigDict):
    # config_flags defers a file that failed to load until the config is used.
    raise ConfigError(
      _diagnose(argv, flag_values) or f'--{CONFIG}: {type(config).__name__} is not a ConfigDict.'
    )
  if validate:
    from shopstyle_jax import config_lib  # pylint: disable=g-import-not-at-top

    try:
      config_lib.validate(config)
    except ValueError as e:
      raise ConfigError(_one_line(e)) from e
  return rest


def parse_or_exit(
  argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS, *, validate: bool = False
) -> list[str]:
  """`parse` for `app.run(main, flags_parser=...)`: a mistake prints one
  `FATAL: ...` line to stderr and exits 2."""
  try:
    return parse(argv, flag_values, validate=validate)
  except ConfigError as e:
    print(f'FATAL: {e}', file=sys.stderr)
    sys.exit(2)


def run_command(run: Any) -> None:
  """`app.run` for a command module whose flags are defined: refuses extra
  arguments, then exits with `run(flags.FLAGS)`'s status."""
  from absl import app  # pylint: disable=g-import-not-at-top

  def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    return run(flags.FLAGS)

  app.run(main)


def parse_train_flags(argv: Sequence[str]) -> flags.FlagValues:
  """main.py's parse of argv, in process, on fresh flags: returns them
  (`.config`, `.workdir`, ...) or raises ConfigError with main.py's message."""
  # config_flags loads the file as module '<flag>_config' with the deprecated
  # load_module(), which re-runs it in the previous parse's module: leftovers
  # (a get_config the file no longer has) would hide mistakes. Start afresh.
  sys.modules.pop(f'{CONFIG}_config', None)
  flag_values = flags.FlagValues()
  define_train_flags(flag_values, argv)
  parse(argv, flag_values, validate=True)
  return flag_values


def _one_line(error: BaseException) -> str:
  return ' '.join(str(error).split()) or type(error).__name__


def _config_spec(argv: Sequence[str]) -> Optional[str]:
  """The value of the last `--config=SPEC` (or `--config SPEC`) in argv."""
  spec = None
  for i, arg in enumerate(argv[1:], 1):
    if arg == '--':
      break
    match = re.fullmatch(rf'--?{CONFIG}(=.*)?', arg, re.DOTALL)
    if match:
      spec = match.group(1)[1:] if match.group(1) else (argv[i + 1] if i + 1 < len(argv) else None)
  return spec


def _diagnose(argv: Sequence[str], flag_values: flags.FlagValues) -> str:
  """Why parsing failed, if it is the config: its file (raises ConfigError) or an
  unknown `--config.*` key; '' when neither."""
  spec = _config_spec(argv) if CONFIG in flag_values else None
  if spec is None:
    return ''
  return _unknown_key_message(argv, load_config_file(spec))


def _unknown_key_message(argv: Sequence[str], config: Any) -> str:
  """Names the first `--config.*` override whose key does not exist, with suggestions."""
  for arg in argv[1:]:
    match = re.match(rf'-{{1,2}}(?:no)?{CONFIG}\.([^=]*)', arg)
    if not match:
      continue
    path = match.group(1).split('.')
    node = config
    for i, part in enumerate(path):
      where = CONFIG + ''.join(f'.{p}' for p in path[:i])
      if not hasattr(node, 'keys'):
        return f'Unknown config key in {arg}: {where} is a value ({node!r}), not a group of fields.'
      keys = list(node.keys())
      if part not in keys:
        close = difflib.get_close_matches(part, keys, n=3)
        hint = f' Did you mean {", ".join(where + "." + c for c in close)}?' if close else ''
        return (
          f'Unknown config key in {arg}: {where} has no field {part!r}.{hint} '
          f'Fields of {where}: {", ".join(sorted(keys))}.'
        )
      node = node[part]
  return ''
