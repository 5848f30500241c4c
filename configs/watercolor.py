"""Watercolour paintings of product photos: soft transparent washes on grainy
white paper (shopstyle_jax.styles.watercolor).

  python main.py --config=configs/watercolor.py --workdir=runs/watercolor

`configs/sketch.py` with the watercolor targets (`:full` for accelerators, as
there). It trains with pix2pix's L1 term instead of the sketch's MSE: L1
blurs less where the target cannot be predicted from the photo, as the paper
grain, which shifts with every random crop.
"""

from configs import sketch


def get_config(variant: str = 'cpu'):
  """variant: 'cpu' (default) or 'full', as in configs/sketch.py."""
  config = sketch.get_config(variant)
  config.data.style = 'watercolor'
  config.loss.mse_weight = 0.0
  config.loss.l1_weight = 100.0
  return config
