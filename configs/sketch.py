"""Pencil sketches of product photos: the default experiment.

  python main.py --config=configs/sketch.py --workdir=runs/sketch

As given, it trains on the embedded synthetic catalogue at 128x128 and finishes
in about 25 minutes on a 2-core CPU. `configs/sketch.py:full` is the
accelerator version: 256x256, the full pix2pix-size networks, the VGG
perceptual loss on ImageNet weights, bfloat16 and 100k steps.
"""

from configs import default


def get_config(variant: str = 'cpu'):
  """variant: 'cpu' (default) or 'full'."""
  config = default.get_config()
  config.model.norm = 'instance'  # Batch-independent; same at train and test time.
  config.model.dropout = 0.0  # A deterministic mapping; no noise needed.
  # Nearest x2 + 3x3 conv, not pix2pix's transposed conv: no checkerboard on flat
  # areas such as a sky or a table (Odena et al. 2016; issue 16). Workdirs trained
  # before resume with --config.model.upsample=conv_transpose.
  config.model.upsample = 'resize_conv'
  config.ema_decay = 0.995
  config.loss.gan = 'vanilla'
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 100.0  # L = L_adv + 100 * MSE, the reference method.
  config.data.style = 'sketch'

  if variant == 'cpu':
    config.data.name = 'synthetic_catalog/small'  # 128x128 renders, built once (~3 min).
    config.image_size = 128
    config.batch_size = 8
    config.num_train_steps = 1500
    config.model.width = 32
    config.model.depth = 6  # Factor 64: any multiple of 64 works, 64 and 128 included.
    config.model.disc_width = 32
    config.log_every_steps = 50
    config.eval_every_steps = 250
    config.checkpoint_every_steps = 250
    # The perceptual loss would make each CPU step ~6x slower (VGG19 to relu3_1
    # on 2x8 images); the full variant turns it on.
    config.loss.perceptual_weight = 0.0
    config.eval.num_examples = 200
  elif variant == 'full':
    config.data.name = 'synthetic_catalog'  # 256x256 renders.
    config.image_size = 256
    config.batch_size = 16
    config.num_train_steps = 100_000
    config.precision = 'bfloat16'
    config.model.width = 64
    config.model.depth = 8
    config.model.disc_width = 64
    config.ema_decay = 0.999
    config.loss.perceptual_weight = 10.0  # pix2pixHD's lambda for the VGG term.
    config.log_every_steps = 100
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 5000
    config.data.num_workers = 8
    config.data.prefetch = 4
  else:
    raise ValueError(f"Unknown variant {variant!r} of configs/sketch.py; use 'cpu' or 'full'.")
  return config
