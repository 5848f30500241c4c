"""Trains a style: `python main.py --config=configs/sketch.py --workdir=runs/`.

Every config field can be overridden, e.g. `--config.batch_size=8`. For
multi-host runs, see README ("Multi-host training").
"""

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Imported here so that --help and flag errors are instant.
  from shopstyle_jax import parallel  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top
  runtime.quiet_library_logs()
  parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                  FLAGS.process_id)
  logging.info('Config:\n%s', FLAGS.config)
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
