"""A seconds-long config for tests: 32x32, tiny networks, the tiny catalogue."""

from configs import default


def get_config():
  config = default.get_config()
  config.num_train_steps = 4
  config.batch_size = 8
  config.image_size = 32
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
  config.model.width = 8
  config.model.depth = 5
  config.model.disc_width = 8
  config.model.disc_layers = 2
  config.model.norm = 'instance'
  config.model.dropout = 0.0
  config.model.upsample = 'resize_conv'
  config.data.name = 'synthetic_catalog/tiny'
  config.data.prefetch = 1
  config.eval.num_examples = 16
  config.eval.batch_size = 8
  config.eval.grid_rows = 2
  return config
