"""One generator, many styles: sketch, watercolor, oil and cartoon, plus the
identity style (photo -> photo) that mixing toward dials a style down.

  python main.py --config=configs/multistyle.py --workdir=runs/multistyle

`configs/sketch.py`'s CPU-sized model (`:full` for accelerators, as there) with
style-conditioned norms (`config.data.styles`): one checkpoint for every style,
0.2% more parameters than a single-style model. Each style keeps the
reconstruction loss of its own config (configs/<style>.py: MSE for the sketch,
L1 for the colour styles); the identity and the watercolor learn from their L1
term alone, without a discriminator, as do styles a fine-tune adds (`linocut`).
Global batches hold every style equally often: 2 examples of each of the 5
styles at 4 times sketch's steps on CPU, so that each style sees as many
examples as its single-style run.
"""

from configs import cartoon
from configs import oil
from configs import sketch
from configs import watercolor
from shopstyle_jax import styles as styles_lib

STYLE_CONFIGS = {'sketch': sketch, 'watercolor': watercolor, 'oil': oil, 'cartoon': cartoon}


def get_config(variant: str = 'cpu'):
  """variant: 'cpu' (default) or 'full', as in configs/sketch.py."""
  config = sketch.get_config(variant)
  config.data.style = 'sketch'  # The default style of `stylizer(photo)`.
  config.data.styles = (*STYLE_CONFIGS, 'identity')
  for name, module in STYLE_CONFIGS.items():
    loss = module.get_config(variant).loss
    config.loss.per_style[name] = {'mse_weight': loss.mse_weight, 'l1_weight': loss.l1_weight}
  # No adversarial term for the identity: a discriminator that sees (photo, output)
  # tells any output from the photo, and that fight leaves texture on the copies.
  config.loss.per_style.identity = {
    'mse_weight': 0.0,
    'l1_weight': 100.0,
    'adversarial_weight': 0.0,
  }
  # No discriminator for the watercolor either: with one, the shared
  # discriminator (trained 4x longer than a single-style one) pushes grain the
  # held-out pages do not have onto it, and its SSIM peaks early and slips
  # (0.913 at step 1,000 -> 0.903 at 6,000 at weight 1; 0.921 at 1,500 -> 0.911
  # at 4,000 at 0.5). Its L1 term alone learns the washes.
  config.loss.per_style.watercolor.adversarial_weight = 0.0
  # Styles a fine-tune adds (`config.init_from` with a longer `config.data.styles`;
  # README): their reconstruction alone. A discriminator learning a new style
  # moves its judgement of the old ones it shares layers with: adding `linocut`
  # with one cost the cartoon 0.0145 held-out SSIM in 500 steps, without 0.008.
  for name in sorted(set(styles_lib.RENDERERS) - set(STYLE_CONFIGS)):
    config.loss.per_style[name] = {'mse_weight': 100.0, 'l1_weight': 0.0, 'adversarial_weight': 0.0}
  num_styles = len(config.data.styles)
  if variant == 'cpu':
    config.batch_size = 2 * num_styles  # Sketch's 8 -> 2 examples per style.
    config.num_train_steps = 4 * 1500  # 4x sketch's steps.
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500
  elif variant == 'full':
    config.batch_size = 8 * num_styles  # 40: divisible by 8 devices.
    config.num_train_steps = 200_000  # Each style sees as many examples as sketch:full's.
    config.eval_every_steps = 10_000
    config.checkpoint_every_steps = 10_000
  return config
