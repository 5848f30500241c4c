"""Trains a style: `python main.py --config=configs/sketch.py --workdir=runs/`.

Every config field can be overridden, e.g. `--config.batch_size=8`. For
multi-host runs, see README ("Multi-host training").
"""

import difflib
import importlib.util
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard events and config.json go.')
flags.DEFINE_string('coordinator_address', None, 'Multi-host: host:port of process 0.')
flags.DEFINE_integer('num_processes', None, 'Multi-host: total number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-host: this process, 0..num_processes-1.')
flags.mark_flags_as_required(['config', 'workdir'])


def _load_config(argv):
  """The config file's get_config(), as --config=PATH[:ARG] names it."""
  spec = next(a.split('=', 1)[1] for a in argv[1:] if a.startswith('--config='))
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('_config_for_message', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _unknown_key_message(argv) -> str:
  """Names the --config.* override whose key does not exist, with suggestions."""
  try:
    config = _load_config(argv)
  except Exception:  # pylint: disable=broad-except
    return ''
  for arg in argv[1:]:
    if not arg.startswith('--config.'):
      continue
    path = arg[len('--config.'):].split('=', 1)[0].split('.')
    node = config
    for i, part in enumerate(path):
      keys = list(node.keys()) if hasattr(node, 'keys') else []
      if part not in keys:
        where = 'config' + ''.join(f'.{p}' for p in path[:i])
        close = difflib.get_close_matches(part, keys, n=3)
        hint = f' Did you mean {", ".join(where + "." + c for c in close)}?' if close else ''
        return (f'Unknown config key in {arg}: {where} has no field {part!r}.{hint} '
                f'Fields of {where}: {", ".join(sorted(keys))}.')
      node = node[part]
  return ''


def parse_flags(argv):
  """absl's parser, but config mistakes end in one clear line, not a traceback."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:  # config_flags' unknown-key errors
    message = _unknown_key_message(argv) or str(e)
  except flags.Error as e:
    message = str(e)
  print(f'FATAL: {message}', file=sys.stderr)
  sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Imported here so that --help and flag errors are instant; the config is
  # checked before the heavy imports (TF, TFDS) and long before compiling.
  import jax  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import config_lib  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import parallel  # pylint: disable=g-import-not-at-top
  try:
    config_lib.validate(FLAGS.config)
    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                    FLAGS.process_id)
    config_lib.validate(FLAGS.config, num_devices=jax.device_count())
  except ValueError as e:
    logging.error('%s', e)
    print(f'FATAL: {e}', file=sys.stderr)
    sys.exit(2)
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top
  runtime.quiet_library_logs()
  logging.info('Config:\n%s', FLAGS.config)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (ValueError, FileNotFoundError, PermissionError, OSError, train.NonFiniteError) as e:
    logging.error('%s', e)
    print(f'FATAL: {type(e).__name__}: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
