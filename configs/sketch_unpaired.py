"""Pencil sketches learnt without pairs: the CPU-sized unpaired experiment.

  python main.py --config=configs/sketch_unpaired.py --workdir=runs/sketch_unpaired

The catalogue's unpaired mode (`config.data.unpaired`): photos from one half of
the training products, sketches rendered from the other half, so no photo's
own sketch is ever seen; the test split keeps its true pairs, so eval/psnr and
eval/ssim say how much of the paired model's result learning without pairs
recovers. `--config.data.style_folder=my_drawings/` learns your drawings
instead.

Method: CUT (Park et al., 2020), PatchNCE weight 1 with the NCE identity term, as
the paper's default. Without pairs the candidates are CycleGAN, CUT, FastCUT and
neural style; neural style needs VGG19 ImageNet weights (offline they are
random), CycleGAN trains two generators and two discriminators. FastCUT is the
cheapest step (1.6 steps/s here against CUT's 0.6), but its PatchNCE weight of 10
keeps a U-Net, whose skips can copy the photo, close to the photo: after 1,000
steps (12 minutes) its outputs were still the coloured photo on a grey,
grid-patterned page (held-out SSIM 0.57), while CUT's were outlines on light
pages after 250 steps and reached SSIM 0.83 at 1,000 (README, "Sketches learnt
without pairs"). The networks
are configs/sketch.py's (U-Net width 32, depth 6, instance norm, 128 px) with
resize-convolution upsampling, which has no transposed convolution's
checkerboard on flat pages; PatchNCE reads the U-Net's input and encoder levels
1-4.

The discriminator judges pages blurred by sigma 1 px (`loss.disc_blur`, White-box
Cartoonization's surface representation) and a small total-variation term
(`loss.tv_weight` 0.3) favours flat paper: the sketches' hatching is seeded noise
that no photo predicts, and a discriminator that sees it teaches the generator
to draw a hatching of its own, which scores worse against the true sketch than
smooth shading does. Measured at 1,000 steps: held-out PSNR 19.38 / SSIM 0.854
with both, against 18.21 / 0.833 without (README, "Sketches learnt without
pairs").
"""

from configs import sketch


def get_config():
  config = sketch.get_config('cpu')
  config.method = 'cut'
  config.data.unpaired = True
  config.model.upsample = 'resize_conv'
  config.loss.gan = 'lsgan'
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 0.0  # No pairs: nothing to compare the output with.
  config.loss.nce_weight = 1.0
  config.loss.nce_patches = 256
  config.loss.nce_temperature = 0.07
  config.loss.nce_identity = True
  config.loss.flip_equivariance = False
  config.loss.disc_blur = 1.0
  config.loss.tv_weight = 0.3
  config.model.nce_mlp_channels = 256
  config.ema_decay = 0.995
  # 0.6 steps/s on 2 cores (AMD EPYC, Zen 4): 1,000 steps and four evals in under
  # 30 minutes.
  config.num_train_steps = 1000
  return config
