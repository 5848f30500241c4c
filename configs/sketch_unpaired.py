"""Pencil sketches learnt without pairs: the CPU-sized unpaired experiment.

  python main.py --config=configs/sketch_unpaired.py --workdir=runs/sketch_unpaired

The catalogue's unpaired mode (`config.data.unpaired`): photos from one half of
the training products, sketches rendered from the other half, so no photo's
own sketch is ever seen; the test split keeps its true pairs, so eval/psnr and
eval/ssim say how much of the paired model's result learning without pairs
recovers. `--config.data.style_folder=my_drawings/` learns your drawings
instead.

Method: CycleGAN (Zhu et al., 2017) at batch 4, cycle weight 10, identity 5,
LSGAN and a 50-image history per discriminator, the paper's settings. Without
pairs the candidates are CycleGAN, CUT, FastCUT and neural style; neural style
needs VGG19 ImageNet weights (offline they are random). Measured on the
catalogue (README, "Sketches learnt without pairs"), with the same networks:
CycleGAN learns fastest in the budget: held-out PSNR 19.15 / SSIM 0.840 after
500 steps and 19.91 / 0.857 after 1,000 (19 minutes here), against CUT's
18.37 / 0.823 and 19.38 / 0.854 at batch 8 (a step of either costs about the
same time), 18.15 / 0.821 at 500 steps of batch 4. The cycle,
F(G(photo)) = photo, keeps the photo's layout in the sketch as PatchNCE does
for CUT, and the identity term asks G to leave a sketch given as input
unchanged. FastCUT is the cheapest step, but its PatchNCE weight of 10 keeps a
U-Net, whose skips can copy the photo, close to the photo: after 1,000 steps
its outputs were still the coloured photo on a grey page (SSIM 0.57).

The networks are configs/sketch.py's (U-Net width 32, depth 6, instance norm,
128 px; F the same) with resize-convolution upsampling, which has no transposed
convolution's checkerboard on flat pages. The sketch discriminator judges pages
blurred by sigma 1 px (`loss.disc_blur`, White-box Cartoonization's surface
representation; the photo discriminator sees photos as they are) and a small
total-variation term (`loss.tv_weight` 0.3) favours flat paper: the sketches'
hatching is seeded noise that no photo predicts, and a discriminator that sees
it teaches the generator to draw a hatching of its own, which scores worse
against the true sketch than smooth shading does (with CUT: 19.38 / 0.854 with
both, 18.21 / 0.833 without).
"""

from configs import sketch


def get_config():
  config = sketch.get_config('cpu')
  config.method = 'cyclegan'
  config.data.unpaired = True
  # Half of sketch.py's 8: a CycleGAN step runs G, F and two Ds, and at batch 4
  # it costs about what a CUT step of 8 does (0.87 steps/s on 2 cores, AMD EPYC).
  config.batch_size = 4
  config.model.upsample = 'resize_conv'
  config.loss.gan = 'lsgan'
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 0.0  # No pairs: nothing to compare the output with.
  config.loss.cycle_weight = 10.0
  config.loss.identity_weight = 5.0
  config.loss.pool_size = 50
  config.loss.disc_blur = 1.0
  config.loss.tv_weight = 0.3
  config.ema_decay = 0.995
  # 1,000 steps and four evals: 20 minutes on a 2-core AMD EPYC of 2026-12-03,
  # about 30 on the slower one of 2026-12-02 (README, "Sketches learnt without pairs").
  config.num_train_steps = 1000
  return config
