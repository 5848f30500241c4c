"""Pencil sketches learnt without pairs: the CPU-sized unpaired experiment.

  python main.py --config=configs/sketch_unpaired.py --workdir=runs/sketch_unpaired

The catalogue's unpaired mode (`config.data.unpaired`): photos from one half of
the training products, sketches rendered from the other half, so no photo's
own sketch is ever seen; the test split keeps its true pairs, so eval/psnr and
eval/ssim say how much of the paired model's result learning without pairs
recovers. `--config.data.style_folder=my_drawings/` learns your drawings
instead.

Method: FastCUT (Park et al., 2020). Without pairs the candidates are
CycleGAN, CUT, FastCUT and neural style; neural style needs VGG19 ImageNet
weights (offline they are random), CycleGAN trains two generators and two
discriminators (about twice CUT's step), and CUT's NCE identity runs the
generator on the style images too; FastCUT is the cheapest step and so takes
the most steps in a fixed CPU budget. The networks are configs/sketch.py's
(U-Net width 32, depth 6, instance norm, 128 px), so the paired and the
unpaired sketch models differ only in how they learn; PatchNCE reads the U-Net's
input and encoder levels 1-4.
"""

from configs import sketch


def get_config():
  config = sketch.get_config('cpu')
  config.method = 'fastcut'
  config.data.unpaired = True
  config.loss.gan = 'lsgan'
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 0.0  # No pairs: nothing to compare the output with.
  config.loss.nce_weight = 10.0
  config.loss.nce_patches = 256
  config.loss.nce_temperature = 0.07
  config.loss.nce_identity = False
  config.loss.flip_equivariance = True
  config.model.nce_mlp_channels = 256
  config.ema_decay = 0.995
  # A FastCUT step costs ~2x a paired one here (2.06 vs 1.05 s at batch 8, measured
  # side by side on the shared 2-core CPU): 1,000 steps fit the 30-minute budget.
  config.num_train_steps = 1000
  return config
