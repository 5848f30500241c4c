"""Inference: `stylize_fn` (jitted, pure), `load_stylizer` (checkpoint -> callable)
and the batch CLI for whole catalogues:

  python -m shopstyle_jax.stylize --workdir=runs/ --input=photos/ --output=sketches/

`--input` is an image file, a folder (searched recursively) or a text file
listing paths, one a line (relative ones from the list's folder). Each output
keeps its input's path relative to the input folder (for a list: to the
deepest folder holding all its entries) and its stem, with the extension of
`--format`. Existing outputs are skipped (`--overwrite` redoes them), inputs
are never written, and unreadable files are reported and counted as failed.
On accelerators, photos whose padded shapes match are stylized together, sharded
over the local devices; on CPU one photo per call on one device, so that each
output equals `load_stylizer(...)(photo)` exactly (README's pixel rule).
"""

import collections
import concurrent.futures
import dataclasses
import functools
import json
import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence, TextIO

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from shopstyle_jax import checkpoints
from shopstyle_jax import images as image_lib
from shopstyle_jax import state as state_lib
from shopstyle_jax.models import generators
from shopstyle_jax.models import layers

CONFIG_FILE = 'config.json'


@functools.partial(jax.jit, static_argnames=('generator',))
def stylize_fn(generator: nn.Module, variables: Any, images: jax.Array) -> jax.Array:
  """Photos -> styled images, deterministic (dropout off, noise input zero).

  Args:
    generator: the generator module (static: one compile per module and shape).
    variables: its flax variables ({'params': ..., 'batch_stats': ...}).
    images: float32 [N, H, W, 3] in [-1, 1]; H and W multiples of `generator.factor`.
  Returns:
    float32 [N, H, W, 3] in [-1, 1].
  """
  return generator.apply(variables, images, train=False).astype(jnp.float32)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run wrote to `<workdir>/config.json`."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'{path} not found: {workdir!r} is not a shopstyle_jax workdir (train into it first '
        'with python main.py --config=... --workdir=...).')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


class Stylizer(image_lib.HostStylizer):
  """A trained generator as a callable on uint8 photos of any size.

  `stylizer(images, *, brightness=0., contrast=1., max_side=None)`: see
  `images.HostStylizer.__call__`.
  """

  def __init__(self, generator: nn.Module, variables: Any, step: Optional[int] = None,
               config: Optional[ml_collections.ConfigDict] = None):
    self.generator = generator
    self.variables = jax.device_put(variables)
    self.step = step
    self.config = config

  @property
  def factor(self) -> int:
    return self.generator.factor

  def run(self, batch: np.ndarray) -> np.ndarray:
    return np.asarray(stylize_fn(self.generator, self.variables, jnp.asarray(batch)))


def load_stylizer(workdir: str, step: Optional[int] = None, *,
                  precision: Optional[str] = None) -> Stylizer:
  """Restores a checkpoint's generator (EMA weights when the run kept them).

  Args:
    workdir: a training workdir (holds config.json and checkpoints/).
    step: checkpoint step; the latest by default.
    precision: 'float32' or 'bfloat16' activations; default float32.
  """
  dtype = layers.precision_dtype(precision)
  config = read_config(workdir)
  generator = generators.create_generator(config.model, dtype=dtype)
  tree, step = checkpoints.restore_subtree(
      workdir, ('g_params', 'g_batch_stats', 'ema_params'), step)
  variables = state_lib.generator_variables(tree['g_params'], tree['g_batch_stats'],
                                           tree['ema_params'])
  return Stylizer(generator, variables, step, config)


# --- The batch CLI ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
  """One photo to stylize: its file, its output file, and its name in messages."""
  src: str
  dst: str
  name: str


@dataclasses.dataclass
class Summary:
  """What a run did: files written, skipped (output there) and failed (with why)."""
  done: int = 0
  skipped: int = 0
  failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, reason)

  def __str__(self) -> str:
    return (f'{self.done} done, {self.skipped} skipped (output already there), '
            f'{len(self.failed)} failed.')


