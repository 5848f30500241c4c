"""Photo -> sketch on real handbags: pix2pix's edges2handbags (Amazon).

  python main.py --config=configs/edges2handbags.py --workdir=runs/edges2handbags

`configs/edges2shoes.py` on the ~137k handbag photos: about 15 epochs.
"""

from configs import edges2shoes


def get_config():
  config = edges2shoes.get_config()
  config.data.name = 'edges2handbags'
  config.num_train_steps = 128_000  # ~15 epochs of ~137k pairs at batch 16.
  config.eval_every_steps = 10_000
  config.checkpoint_every_steps = 10_000
  return config
