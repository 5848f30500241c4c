"""CycleGAN (Zhu et al., 2017) as the paper and its official code set it up.

  python main.py --config=configs/cyclegan.py --workdir=runs/cyclegan \
      --config.data.folder=my_photos/ --config.data.style_folder=my_drawings/

Two ResNet generators (9 blocks, 256 px, instance norm, transposed-convolution
upsampling), two 70x70 PatchGANs, LSGAN, cycle L1 x 10, identity L1 x 5 (the
paper's 0.5 x 10), a history of 50 generated images per discriminator, Adam
2e-4 / beta1 0.5, batch 1, 286 -> 256 crops and flips; 100 epochs at a
constant learning rate, then 100 decaying to zero. As given it learns the
catalogue's sketch style without pairs (`config.data.unpaired`: photos from
one half of the products, sketches from the other), so it runs offline;
`config.data.style_folder` points it at your own style images. `:cpu` is a
128 px, narrower version for trying it out on a CPU.
"""

from configs import default


def get_config(variant: str = 'full'):
  """variant: 'full' (default, the paper's) or 'cpu'."""
  config = default.get_config()
  config.method = 'cyclegan'
  config.model.generator = 'resnet'
  config.model.resnet_blocks = 9
  config.model.width = 64
  config.model.norm = 'instance'
  config.model.dropout = 0.0
  # Nearest x2 + 3x3 conv, not the paper's transposed conv: no checkerboard on flat
  # areas (Odena et al. 2016; issue 16). Old workdirs: --config.model.upsample=conv_transpose.
  config.model.upsample = 'resize_conv'
  config.model.disc_width = 64
  config.model.disc_layers = 3
  config.loss.gan = 'lsgan'
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 0.0  # No pairs: nothing to compare the output with.
  config.loss.cycle_weight = 10.0
  config.loss.identity_weight = 5.0
  config.loss.pool_size = 50
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.decay_start_fraction = 0.5
  config.data.unpaired = True
  config.data.style = 'sketch'
  config.data.flip = True
  if variant == 'full':
    config.data.name = 'synthetic_catalog'
    config.image_size = 256
    config.data.load_size = 286
    config.batch_size = 1
    config.num_train_steps = 400_000  # 200 epochs of the catalogue's 2,000 unpaired photos.
    config.precision = 'bfloat16'
    config.log_every_steps = 500
    config.eval_every_steps = 20_000
    config.checkpoint_every_steps = 20_000
    config.data.num_workers = 8
  elif variant == 'cpu':
    config.data.name = 'synthetic_catalog/small'
    config.image_size = 128
    config.batch_size = 4
    config.num_train_steps = 2000
    config.model.width = 16
    config.model.resnet_blocks = 6
    config.model.disc_width = 32
    config.log_every_steps = 50
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500
    config.eval.num_examples = 200
  else:
    raise ValueError(f"Unknown variant {variant!r} of configs/cyclegan.py; use 'full' or 'cpu'.")
  return config
