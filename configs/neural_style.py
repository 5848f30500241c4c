"""Neural style (Johnson et al. 2016): one painting's style on product photos, no pairs.

  python main.py --config=configs/neural_style.py --workdir=runs/my_painting \
      --config.data.style_folder=my_painting/

The style folder may hold a single image (Johnson et al. train one network per
style image); every batch row gets a random crop of it, resized like the photos
to `data.load_size`, so that size sets the scale of the brush strokes learnt.
Photos come from the synthetic catalogue, or `--config.data.folder=...`. Without a
style folder it learns the catalogue's sketches from its other half
(`config.data.unpaired`), so it also runs as given, offline.
`configs/neural_style.py:cpu` is a CPU-sized run (64x64, 400 steps, ~15 min on 2 cores).

Johnson et al.'s settings (their code's defaults, github jcjohnson/fast-neural-style),
with our VGG19 for their VGG16:
- Generator: their ResNet (c9s1-32, d64, d128, 5 x R128, u64, u32, c9s1-3) with instance
  norm is our ResnetGenerator at width 32 with 5 blocks (7x7 end convs instead of 9x9).
  Upsampling by resize-conv rather than their stride-1/2 convs: no checkerboard.
- Content: relu2_2 (the paper's). Style: relu1_2, relu2_2, relu3_4, relu4_4, the VGG19
  equivalents of their VGG16 relu1_2, relu2_2, relu3_3, relu4_3 (the last ReLU of
  blocks 1-4), each weight 1.
- Weights: content 1, style 5, as their code, whose losses are ours term for term:
  caffe preprocessing (0-255 BGR minus the mean, as `vgg.preprocess`), content the
  mean squared feature difference, style the mean over [N, C, C] of the squared
  difference of Gram matrices F^T F / (C*H*W). (The paper's style loss is the
  squared Frobenius norm, C^2 times larger: weights from it do not carry over.)
  Measured here with random-weight VGG only (128px catalogue photos): 5 x style is
  ~30x the content term at G's init and ~7x on oil-painted photos. Gram / (C*H*W) does
  not make the style term small: caffe-range features give Gram entries ~1e2.
- TV: theirs is 1e-6 * sum of *squared* differences of 0-255 pixels, which grows with
  batch and image size; ours is mean |dx| + mean |dy| of [-1, 1] pixels. On 4 stylised
  256x256 outputs our TV's gradient matches theirs (relative to the content term's,
  random-weight VGG) at tv_weight 900-2700; 500 is about half of that, since an L1 TV
  pulls as hard on faint texture (the style) as on noise. Raise it if outputs are noisy.
- Adam, learning rate 1e-3, betas (0.9, 0.999) (Torch's defaults), no decay; batch 4,
  40k steps (their 2 epochs of COCO), 256x256.
"""

from configs import default


def get_config(variant: str = 'full'):
  """variant: 'full' (default, an accelerator run) or 'cpu'."""
  config = default.get_config()
  config.method = 'neural_style'

  config.model.generator = 'resnet'
  config.model.width = 32
  config.model.resnet_blocks = 5
  config.model.norm = 'instance'
  config.model.dropout = 0.0
  config.model.noise_channels = 0
  config.model.upsample = 'resize_conv'

  lc = config.loss
  lc.adversarial_weight = 0.0  # > 0 adds an unconditional PatchGAN on the style images.
  lc.content_weight = 1.0
  lc.content_layers = ('relu2_2',)
  lc.style_weight = 5.0
  lc.style_layers = ('relu1_2', 'relu2_2', 'relu3_4', 'relu4_4')
  lc.style_layer_weights = (1.0, 1.0, 1.0, 1.0)
  lc.tv_weight = 500.0  # TV's values are ~0.1-0.3, content's ~1e2-1e3: see above.
  lc.vgg_weights = 'imagenet'
  # Paired-only terms (photo vs target): no pairs here.
  lc.mse_weight = 0.0
  lc.l1_weight = 0.0
  lc.perceptual_weight = 0.0
  # As given, style images come from the catalogue's other half (its sketches), so
  # the config runs offline; --config.data.style_folder=... wins over this.
  config.data.unpaired = True

  config.optimizer.learning_rate = 1e-3
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.decay_start_fraction = 1.0  # Constant learning rate, as theirs.
  config.ema_decay = 0.0

  if variant == 'full':
    config.data.name = 'synthetic_catalog'  # 256x256 renders.
    config.image_size = 256
    config.batch_size = 4  # Theirs; a multiple of the device count (8 on 8 devices).
    config.num_train_steps = 40_000
    config.log_every_steps = 100
    config.eval_every_steps = 2000
    config.checkpoint_every_steps = 2000
    config.data.num_workers = 4
    config.data.prefetch = 4
  elif variant == 'cpu':
    # VGG19 to relu4_4 on G(x), photos and style images dominates the step: ~2 s at
    # 64x64 on 2 cores, ~4x that at 128x128.
    config.data.name = 'synthetic_catalog/small'  # 128x128 renders, built once (~3 min).
    config.image_size = 64
    config.batch_size = 4
    config.num_train_steps = 400
    config.log_every_steps = 20
    config.eval_every_steps = 100
    config.checkpoint_every_steps = 100
    config.eval.num_examples = 32
    config.eval.batch_size = 8
  else:
    raise ValueError(
      f"Unknown variant {variant!r} of configs/neural_style.py; use 'full' or 'cpu'."
    )
  return config
