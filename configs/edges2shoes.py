"""Photo -> sketch on real shoes: pix2pix's edges2shoes (UT Zappos50K).

  python main.py --config=configs/edges2shoes.py --workdir=runs/edges2shoes

The sketch style's accelerator setting (`configs/sketch.py:full`: 256x256,
pix2pix-size networks, VGG perceptual loss, bfloat16) on the ~50k real shoe
photos, whose targets are their edge drawings, with pix2pix's jitter (resize
to 286, random 256 crop, random flip); about 15 epochs. The first run
downloads the archive (see README, "Datasets", to pre-download it).
"""

from configs import sketch


def get_config():
  config = sketch.get_config('full')
  config.data.name = 'edges2shoes'
  config.data.style = 'sketch'  # The dataset's edge drawings.
  config.image_size = 256
  config.data.load_size = 286
  config.data.flip = True
  config.num_train_steps = 47_000  # ~15 epochs of ~50k pairs at batch 16.
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 5000
  config.eval.num_examples = 200  # The whole test (val/) split.
  return config
