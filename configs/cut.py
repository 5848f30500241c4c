"""CUT (Park et al., 2020): contrastive unpaired translation, as the official code.

  python main.py --config=configs/cut.py --workdir=runs/cut \
      --config.data.folder=my_photos/ --config.data.style_folder=my_drawings/

One ResNet generator (9 blocks, 256 px, instance norm), one 70x70 PatchGAN,
LSGAN, PatchNCE (weight 1, 256 patches per layer, an MLP head of 256, tau 0.07)
on the generator encoder's features, NCE identity on style images, Adam 2e-4 /
beta1 0.5, batch 1, 286 -> 256 crops and flips; 200 epochs at a constant
learning rate, then 200 decaying. As given it learns the catalogue's sketch
style without pairs (`config.data.unpaired`); `config.data.style_folder`
points it at your own style images. `:cpu` is a 128 px, narrower version.
`configs/fastcut.py` is FastCUT.
"""

from configs import default


def get_config(variant: str = 'full'):
  """variant: 'full' (default, the paper's) or 'cpu'."""
  config = default.get_config()
  config.method = 'cut'
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
  config.model.nce_mlp_channels = 256
  config.loss.gan = 'lsgan'
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 0.0  # No pairs: nothing to compare the output with.
  config.loss.nce_weight = 1.0
  config.loss.nce_patches = 256
  config.loss.nce_temperature = 0.07
  config.loss.nce_identity = True
  config.loss.flip_equivariance = False
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
    config.num_train_steps = 800_000  # 400 epochs of the catalogue's 2,000 unpaired photos.
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
    config.model.nce_mlp_channels = 128
    config.log_every_steps = 50
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500
    config.eval.num_examples = 200
  else:
    raise ValueError(f"Unknown variant {variant!r} of configs/cut.py; use 'full' or 'cpu'.")
  return config
