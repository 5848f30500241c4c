"""CUT's patch projection head (PatchSampleF with use_mlp=True, netF_nc=256)."""

from typing import Any, List, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

# CUT's default init: xavier_normal_(gain=0.02), zero bias. torch's
# std = gain * sqrt(2 / (fan_in + fan_out)) is variance_scaling(gain^2, fan_avg).
xavier_gain_002 = nn.initializers.variance_scaling(0.02**2, 'fan_avg', 'normal')


def l2_normalize(x: jax.Array, eps: float = 1e-7) -> jax.Array:
  """x / (||x||_2 + eps) over the last axis, in float32 (CUT's Normalize(2)).

  A zero vector (a patch for which every ReLU of the MLP is off) stays zero and
  passes no gradient: sqrt's infinite slope at 0 would otherwise make the whole
  gradient NaN (as in the official code) and the train step be skipped.
  """
  x = x.astype(jnp.float32)
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  nonzero = sq > 0
  safe_sq = jnp.where(nonzero, sq, 1.0)
  return jnp.where(nonzero, x / (jnp.sqrt(safe_sq) + eps), 0.0)


class PatchMLP(nn.Module):
  """One Dense(nc)-ReLU-Dense(nc) per feature layer, then L2 normalisation.

  Takes the sampled patches of each layer, a sequence of [B, P, C_l] arrays
  (see `losses.gather_patches`), and returns a list of [B, P, nc] float32 unit
  vectors for `losses.patch_nce`. Layer i has its own MLP `mlp_{i}` (C_l
  differs per layer); the same module projects both the query and the key
  patches. With use_mlp=False it only normalises (CUT's netF 'sample').

  Attributes:
    num_channels: nc, the projection width (CUT's netF_nc).
    use_mlp: False skips the MLP.
    dtype: computation dtype of the Dense layers; parameters stay float32.
  """

  num_channels: int = 256
  use_mlp: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, patches: Sequence[jax.Array]) -> List[jax.Array]:
    out = []
    for i, x in enumerate(patches):
      if self.use_mlp:
        x = nn.Dense(
          self.num_channels,
          dtype=self.dtype,
          param_dtype=jnp.float32,
          kernel_init=xavier_gain_002,
          bias_init=nn.initializers.zeros,
          name=f'mlp_{i}_0',
        )(x.astype(self.dtype))
        x = nn.relu(x)
        x = nn.Dense(
          self.num_channels,
          dtype=self.dtype,
          param_dtype=jnp.float32,
          kernel_init=xavier_gain_002,
          bias_init=nn.initializers.zeros,
          name=f'mlp_{i}_1',
        )(x)
      out.append(l2_normalize(x))
    return out
