"""Cartoons of product photos: flat colour bands inside bold black
outlines (shopstyle_jax.styles.cartoon).

  python main.py --config=configs/cartoon.py --workdir=runs/cartoon

`configs/sketch.py` with the cartoon targets (`:full` for accelerators, as
there). It trains with pix2pix's L1 term instead of the sketch's MSE: L1
keeps the flat colour bands and the outlines sharper (it is less forgiving of
small errors spread over many pixels).
"""

from configs import sketch


def get_config(variant: str = 'cpu'):
  """variant: 'cpu' (default) or 'full', as in configs/sketch.py."""
  config = sketch.get_config(variant)
  config.data.style = 'cartoon'
  config.loss.mse_weight = 0.0
  config.loss.l1_weight = 100.0
  return config
