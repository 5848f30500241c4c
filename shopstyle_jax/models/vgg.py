"""VGG19 feature extractor (Simonyan & Zisserman 2015) for the perceptual loss.

The layout mirrors Keras' `keras.applications.VGG19(include_top=False)`: 3x3
'same' convolutions with ReLU, 2x2 stride-2 max pooling between blocks, conv
submodules named `block{b}_conv{i}` with HWIO kernels. Keras' ImageNet weights
therefore load by name (see `shopstyle_jax.weights`). Outputs are named after
the ReLU they follow: conv `block{b}_conv{i}` -> `relu{b}_{i}`.
"""

from typing import Any, Dict, Mapping, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shopstyle_jax import images as image_lib

Dtype = Any
Params = Dict[str, Dict[str, jax.Array]]

# (filters, convs) per block, as VGG19 ("configuration E").
BLOCKS: Tuple[Tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))

# Every ReLU output in network order, and the Keras conv layer that feeds it.
VGG_LAYERS: Tuple[str, ...] = tuple(
  f'relu{b}_{i}' for b, (_, n) in enumerate(BLOCKS, 1) for i in range(1, n + 1)
)
CONV_NAMES: Dict[str, str] = {
  name: 'block{}_conv{}'.format(*name[len('relu') :].split('_')) for name in VGG_LAYERS
}

# Keras 'caffe' preprocessing (keras.applications.imagenet_utils): ImageNet
# mean pixel in BGR order, subtracted from 0-255 BGR images, no scaling.
CAFFE_BGR_MEAN: Tuple[float, float, float] = (103.939, 116.779, 123.68)

# He/Kaiming normal (fan_in, gain 2): keeps the second moment of ReLU
# activations roughly constant over 16 random layers (no vanish/explode).
he_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')


def check_layers(layers: Sequence[str]) -> Tuple[str, ...]:
  """Validates requested layer names; returns them as a tuple."""
  layers = tuple(layers)
  if not layers:
    raise ValueError(f'Request at least one VGG19 layer; allowed: {VGG_LAYERS}.')
  unknown = [name for name in layers if name not in VGG_LAYERS]
  if unknown:
    raise ValueError(f'Unknown VGG19 layer(s) {unknown}; allowed: {VGG_LAYERS}.')
  return layers


def deepest_layer(layers: Sequence[str]) -> str:
  """The requested layer furthest from the input: where the network is cut."""
  return max(check_layers(layers), key=VGG_LAYERS.index)


def conv_names_for(layers: Sequence[str]) -> Tuple[str, ...]:
  """Keras names of the conv layers the cut network has (input to deepest)."""
  last = VGG_LAYERS.index(deepest_layer(layers))
  return tuple(CONV_NAMES[name] for name in VGG_LAYERS[: last + 1])


def preprocess(images: jax.Array) -> jax.Array:
  """Generator range [-1, 1] RGB -> Keras VGG input (0-255 BGR minus the mean).

  Computed in float32; the caller casts to the compute dtype afterwards (in
  bfloat16 the centred values, up to ~150, keep a step <= 1, like 8-bit pixels).
  """
  x = image_lib.model_to_pixels(images)  # [-1, 1] -> [0, 255].
  x = x[..., ::-1]  # RGB -> BGR.
  return x - jnp.asarray(CAFFE_BGR_MEAN, jnp.float32)


class VGG19(nn.Module):
  """VGG19 convolutional trunk returning the requested ReLU feature maps.

  Attributes:
    layers: ReLU outputs to return, names from `VGG_LAYERS` (e.g. 'relu3_1').
      The network stops at the deepest of them: no parameters or compute past it.
    dtype: computation dtype (e.g. jnp.bfloat16); parameters stay float32.
  """

  layers: Sequence[str] = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> Dict[str, jax.Array]:
    """Features of [N, H, W, 3] RGB images in [-1, 1]; dict name -> [N, h, w, C]."""
    wanted = set(check_layers(self.layers))
    last = VGG_LAYERS.index(deepest_layer(self.layers))
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'VGG19 expects [N, H, W, 3] RGB images, got shape {images.shape}.')
    num_pools = int(VGG_LAYERS[last][len('relu')]) - 1
    if min(images.shape[1:3]) < 2**num_pools:
      raise ValueError(
        f'Images of size {images.shape[1:3]} are too small for '
        f'{VGG_LAYERS[last]} ({num_pools} 2x2 poolings).'
      )
    x = preprocess(images).astype(self.dtype)
    features = {}
    index = 0
    for block, (filters, convs) in enumerate(BLOCKS, 1):
      if block > 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')
      for i in range(1, convs + 1):
        x = nn.Conv(
          filters,
          (3, 3),
          padding='SAME',
          dtype=self.dtype,
          param_dtype=jnp.float32,
          kernel_init=he_init,
          bias_init=nn.initializers.zeros,
          name=f'block{block}_conv{i}',
        )(x)
        x = nn.relu(x)
        name = VGG_LAYERS[index]
        if name in wanted:
          features[name] = x
        if index == last:
          return features
        index += 1
    raise AssertionError('unreachable: the deepest layer is always found')


def init_random_params(layers: Sequence[str], seed: int = 0) -> Params:
  """Seeded He-normal kernels and zero biases for the convs up to the deepest layer.

  Random-weight VGG features still make a usable perceptual loss (Liu et al.,
  CVPR 2021). Conv k (0-based, network order) draws N(0, 2 / fan_in) from
  NumPy's PCG64 seeded with (seed, k): the same on every host, and a conv's
  weights do not depend on the cut. NumPy, not jax.random, because XLA:CPU
  compiles a sampler per kernel shape (~1-2 s each, ~15 s for VGG19).
  Returns the inner params dict: `VGG19(layers).apply({'params': params}, x)`.
  """
  params = {}
  for k, (name, shapes) in enumerate(param_shapes(layers).items()):
    rng = np.random.default_rng([seed, k])
    kernel_shape = shapes['kernel']
    fan_in = kernel_shape[0] * kernel_shape[1] * kernel_shape[2]
    kernel = rng.standard_normal(kernel_shape, dtype=np.float32) * np.float32(np.sqrt(2 / fan_in))
    params[name] = {'kernel': jnp.asarray(kernel), 'bias': jnp.zeros(shapes['bias'], jnp.float32)}
  return params


def param_shapes(layers: Sequence[str]) -> Mapping[str, Mapping[str, Tuple[int, ...]]]:
  """Expected {conv name: {'kernel': HWIO, 'bias': (C,)}} for the cut network."""
  shapes = {}
  cin = 3
  for block, (filters, convs) in enumerate(BLOCKS, 1):
    for i in range(1, convs + 1):
      shapes[f'block{block}_conv{i}'] = {'kernel': (3, 3, cin, filters), 'bias': (filters,)}
      cin = filters
  return {name: shapes[name] for name in conv_names_for(layers)}
