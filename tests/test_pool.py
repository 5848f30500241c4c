"""CycleGAN's image pool: official semantics, batch-split independence, exact resume."""

import jax
import jax.numpy as jnp
import numpy as np

from shopstyle_jax.methods import image_pool

SHAPE = (2, 2, 3)
query = jax.jit(image_pool.query_pool)


def ids_to_images(ids):
  """Image k is constant k, so an image's identity is readable from any pixel."""
  return jnp.broadcast_to(jnp.asarray(ids, jnp.float32)[:, None, None, None], (len(ids), *SHAPE))


def image_ids(images):
  images = np.asarray(images)
  assert (images == images[:, :1, :1, :1]).all()
  return images[:, 0, 0, 0].astype(int).tolist()


def test_init_pool():
  pool = image_pool.init_pool(5, SHAPE)
  assert pool['images'].shape == (5, *SHAPE) and pool['images'].dtype == jnp.float32
  assert pool['count'].shape == () and pool['count'].dtype == jnp.int32 and int(pool['count']) == 0


def test_fills_first_returning_images_unchanged():
  pool = image_pool.init_pool(4, SHAPE)
  pool, out = query(pool, ids_to_images([10, 11, 12]), jax.random.PRNGKey(0))
  assert image_ids(out) == [10, 11, 12]
  pool, out = query(pool, ids_to_images([13, 14, 15]), jax.random.PRNGKey(1))
  assert image_ids(out)[0] == 13  # The 4th image still fills; the pool is full after it.
  assert image_ids(pool['images'])[:3] == [10, 11, 12]
  assert int(pool['count']) == 6


def test_swaps_with_probability_half_and_uniform_slots():
  n, size = 2000, 4
  pool, _ = query(
    image_pool.init_pool(size, SHAPE), ids_to_images(range(size)), jax.random.PRNGKey(0)
  )
  new_ids = list(range(size, size + n))
  pool, out = query(pool, ids_to_images(new_ids), jax.random.PRNGKey(1))
  out_ids = image_ids(out)
  swapped = [got != new for got, new in zip(out_ids, new_ids)]
  # 2000 fair coins: standard deviation 0.011, so 0.05 is 4.5 sigma.
  assert abs(np.mean(swapped) - 0.5) < 0.05
  # Replay the swaps on a list to find the slot each one used.
  slots, uses = list(range(size)), [0] * size
  for got, new in zip(out_ids, new_ids):
    if got != new:
      slot = slots.index(got)  # Fails unless the returned image was in the pool.
      slots[slot] = new
      uses[slot] += 1
  assert slots == image_ids(pool['images'])
  # About 1000 swaps over 4 slots: each share 0.25 +- 0.014 (1 sigma).
  assert all(abs(u / sum(uses) - 0.25) < 0.06 for u in uses), uses


def test_returned_is_new_or_pooled_and_pool_changes_accordingly():
  size = 3
  pool = image_pool.init_pool(size, SHAPE)
  rng = jax.random.PRNGKey(7)
  outcomes = set()
  for new in range(100, 160):
    before = image_ids(pool['images'])
    count = int(pool['count'])
    pool, out = query(pool, ids_to_images([new]), rng)
    after, (got,) = image_ids(pool['images']), image_ids(out)
    if count < size:
      assert got == new and after == before[:count] + [new] + before[count + 1 :]
      outcomes.add('fill')
    elif got == new:
      assert after == before
      outcomes.add('keep')
    else:
      assert got in before
      slot = before.index(got)
      assert after == before[:slot] + [new] + before[slot + 1 :]
      outcomes.add('swap')
    assert int(pool['count']) == count + 1
  assert outcomes == {'fill', 'keep', 'swap'}


def test_batch_of_8_equals_8_batches_of_1_and_other_splits():
  fakes = jnp.asarray(np.random.RandomState(0).standard_normal((16, *SHAPE)), jnp.float32)
  rng = jax.random.PRNGKey(3)
  whole, out_whole = query(image_pool.init_pool(3, SHAPE), fakes[:8], rng)
  whole, out_whole2 = query(whole, fakes[8:], rng)
  for splits in ([1] * 16, [3, 5, 2, 6]):
    pool, outs = image_pool.init_pool(3, SHAPE), []
    start = 0
    for size in splits:
      pool, out = query(pool, fakes[start : start + size], rng)
      outs.append(out)
      start += size
    np.testing.assert_array_equal(np.concatenate(outs), np.concatenate([out_whole, out_whole2]))
    np.testing.assert_array_equal(pool['images'], whole['images'])
    assert int(pool['count']) == int(whole['count']) == 16
  # The 16 images really exercised swaps: some returned image is not the one offered.
  assert not np.array_equal(np.concatenate([out_whole, out_whole2]), fakes)


def test_saved_and_restored_pool_continues_identically(tmp_path):
  fakes = jnp.asarray(np.random.RandomState(1).standard_normal((12, *SHAPE)), jnp.float32)
  pool = image_pool.init_pool(4, SHAPE)
  for step in range(2):
    pool, _ = query(pool, fakes[4 * step : 4 * step + 4], jax.random.PRNGKey(step))
  np.savez(tmp_path / 'pool.npz', **{k: np.asarray(v) for k, v in pool.items()})
  live, out_live = query(pool, fakes[8:], jax.random.PRNGKey(2))
  with np.load(tmp_path / 'pool.npz') as saved:
    restored = {k: jnp.asarray(saved[k]) for k in saved.files}
  assert restored['count'].dtype == jnp.int32
  resumed, out_resumed = query(restored, fakes[8:], jax.random.PRNGKey(2))
  np.testing.assert_array_equal(out_resumed, out_live)
  np.testing.assert_array_equal(resumed['images'], live['images'])
  assert int(resumed['count']) == int(live['count']) == 12


def test_pool_size_zero_is_identity():
  pool = image_pool.init_pool(0, SHAPE)
  fakes = ids_to_images([1, 2, 3])
  new_pool, out = query(pool, fakes, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, fakes)
  assert new_pool['images'].shape == (0, *SHAPE) and int(new_pool['count']) == 0


def test_keeps_dtype_stores_float32_and_passes_no_gradient():
  pool = image_pool.init_pool(2, SHAPE)
  fakes = ids_to_images([1, 2, 3]).astype(jnp.bfloat16)
  new_pool, out = query(pool, fakes, jax.random.PRNGKey(0))
  assert out.dtype == jnp.bfloat16 and new_pool['images'].dtype == jnp.float32
  grad = jax.grad(lambda f: jnp.sum(image_pool.query_pool(pool, f, jax.random.PRNGKey(0))[1]))(
    ids_to_images([1, 2, 3])
  )
  assert float(jnp.abs(grad).max()) == 0.0
