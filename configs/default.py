"""Default hyperparameters: every field of every experiment, with its meaning.

Experiments (`sketch.py`, `pix2pix.py`, ...) start from `get_config()` here and
change what they need. Every field can be overridden on the command line, e.g.
`--config.batch_size=8 --config.loss.gan=hinge`; fields whose default is unset
are ml_collections placeholders, so they can be overridden too.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  """Returns the default (sketch-style, CPU-sized, 128x128) configuration, runnable as is."""
  config = ml_collections.ConfigDict()

  # --- Run length and bookkeeping -------------------------------------------
  config.seed = 0  # Seeds parameters, dropout/noise and the data order.
  # Training method (a model-shape key: a workdir cannot switch methods):
  # 'paired' (pix2pix family: photo -> target pairs), or, learning from style images
  # without pairs (config.data.style_folder or config.data.unpaired): 'cyclegan'
  # (Zhu et al. 2017), 'cut' / 'fastcut' (Park et al. 2020), 'neural_style'
  # (Johnson et al. 2016: content + Gram style + total variation, VGG19 features).
  config.method = 'paired'
  config.num_train_steps = 3000  # Total optimizer steps (each: one D + one G update).
  config.batch_size = 16  # GLOBAL batch over all devices of all processes.
  config.image_size = 128  # Training crop size, a multiple of the generator's factor.
  config.precision = 'float32'  # 'float32' or 'bfloat16' (activations; params stay float32).
  config.ema_decay = 0.0  # EMA of generator weights; 0 = off. When on, eval and stylize use it.
  config.log_every_steps = 50  # TensorBoard scalars (each loss term, lr, steps/s).
  config.eval_every_steps = 500  # PSNR/SSIM and an image grid on the test split.
  config.checkpoint_every_steps = 500  # Orbax checkpoint period (also saved at the last step).
  config.keep_checkpoints = 3  # How many recent checkpoints Orbax keeps.
  config.max_nonfinite_steps = 10  # Stop after this many consecutive steps with NaN/Inf.
  # A workdir or checkpoint directory whose generator and discriminator weights
  # start this run (fine-tuning a new style from a trained model). Unset = fresh init.
  config.init_from = config_dict.placeholder(str)

  # --- Models ----------------------------------------------------------------
  config.model = ml_collections.ConfigDict()
  config.model.generator = 'unet'  # 'unet' (pix2pix U-Net) or 'resnet' (Johnson et al.).
  config.model.width = 64  # Filters of the generator's first layer (pix2pix's ngf).
  # U-Net: number of stride-2 downsamplings (factor 2**depth); 7 takes 128x128 to
  # 1x1 (pix2pix's unet_128), 8 takes 256x256 to 1x1 (its unet_256).
  config.model.depth = 7
  config.model.resnet_blocks = 9  # ResNet generator: residual blocks at 1/4 resolution.
  config.model.norm = 'batch'  # 'instance', 'batch' or 'none' (generator and discriminator).
  config.model.dropout = 0.5  # Decoder dropout (pix2pix's noise source); 0 = off.
  config.model.noise_channels = 0  # >0 concatenates Gaussian noise z to the photo: G(z, x).
  # Upsampling layer: 'conv_transpose' (4x4 stride-2 transposed conv, the paper's,
  # computed exactly as four 2x2 phase convolutions), 'resize_conv'
  # (nearest-neighbour x2 then 3x3 conv; no checkerboard, cheaper) or
  # 'bilinear_conv' (bilinear x2 then 3x3 conv: the official CUT generator's
  # anti-aliased upsampling; same parameters as 'resize_conv').
  config.model.upsample = 'conv_transpose'
  # The U-Net's outermost upsampling, the one that makes the output pixels: ''
  # = as `upsample`. 'conv_transpose' under 'resize_conv' layers gives each of
  # the four output phases its own kernel (1-pixel lines) while the inner layers
  # stay checkerboard-free. The ResNet generator ends in a 7x7 conv instead.
  config.model.output_upsample = ''
  config.model.disc_width = 64  # Filters of the discriminator's first layer (ndf).
  config.model.disc_layers = 3  # PatchGAN stride-2 layers: 3 = the 70x70 PatchGAN.
  config.model.nce_mlp_channels = 256  # CUT's projection head: two layers of this width.
  # CUT's nce_layers: the generator taps PatchNCE compares, by name (U-Net:
  # 'input', 'enc1'...; ResNet: 'pad', 'down1', 'down2', 'block1'...). Empty = the
  # generator's `nce_taps` (the paper's layers for the ResNet).
  config.model.nce_layers = ()

  # --- Losses ----------------------------------------------------------------
  # G minimises adversarial_weight*L_adv + mse_weight*MSE + l1_weight*L1
  # + perceptual_weight*L_vgg. A weight of 0 removes the term (no compute).
  config.loss = ml_collections.ConfigDict()
  config.loss.gan = 'vanilla'  # 'vanilla' (non-saturating BCE), 'lsgan' or 'hinge'.
  config.loss.adversarial_weight = 1.0
  config.loss.mse_weight = 100.0  # The reference's lambda for the per-pixel MSE.
  config.loss.l1_weight = 0.0
  config.loss.perceptual_weight = 0.0
  # Multi-style runs: each style's own mse_weight, l1_weight and
  # adversarial_weight, e.g. per_style.sketch = {'mse_weight': 100.0,
  # 'l1_weight': 0.0}; what a style does not set comes from the weights above.
  # Empty = every style uses those. Entries for known styles the run does not
  # train are unused (a config may set the losses of styles a fine-tune adds).
  config.loss.per_style = ml_collections.ConfigDict()
  # VGG19 weights for the perceptual loss: 'imagenet' (download the Keras
  # ImageNet file once and cache it), a path to that .h5 file, or 'random'.
  config.loss.vgg_weights = 'imagenet'
  config.loss.vgg_layers = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')
  config.loss.vgg_layer_weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # pix2pixHD's.
  # Terms without pairs; any method may use the content, style and TV terms.
  # Content: mean squared difference of VGG19 features of the output and the photo.
  config.loss.content_weight = 0.0
  config.loss.content_layers = ('relu2_2',)  # Johnson et al.'s content layer.
  # Style: Gram matrices F^T F / (C*H*W) of the output's VGG19 features against a
  # style image's (each example paired with one style image), weighted per layer.
  config.loss.style_weight = 0.0
  config.loss.style_layers = ('relu1_2', 'relu2_2', 'relu3_4', 'relu4_4')
  config.loss.style_layer_weights = (1.0, 1.0, 1.0, 1.0)
  config.loss.tv_weight = 0.0  # Total variation: mean |dx| + mean |dy| of the output.
  # Unpaired methods: MSE between the output and the photo mapped by the global tone
  # map that gives photo luminance the style images' value distribution (histogram
  # specification, `tone.match_histogram`, fitted on the train photos and style
  # images without pairs): the reconstruction term of L = L_adv + lambda*L_rec
  # when there are no pairs. Both sides Gaussian-blurred by tone_blur (sigma,
  # pixels; 0 = none) first, so that it holds tones, not lines. 0 = off.
  config.loss.tone_weight = 0.0
  config.loss.tone_blur = 0.0
  # cut, fastcut, cyclegan: Gaussian blur (sigma, pixels) of real and generated
  # style images before the style discriminator (CycleGAN's D_style; its D_photo
  # sees photos as they are), which then judges lines and tones, not fine texture
  # (White-box Cartoonization's surface representation); 0 = off.
  config.loss.disc_blur = 0.0
  # Then a self-guided filter (He et al. 2010) of this radius (pixels; 0 = off) and
  # regulariser eps (variance, in the [-1, 1] range): smooths texture, keeps lines.
  config.loss.disc_guided_radius = 0
  config.loss.disc_guided_eps = 0.5
  # cut, fastcut: > 0 adds a second discriminator that judges the page as it is
  # (no disc_blur/guided filter), its adversarial term weighted by this in G's
  # loss: line width and crispness count again. 0 = off (one D).
  config.loss.sharp_disc_weight = 0.0
  # CycleGAN: cycle-consistency L1 (the L_rec of L = L_adv + lambda*L_rec without
  # pairs; the paper's lambda 10), identity L1 (an absolute weight: the paper's
  # 0.5 * 10), and the history of generated images each D also sees (0 = off).
  config.loss.cycle_weight = 10.0
  config.loss.identity_weight = 5.0
  config.loss.pool_size = 50
  # CUT / FastCUT: PatchNCE on the generator encoder's features.
  config.loss.nce_weight = 1.0  # 1 for cut, 10 for fastcut.
  config.loss.nce_patches = 256  # Patches sampled per layer (all when a layer has fewer).
  config.loss.nce_temperature = 0.07
  config.loss.nce_identity = True  # NCE on style images too (cut: on; fastcut: off).
  config.loss.flip_equivariance = False  # FastCUT's: the flipped photo's output flips.

  # --- Optimizer (Adam for both networks, as pix2pix) --------------------------
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  # Constant learning rate for this fraction of the steps, then linear decay to 0.
  config.optimizer.decay_start_fraction = 0.5

  # --- Data ------------------------------------------------------------------
  config.data = ml_collections.ConfigDict()
  # TFDS dataset: 'synthetic_catalog' (embedded, rendered offline),
  # 'edges2shoes' or 'edges2handbags'. A '/config' suffix picks a builder config.
  config.data.name = 'synthetic_catalog'
  config.data.data_dir = config_dict.placeholder(str)  # TFDS data dir; unset = TFDS default.
  # Where edges2shoes.tar.gz / edges2handbags.tar.gz were put by hand (used
  # instead of downloading); unset = <data_dir>/downloads/manual.
  config.data.manual_dir = config_dict.placeholder(str)
  config.data.style = 'sketch'  # Target style: sketch, watercolor, oil, cartoon.
  # Several styles in one generator (a model-shape key): a tuple of style names, e.g.
  # ('sketch', 'watercolor', 'identity'); 'identity' trains on (photo, photo) so that
  # mixing toward it dials a style down. Unset = (style,), a single-style run; when set,
  # `style` must be one of them (the default style). config.method=paired renders them
  # (catalogue or `folder`); the unpaired methods learn them from `style_folders`.
  config.data.styles = config_dict.placeholder(tuple)
  # A folder of the user's own photos; when set it wins over `name`.
  config.data.folder = config_dict.placeholder(str)
  # For `folder`: files are A|B pairs with the photo on the 'photo_right' or 'photo_left'.
  config.data.side_by_side = config_dict.placeholder(str)
  # Where `folder` is converted to array_record; unset = ~/.cache/shopstyle_jax/folders.
  config.data.cache_dir = config_dict.placeholder(str)
  config.data.test_fraction = 0.1  # Share of `folder` files held out (stable hash of names).
  # Unpaired methods (CycleGAN, CUT, neural style) learn a style from images that
  # pair with no photo. style_folder: a folder of style images (any sizes, any count
  # from 1), converted once into cache_dir like `folder`; all of them train. Photos
  # still come from `folder` or `name`. Unset = no style folder.
  config.data.style_folder = config_dict.placeholder(str)
  # Several styles for the unpaired methods: {style name: folder of its images}, e.g.
  # --config.data.style_folders="{'ink': 'ink/', 'watercolor_brand': 'wc/'}", with
  # `styles` the same names (free-form) and `style` one of them. Empty = unset.
  config.data.style_folders = ml_collections.ConfigDict()
  # True: unpaired batches from the dataset itself (`name` or `folder`): photos from
  # the train split's even indices, style images (`style` targets) from its odd ones,
  # so no photo's own target is seen; the test split keeps its true pairs.
  config.data.unpaired = False
  # Augmentation: resize to load_size, random crop image_size, random flip.
  # Unset = round(image_size * 286 / 256), pix2pix's ratio; = image_size turns crops off.
  config.data.load_size = config_dict.placeholder(int)
  config.data.flip = True
  config.data.num_workers = 0  # grain worker processes (0 = threads in this process).
  config.data.prefetch = 2  # Batches prepared ahead of the train step.

  # --- Evaluation --------------------------------------------------------------
  config.eval = ml_collections.ConfigDict()
  config.eval.num_examples = 128  # Test examples scored at each eval (<= the split size).
  config.eval.batch_size = 16  # Global eval batch.
  config.eval.grid_rows = 6  # Rows of the input | target | output image grid.

  return config
