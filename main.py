"""Trains a style: `python main.py --config=configs/sketch.py --workdir=runs/`.

Every config field can be overridden, e.g. `--config.batch_size=8`. For
multi-host runs, see README ("Multi-host training").
"""

import functools
import sys

from absl import app
from absl import flags
from absl import logging

from shopstyle_jax import cli

FLAGS = flags.FLAGS
cli.define_train_flags(FLAGS)  # --config (+ --config.KEY=VALUE), --workdir, multi-host flags.
flags.adopt_module_key_flags(cli)  # Listed by --help as this program's own.


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Imported here so that --help and config errors (cli.parse) are instant: the
  # config is checked before the heavy imports (TF, TFDS) and long before compiling.
  import jax  # pylint: disable=g-import-not-at-top

  from shopstyle_jax import config_lib  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import parallel  # pylint: disable=g-import-not-at-top

  try:
    parallel.initialize_distributed(
      FLAGS.coordinator_address,
      FLAGS.num_processes,
      FLAGS.process_id,
      timeout=FLAGS.coordinator_timeout,
    )
    config_lib.validate(FLAGS.config, num_devices=jax.device_count())
  except ValueError as e:
    logging.error('%s', e)
    print(f'FATAL: {e}', file=sys.stderr)
    sys.exit(2)
  from shopstyle_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import workdir_lock  # pylint: disable=g-import-not-at-top

  runtime.quiet_library_logs()
  logging.info('Config:\n%s', FLAGS.config)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (
    ValueError,
    OSError,
    MemoryError,
    train.NonFiniteError,
    checkpoints.SaveError,
    workdir_lock.WorkdirInUseError,
  ) as e:
    logging.error('%s', e)
    print(f'FATAL: {type(e).__name__}: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=functools.partial(cli.parse_or_exit, validate=True))
