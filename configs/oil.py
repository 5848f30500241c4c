"""Oil paintings of product photos: flat, saturated patches of brushed paint
(shopstyle_jax.styles.oil).

  python main.py --config=configs/oil.py --workdir=runs/oil

`configs/sketch.py` with the oil targets (`:full` for accelerators, as
there). It trains with pix2pix's L1 term instead of the sketch's MSE: L1
blurs less where the target cannot be predicted from the photo, as the brush
texture, which shifts with every random crop.
"""

from configs import sketch


def get_config(variant: str = 'cpu'):
  """variant: 'cpu' (default) or 'full', as in configs/sketch.py."""
  config = sketch.get_config(variant)
  config.data.style = 'oil'
  config.loss.mse_weight = 0.0
  config.loss.l1_weight = 100.0
  return config
