"""FastCUT (Park et al., 2020): CUT without NCE identity, NCE weight 10 and
flip-equivariance, trained for 150 + 50 epochs, as the official code's `--CUT_mode
FastCUT`. Everything else (networks, data, `:cpu`) is configs/cut.py's.

  python main.py --config=configs/fastcut.py --workdir=runs/fastcut
"""

from configs import cut


def get_config(variant: str = 'full'):
  """variant: 'full' (default, the paper's) or 'cpu'."""
  config = cut.get_config(variant)
  config.method = 'fastcut'
  config.loss.nce_weight = 10.0
  config.loss.nce_identity = False
  config.loss.flip_equivariance = True
  config.optimizer.decay_start_fraction = 0.75  # 150 constant + 50 decaying epochs.
  if variant == 'full':
    config.num_train_steps = 400_000  # 200 epochs of 2,000 unpaired photos.
  return config