def _is_image_name(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in image_lib.IMAGE_EXTENSIONS


def find_inputs(path: str, exclude: Optional[str] = None) -> tuple[str, list[str]]:
  """The photos `path` names and the folder their output paths are relative to.

  `path` is an image file, a folder (walked recursively, hidden entries and the
  folder `exclude` left out, files with an image extension kept) or a text file
  of paths, one a line ('#' comments and blank lines ignored; relative paths are
  relative to the list's folder). Raises ValueError when `path` is none of these.
  """
  path = os.path.abspath(path)
  if os.path.isdir(path):
    exclude = os.path.realpath(exclude) if exclude else None
    found = []
    for folder, dirs, files in os.walk(path):
      dirs[:] = sorted(d for d in dirs if not d.startswith('.') and
                       os.path.realpath(os.path.join(folder, d)) != exclude)
      found.extend(os.path.join(folder, f) for f in sorted(files)
                   if not f.startswith('.') and _is_image_name(f))
    return path, found
  if not os.path.isfile(path):
    raise ValueError(f'--input={path} does not exist.')
  if _is_image_name(path):
    return os.path.dirname(path), [path]
  try:
    with open(path, encoding='utf-8') as f:
      lines = [line.strip() for line in f]
  except UnicodeDecodeError as e:
    raise ValueError(f'--input={path} is neither an image (by its extension: '
                     f'{", ".join(image_lib.IMAGE_EXTENSIONS)}), a folder, nor a text file '
                     'of paths.') from e
  base = os.path.dirname(path)
  listed = [os.path.normpath(os.path.join(base, line)) for line in lines
            if line and not line.startswith('#')]
  listed = list(dict.fromkeys(listed))  # Drops repeats, keeps order.
  if not listed:
    return base, []
  return os.path.commonpath([os.path.dirname(p) for p in listed]), listed


def plan_jobs(root: str, paths: Sequence[str], output: str, fmt: str) -> list[Job]:
  """Output paths: `output` + path relative to `root`, with `fmt` as extension.

  When two inputs would share an output (a.jpg and a.png), the second keeps its
  extension in the name (a.png.png). Raises ValueError if an output would
  overwrite an input.
  """
  jobs, taken = [], {}
  for src in paths:
    rel = os.path.relpath(src, root)
    stem = os.path.splitext(rel)[0]
    dst = os.path.join(output, f'{stem}.{fmt}')
    key = os.path.normcase(os.path.abspath(dst))
    if key in taken:
      logging.warning('%s and %s would both be written to %s; the second keeps its '
                      'extension in its name.', taken[key], rel, dst)
      dst = os.path.join(output, f'{rel}.{fmt}')
      key = os.path.normcase(os.path.abspath(dst))
    taken[key] = rel
    jobs.append(Job(src, dst, rel))
  inputs = {os.path.normcase(os.path.realpath(p)) for p in paths}
  for job in jobs:
    if os.path.normcase(os.path.realpath(job.dst)) in inputs:
      raise ValueError(f'{job.dst} is an input and would be overwritten; choose another '
                       '--output (or --format).')
  return jobs


class Progress:
  """A progress line on `stream`: count, images/s and ETA; redrawn in place on a
  terminal, else printed every `interval` seconds. Thread-safe."""

  def __init__(self, total: int, stream: TextIO = sys.stderr, interval: float = 10.0):
    self.total, self.count, self.stream = total, 0, stream
    self.tty = stream.isatty()
    self.interval = 0.1 if self.tty else interval
    self.start = self.last = time.monotonic()
    self.lock = threading.Lock()

  def _line(self) -> str:
    elapsed = max(time.monotonic() - self.start, 1e-9)
    rate = self.count / elapsed
    eta = (self.total - self.count) / rate if rate > 0 else float('nan')
    eta_text = time.strftime('%H:%M:%S', time.gmtime(eta)) if np.isfinite(eta) else '?'
    percent = 100.0 * self.count / max(self.total, 1)
    width = 24
    filled = int(width * self.count / max(self.total, 1))
    return (f'[{"#" * filled}{"." * (width - filled)}] {self.count}/{self.total} images '
            f'({percent:.0f}%)  {rate:.2f} images/s  ETA {eta_text}')

  def _draw(self, final: bool = False) -> None:
    end = '\n' if final or not self.tty else ''
    self.stream.write(('\r\033[K' if self.tty else '') + self._line() + end)
    self.stream.flush()
    self.last = time.monotonic()

  def update(self, n: int = 1) -> None:
    with self.lock:
      self.count += n
      if time.monotonic() - self.last >= self.interval:
        self._draw()

  def message(self, text: str) -> None:
    """Prints a line above the progress line."""
    with self.lock:
      self.stream.write(('\r\033[K' if self.tty else '') + text + '\n')
      if self.tty:
        self._draw()
      self.stream.flush()

  def close(self) -> float:
    """Draws the final line; returns images per second."""
    with self.lock:
      self._draw(final=True)
      return self.count / max(time.monotonic() - self.start, 1e-9)


class DeviceRunner:
  """Runs a stylizer's network on batches sharded over devices (batch axis)."""

  def __init__(self, stylizer: Stylizer, devices: Optional[Sequence[jax.Device]] = None):
    self.devices = list(devices or default_devices())
    self.generator = stylizer.generator
    mesh = Mesh(np.asarray(self.devices), ('batch',))
    self.batch_sharding = NamedSharding(mesh, P('batch'))
    self.variables = jax.device_put(stylizer.variables, NamedSharding(mesh, P()))

  def __call__(self, batch: np.ndarray) -> jax.Array:
    """Starts the network on [N, H, W, 3], N a multiple of the device count; async."""
    return stylize_fn(self.generator, self.variables,
                      jax.device_put(batch, self.batch_sharding))


def default_devices() -> list[jax.Device]:
  """The local devices on accelerators; one device on CPU, where sharding a batch
  is no faster and compiles another program, whose float rounding may move a level
  (README's pixel rule)."""
  devices = jax.local_devices()
  return devices[:1] if devices[0].platform == 'cpu' else devices


def default_batch_size(devices: Sequence[jax.Device]) -> int:
  """One photo per call on CPU, where larger batches are no faster and would
  change float rounding (the CLI then matches `load_stylizer` bit for bit); 8 per
  device on accelerators."""
  return 1 if devices[0].platform == 'cpu' else 8 * len(devices)


def _call_size(count: int, num_devices: int, batch_size: int) -> int:
  """Rows a bucket of `count` photos is run with: num_devices * 2^k, so a shape
  compiles for at most log2(batch_size / num_devices) + 1 batch sizes."""
  size = num_devices
  while size < count:
    size *= 2
  return min(size, batch_size)


def stylize_files(stylizer: Stylizer, jobs: Sequence[Job], *, batch_size: Optional[int] = None,
                  devices: Optional[Sequence[jax.Device]] = None, brightness: float = 0.0,
                  contrast: float = 1.0, max_side: Optional[int] = None, quality: int = 95,
                  png_compression: int = 1, workers: int = 4,
                  progress: Optional[Progress] = None,
                  report: Callable[[str], None] = logging.warning) -> Summary:
  """Stylizes `jobs` (existing outputs are overwritten: filter first).

  Files are decoded `workers` at a time ahead of the network and written by as
  many threads; photos are grouped by padded shape (after `max_side`) into
  batches of `batch_size`, sharded over `devices`. A file that cannot be read
  or written is reported through `report` and counted as failed.
  """
  image_lib.check_adjustments(brightness, contrast)
  runner = DeviceRunner(stylizer, devices)
  num_devices = len(runner.devices)
  batch_size = batch_size or default_batch_size(runner.devices)
  batch_size = -(-batch_size // num_devices) * num_devices
  summary, lock = Summary(), threading.Lock()

  def fail(job: Job, error: BaseException) -> None:
    reason = str(error) if isinstance(error, image_lib.ImageReadError) else (
        f'{type(error).__name__}: {error}')
    reason = reason.replace(job.src + ': ', '')
    with lock:
      summary.failed.append((job.name, reason))
    report(f'FAILED {job.name}: {reason}')
    if progress:
      progress.update()

  def load(job: Job) -> image_lib.Prepared:
    return image_lib.prepare(image_lib.read_image(job.src), stylizer.factor, max_side)

  def save(job: Job, out: np.ndarray, prepared: image_lib.Prepared) -> None:
    try:
      image_lib.write_image(image_lib.finish(out, prepared, brightness, contrast), job.dst,
                            quality, png_compression)
    except Exception as e:  # pylint: disable=broad-except
      fail(job, e)
      return
    finally:
      write_slots.release()
    with lock:
      summary.done += 1
    if progress:
      progress.update()

  readers = concurrent.futures.ThreadPoolExecutor(workers, 'stylize-read')
  writers = concurrent.futures.ThreadPoolExecutor(workers, 'stylize-write')
  writes = []
  # Outputs waiting for a writer hold memory: the network waits when writers lag.
  write_slots = threading.BoundedSemaphore(2 * (workers + batch_size))
  buckets: dict[tuple, list] = collections.OrderedDict()
  in_flight = None  # (members, device output) of the last batch dispatched

  def collect(members, out) -> None:
    out = np.asarray(out)
    for i, (job, prepared) in enumerate(members):
      write_slots.acquire()
      writes.append(writers.submit(save, job, out[i:i + 1].copy(), prepared))

  def dispatch(key: tuple) -> None:
    nonlocal in_flight
    members = buckets.pop(key)
    rows = [p.batch for _, p in members]
    size = _call_size(len(rows), num_devices, batch_size)
    rows += [np.zeros_like(rows[0])] * (size - len(rows))
    out = runner(np.concatenate(rows))
    if in_flight is not None:
      collect(*in_flight)  # While the device works on this batch.
    in_flight = (members, out)

  # Bounds what waits in partly filled buckets when photos come in many shapes.
  max_waiting = 4 * batch_size
  try:
    queue = collections.deque()
    pending = iter(jobs)
    for job in pending:
      queue.append((job, readers.submit(load, job)))
      if len(queue) >= 2 * batch_size + workers:
        break
    waiting = 0
    while queue:
      job, future = queue.popleft()
      next_job = next(pending, None)
      if next_job is not None:
        queue.append((next_job, readers.submit(load, next_job)))
      try:
        prepared = future.result()
      except (ValueError, OSError) as e:
        fail(job, e)
        continue
      key = prepared.batch.shape[1:3]
      buckets.setdefault(key, []).append((job, prepared))
      waiting += 1
      if len(buckets[key]) == batch_size:
        waiting -= batch_size
        dispatch(key)
      elif waiting >= max_waiting:
        key = max(buckets, key=lambda k: len(buckets[k]))
        waiting -= len(buckets[key])
        dispatch(key)
    for key in list(buckets):
      dispatch(key)
    if in_flight is not None:
      collect(*in_flight)
    for w in writes:
      w.result()
  finally:
    readers.shutdown(wait=True, cancel_futures=True)
    writers.shutdown(wait=True)
  return summary


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('workdir', None, 'Training workdir (config.json + checkpoints/).')
  flags.DEFINE_integer('step', None, 'Checkpoint step; the latest by default.')
  flags.DEFINE_string('input', None,
                      'An image file, a folder (recursive) or a text file of paths.')
  flags.DEFINE_string('output', None, 'Folder for the stylized images (created).')
  flags.DEFINE_enum('format', 'png', sorted(image_lib.WRITE_FORMATS), 'Output format.')
  flags.DEFINE_integer('quality', 95, 'JPEG/WebP quality.', lower_bound=1, upper_bound=100)
  flags.DEFINE_integer('png_compression', 1, 'PNG zlib level: 1 is fast, 9 smallest.',
                       lower_bound=0, upper_bound=9)
  flags.DEFINE_bool('overwrite', False, 'Redo outputs that already exist.')
  flags.DEFINE_integer('max_side', None, 'Stylize photos whose longer side exceeds this at '
                       'that size, then resize the result back to the original size.',
                       lower_bound=1)
  flags.DEFINE_float('brightness', 0.0, 'Added to the stylized image in [-1, 1].',
                     lower_bound=-1.0, upper_bound=1.0)
  flags.DEFINE_float('contrast', 1.0, 'Factor around mid-grey.', lower_bound=0.0)
  flags.DEFINE_enum('precision', 'float32', ['float32', 'bfloat16'], 'Activations dtype.')
  flags.DEFINE_integer('batch_size', None, 'Photos per network call over all local devices '
                       '(rounded up to a multiple of their number); default 1 per device '
                       'on CPU, 8 per device on GPU/TPU.', lower_bound=1)
  flags.DEFINE_integer('workers', None, 'Decoding and encoding threads each; default '
                       'the CPU count, at most 16.', lower_bound=1)
  flags.DEFINE_bool('strict', False, 'Exit with status 1 when any file failed.')
  flags.mark_flags_as_required(['workdir', 'input', 'output'])


def main(argv: Sequence[str]) -> int:
  """The CLI; see the module docstring. Returns the exit status."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()
  output = os.path.abspath(f.output)
  try:
    root, paths = find_inputs(f.input, exclude=output)
    if os.path.isdir(f.input) and os.path.realpath(root) == os.path.realpath(output):
      raise ValueError('--output is the input folder: outputs would mix with the photos and be '
                       'read as inputs by the next run. Choose another folder (a subfolder '
                       'is fine).')
    if os.path.exists(output) and not os.path.isdir(output):
      raise ValueError(f'--output={output} exists and is not a folder.')
    jobs = plan_jobs(root, paths, output, f.format)
  except ValueError as e:
    print(f'Error: {e}', file=sys.stderr)
    return 2
  todo = jobs if f.overwrite else [j for j in jobs if not os.path.exists(j.dst)]
  skipped = len(jobs) - len(todo)
  if not jobs:
    print(f'No images found in {f.input} (extensions: {", ".join(image_lib.IMAGE_EXTENSIONS)}).')
    return 1
  if todo:
    stylizer = load_stylizer(f.workdir, f.step, precision=f.precision)
    devices = default_devices()
    batch_size = f.batch_size or default_batch_size(devices)
    logging.info('Checkpoint step %d; %d photos to stylize (%d already done) on %d %s '
                 'device(s), batches of %d.', stylizer.step, len(todo), skipped, len(devices),
                 devices[0].platform, batch_size)
    progress = Progress(len(todo))
    summary = stylize_files(
        stylizer, todo, batch_size=batch_size, devices=devices, brightness=f.brightness,
        contrast=f.contrast, max_side=f.max_side, quality=f.quality,
        png_compression=f.png_compression, workers=f.workers or min(16, os.cpu_count() or 1),
        progress=progress,
        report=progress.message)
    rate = progress.close()
  else:
    summary, rate = Summary(), None
  summary.skipped = skipped
  print(f'Stylized {f.input} -> {output}: {summary}' +
        (f' {rate:.2f} images/s.' if rate else ''))
  for name, reason in summary.failed:
    print(f'  failed: {name}: {reason}')
  return 1 if summary.failed and f.strict else 0


if __name__ == '__main__':
  from absl import app as _app  # pylint: disable=g-import-not-at-top
  _define_flags()
  _app.run(main)
