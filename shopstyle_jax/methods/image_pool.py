"""CycleGAN's history of generated images (Shrivastava et al. 2017) as a pure function.

D is trained on a mix of current and earlier fakes, which damps oscillation.
The official `util/image_pool.ImagePool` is a Python list mutated per image;
here the pool is a pytree, {'images': [pool_size, H, W, C] float32,
'count': int32 scalar}, so it lives in the jitted train state, is checkpointed
with it, and resumes exactly. `count` is the number of images offered so far
(not capped at pool_size): it is each image's global stream index, which keys
that image's randomness. Results therefore depend only on the sequence of
fakes and the rng, not on how the sequence is cut into batches or sharded.
(int32 `count` overflows after 2^31 images, far beyond a training run.)

A labelled pool (`init_pool(..., labelled=True)`, multi-style CycleGAN) also keeps
each image's int32 label (its style id), 'labels' [pool_size], which travels with
the image: an image returned from the pool comes back with its own label.
"""

from typing import Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

Pool = Dict[str, jax.Array]


def init_pool(pool_size: int, shape: Sequence[int], labelled: bool = False) -> Pool:
  """An empty pool for up to pool_size images of `shape` (H, W, C); 0 disables it.
  `labelled`: it keeps an int32 label per image too."""
  if pool_size < 0:
    raise ValueError(f'pool_size must be >= 0, got {pool_size}.')
  pool = {'images': jnp.zeros((pool_size, *shape), jnp.float32), 'count': jnp.zeros((), jnp.int32)}
  if labelled:
    pool['labels'] = jnp.zeros((pool_size,), jnp.int32)
  return pool


def query_pool(
  pool: Pool, fakes: jax.Array, rng: jax.Array, labels: Optional[jax.Array] = None
) -> Tuple[Pool, jax.Array] | Tuple[Pool, jax.Array, jax.Array]:
  """Offers a batch of fakes [N, H, W, C] in order; returns (new_pool, images for D),
  and their labels too, (new_pool, images, labels), when `labels` [N] are given
  (a labelled pool's).

  Image n of the batch, at stream index i = count + n, is handled as in the
  official ImagePool.query: while i < pool_size it is stored in slot i and
  returned; afterwards, with probability 0.5 (u > 0.5, u ~ U[0, 1)) a uniformly
  random slot's image is returned and the new image takes its place, else the
  new image is returned and the pool is unchanged. The draws come from
  jax.random.fold_in(rng, i), so a batch of 8 gives exactly what 8 batches of 1
  give with the same rng. One fixed rng for the whole run suffices (the index
  makes every draw distinct) and keeps results independent of the batch size
  and of resumption. pool_size 0 returns (pool, fakes) unchanged.

  Images are stored in float32 and returned in the fakes' dtype, without
  gradient (the official code stores `.data`; D's update detaches fakes anyway).
  Call it outside any vmap/pmap over the batch, on the global batch.
  """
  pool_size = pool['images'].shape[0]
  if (labels is None) != ('labels' not in pool):
    raise ValueError('Labels go with a labelled pool (init_pool(..., labelled=True)) only.')
  if pool_size == 0:
    return (pool, fakes) if labels is None else (pool, fakes, labels)
  if fakes.shape[1:] != pool['images'].shape[1:]:
    raise ValueError(f'Fakes {fakes.shape} do not match the pool {pool["images"].shape}.')
  dtype = fakes.dtype
  fakes = jax.lax.stop_gradient(fakes).astype(jnp.float32)

  def offer(carry, item):
    (images, stored_labels), count = carry
    fake, label = item
    key_swap, key_slot = jax.random.split(jax.random.fold_in(rng, count))
    filling = count < pool_size
    swap = jnp.logical_and(jnp.logical_not(filling), jax.random.uniform(key_swap, ()) > 0.5)
    random_slot = jax.random.randint(key_slot, (), 0, pool_size)
    slot = jnp.where(filling, jnp.minimum(count, pool_size - 1), random_slot)
    keep = jnp.logical_or(filling, swap)
    old, old_label = images[slot], stored_labels[slot]
    returned = (jnp.where(swap, old, fake), jnp.where(swap, old_label, label))
    images = images.at[slot].set(jnp.where(keep, fake, old))
    stored_labels = stored_labels.at[slot].set(jnp.where(keep, label, old_label))
    return ((images, stored_labels), count + 1), returned

  no_labels = jnp.zeros((pool_size,), jnp.int32)
  pool_labels = pool.get('labels', no_labels)
  given = jnp.zeros((fakes.shape[0],), jnp.int32) if labels is None else labels.astype(jnp.int32)
  ((images, pool_labels), count), (returned, returned_labels) = jax.lax.scan(
    offer, ((pool['images'], pool_labels), pool['count']), (fakes, given)
  )
  if labels is None:
    return {'images': images, 'count': count}, returned.astype(dtype)
  new_pool = {'images': images, 'count': count, 'labels': pool_labels}
  return new_pool, returned.astype(dtype), returned_labels
