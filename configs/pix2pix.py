"""pix2pix exactly as the paper (Isola et al., 2017) and its official code.

U-Net 256 with dropout and 4x4 stride-2 transposed convolutions, the 70x70
PatchGAN, batch norm, BCE + 100 * L1, Adam 2e-4 / beta1 0.5, batch 1, 286 ->
256 random crops and flips; 100 epochs at a constant learning rate, then 100
decaying to zero. This is the configuration benchmarked against the PyTorch
reference (BENCHMARKS.md).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.image_size = 256
  config.batch_size = 1
  config.precision = 'float32'
  config.model.generator = 'unet'
  config.model.width = 64
  config.model.depth = 8
  config.model.norm = 'batch'
  config.model.dropout = 0.5
  config.model.upsample = 'conv_transpose'
  config.model.disc_width = 64
  config.model.disc_layers = 3
  config.loss.gan = 'vanilla'
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 0.0
  config.loss.l1_weight = 100.0
  config.loss.perceptual_weight = 0.0
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.decay_start_fraction = 0.5
  config.data.name = 'synthetic_catalog'
  config.data.load_size = 286
  config.data.flip = True
  # 200 epochs of the 4000-image catalogue at batch 1.
  config.num_train_steps = 800_000
  config.log_every_steps = 1000
  config.eval_every_steps = 20_000
  config.checkpoint_every_steps = 20_000
  return config
