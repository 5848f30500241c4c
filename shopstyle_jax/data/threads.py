"""The threaded map the dataset builders share (catalogue rendering, folder
conversion): one thread per usable core, a chunk of items at a time."""

import concurrent.futures
import os
from typing import Callable, Iterator, Optional, Sequence, TypeVar

Item = TypeVar('Item')
Result = TypeVar('Result')


def usable_cores() -> int:
  """The cores this process may run on (its CPU affinity where the OS has one)."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def map_in_chunks(
  fn: Callable[[Item], Result],
  items: Sequence[Item],
  *,
  chunk_size: int = 64,
  workers: Optional[int] = None,
) -> Iterator[tuple[Item, Result]]:
  """Yields (item, fn(item)) in the order of `items`.

  `fn` runs on `workers` threads (default `usable_cores()`), `chunk_size` items
  at a time: a chunk is started only once the previous one has been consumed,
  which bounds the results held in memory. Threads, not processes: worker
  processes would have to be spawned (the caller may hold TF/JAX threads, unsafe
  to fork), which re-imports the caller's __main__ and breaks unguarded scripts;
  NumPy, OpenCV and Pillow release the GIL for most of the work.
  """
  with concurrent.futures.ThreadPoolExecutor(workers or usable_cores()) as pool:
    for begin in range(0, len(items), chunk_size):
      chunk = items[begin : begin + chunk_size]
      yield from zip(chunk, pool.map(fn, chunk))
