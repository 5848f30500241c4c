"""Stylizing many files: plan the outputs, run the network in batches, report.

The library under `python -m shopstyle_jax.stylize`. `find_inputs` and
`plan_jobs` turn an image file, a folder or a list of paths into `Job`s (each
output keeps its photo's path relative to their common folder);
`prepare_output` checks the output folder can be written and
`remove_stale_temp_files` cleans what a killed run left there, both before a
model loads; `stylize_files` decodes ahead of the network, batches photos of
equal padded shape, shards them over devices and writes behind it.

On accelerators, photos whose padded shapes match are stylized together,
sharded over the local devices; on CPU one photo per call on one device, so
that each output equals `load_stylizer(...)(photo)` exactly (README's pixel
rule).
"""

import collections
import concurrent.futures
import dataclasses
import os
import threading
from typing import Any, Callable, Iterable, Optional, Sequence

import jax
import numpy as np
from absl import logging

from shopstyle_jax import images as image_lib
from shopstyle_jax import inference
from shopstyle_jax import parallel
from shopstyle_jax import progress as progress_lib
from shopstyle_jax import runtime
from shopstyle_jax.options import TILE_STATS_PIXELS
from shopstyle_jax.options import StylizeOptions


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
    return (
      f'{self.done} done, {self.skipped} skipped (output already there), {len(self.failed)} failed.'
    )


def _is_image_name(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in image_lib.IMAGE_EXTENSIONS


def find_inputs(path: str, exclude: Optional[str] = None) -> tuple[str, list[str]]:
  """The photos `path` names and the folder their output paths are relative to.

  `path` is an image file, a folder (walked recursively, hidden entries and the
  folder `exclude` left out, files with an image extension kept) or a text file
  of paths, one a line ('#' comments and blank lines ignored; relative paths are
  relative to the list's folder). A list's folder is the deepest one holding
  all its entries, absolute or relative, with symbolic links in folder names
  resolved, so that the same photo reached two ways is one entry. Raises
  ValueError when `path` is none of these.
  """
  path = os.path.abspath(path)
  if os.path.isdir(path):
    exclude = os.path.realpath(exclude) if exclude else None
    found = []
    for folder, dirs, files in os.walk(path):
      dirs[:] = sorted(
        d
        for d in dirs
        if not d.startswith('.') and os.path.realpath(os.path.join(folder, d)) != exclude
      )
      found.extend(
        os.path.join(folder, f)
        for f in sorted(files)
        if not f.startswith('.') and _is_image_name(f)
      )
    return path, found
  if not os.path.isfile(path):
    raise ValueError(f'--input={path} does not exist.')
  if _is_image_name(path):
    return os.path.dirname(path), [path]
  try:
    with open(path, encoding='utf-8') as f:
      lines = [line.strip() for line in f]
  except UnicodeDecodeError as e:
    raise ValueError(
      f'--input={path} is neither an image (by its extension: '
      f'{", ".join(image_lib.IMAGE_EXTENSIONS)}), a folder, nor a text file '
      'of paths.'
    ) from e
  base = os.path.dirname(path)
  listed = [
    _real_folder(os.path.join(base, line)) for line in lines if line and not line.startswith('#')
  ]
  listed = list(dict.fromkeys(listed))  # Drops repeats, keeps order.
  if not listed:
    return base, []
  return os.path.commonpath([os.path.dirname(p) for p in listed]), listed


def _real_folder(path: str) -> str:
  """`path` normalised, its folder's symbolic links resolved, its file name kept
  (a linked file keeps its own name for its output)."""
  folder, name = os.path.split(os.path.normpath(path))
  return os.path.join(os.path.realpath(folder), name)


def plan_jobs(root: str, paths: Sequence[str], output: str, fmt: str) -> list[Job]:
  """Output paths: `output` + path relative to `root`, with `fmt` as extension.

  When two inputs would share an output (a.jpg and a.png), the second keeps its
  extension in the name (a.png.png). Raises ValueError if an input is not
  under `root` (its output would land outside `output`) or an output would
  overwrite an input.
  """
  jobs, taken = [], {}
  for src in paths:
    rel = os.path.relpath(src, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
      raise ValueError(f'{src} is not under {root}: its output would be outside {output}.')
    stem = os.path.splitext(rel)[0]
    dst = os.path.join(output, f'{stem}.{fmt}')
    key = os.path.normcase(os.path.abspath(dst))
    if key in taken:
      logging.warning(
        '%s and %s would both be written to %s; the second keeps its extension in its name.',
        taken[key],
        rel,
        dst,
      )
      dst = os.path.join(output, f'{rel}.{fmt}')
      key = os.path.normcase(os.path.abspath(dst))
    taken[key] = rel
    jobs.append(Job(src, dst, rel))
  inputs = {os.path.normcase(os.path.realpath(p)) for p in paths}
  for job in jobs:
    if os.path.normcase(os.path.realpath(job.dst)) in inputs:
      raise ValueError(
        f'{job.dst} is an input and would be overwritten; choose another --output (or --format).'
      )
  return jobs


def find_masks(mask_dir: str) -> dict[str, str]:
  """The shop's own masks under `mask_dir`: {path relative to it without the
  extension: file}, for pairing with photos by relative path and stem (as a
  folder's photos and targets pair). Raises ValueError when it is no folder."""
  if not os.path.isdir(mask_dir):
    raise ValueError(f'--mask_dir={mask_dir} is not a folder.')
  root, paths = find_inputs(mask_dir)
  found = {}
  for path in paths:
    found.setdefault(os.path.splitext(os.path.relpath(path, root))[0], path)
  return found


def mask_for(job: Job, masks: Optional[dict[str, str]]) -> Optional[str]:
  """The mask file paired with `job`'s photo (same relative path and stem), or None."""
  return None if masks is None else masks.get(os.path.splitext(job.name)[0])


def prepare_output(output: str) -> None:
  """Creates the folder `output` and checks that a file can be written in it:
  before a model loads, not once per photo. Raises ValueError saying why not."""
  if os.path.exists(output) and not os.path.isdir(output):
    raise ValueError(f'--output={output} exists and is not a folder.')
  probe = os.path.join(output, f'.write_test.{os.getpid()}')
  try:
    os.makedirs(output, exist_ok=True)
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise ValueError(
      f'--output={output} cannot be written ({e.strerror or e}): choose another '
      'folder or fix its permissions.'
    ) from e


def remove_stale_temp_files(jobs: Iterable[Job]) -> int:
  """Deletes the hidden temporary files a killed run left beside `jobs`' outputs
  (`images.write_image` names them after the output); returns their count."""
  names = collections.defaultdict(set)
  for job in jobs:
    names[os.path.dirname(job.dst)].add(os.path.basename(job.dst))
  removed = 0
  for folder, folder_names in names.items():
    for path in image_lib.stale_temp_files(folder, folder_names):
      try:
        os.remove(path)
        removed += 1
      except FileNotFoundError:
        pass
  return removed


# Host memory per photo pixel that stylizing takes besides the network: the
# decoded image, its float32 copy, the output cropped, resized back and
# post-processed. With the network's own share (`network_bytes_per_pixel`) the
# estimate was above the measured peak (116-149 bytes per pixel for the tiny
# generator on CPU, 2000 and 4000 pixel squares).
HOST_BYTES_PER_PIXEL = 64
# Side of the square call whose compiled memory gives the network's bytes per pixel.
_PROBE_SIDE = 256


class PhotoTooLargeError(ValueError):
  """A photo that could not be stylized in the memory available."""


class DeviceRunner:
  """Runs a stylizer's network on batches sharded over devices (batch axis), in
  one style or mix (`style`, as `stylizer(..., style=...)` takes it)."""

  def __init__(
    self,
    stylizer: inference.Stylizer,
    devices: Optional[Sequence[jax.Device]] = None,
    style: Any = None,
  ):
    self.devices = list(devices or default_devices())
    self.generator = stylizer.generator
    mesh = parallel.create_mesh(self.devices)
    self.batch_sharding = parallel.batch_sharded(mesh)
    self.variables = jax.device_put(stylizer.variables, parallel.replicated(mesh))
    self.style_row = stylizer.style_weights(style, 1)  # [1, S], or None for one style.

  def style_weights(self, rows: int) -> Optional[jax.Array]:
    """The [rows, S] style weights of a call (None for a single-style network)."""
    if self.style_row is None:
      return None
    return jax.device_put(np.repeat(self.style_row, rows, axis=0), self.batch_sharding)

  def __call__(self, batch: np.ndarray) -> jax.Array:
    """Starts the network on [N, H, W, 3], N a multiple of the device count; async."""
    return inference.stylize_fn(
      self.generator,
      self.variables,
      jax.device_put(batch, self.batch_sharding),
      self.style_weights(len(batch)),
    )


def network_bytes_per_pixel(runner: DeviceRunner) -> float:
  """Memory the generator needs per pixel of what it stylizes, on each device (its
  temporaries, input and output): XLA's memory analysis of a compiled call on
  one `_PROBE_SIDE` square per device (activations grow with the pixels)."""
  factor = runner.generator.factor
  side = -(-_PROBE_SIDE // factor) * factor
  rows = len(runner.devices)
  images = jax.ShapeDtypeStruct((rows, side, side, 3), np.float32, sharding=runner.batch_sharding)
  analysis = (
    inference.stylize_fn.lower(
      runner.generator, runner.variables, images, runner.style_weights(rows)
    )
    .compile()
    .memory_analysis()
  )
  if analysis is None:  # Not every backend reports it: a generous guess.
    return 400.0
  per_call = (
    analysis.temp_size_in_bytes + analysis.output_size_in_bytes + side * side * 3 * 4
  )  # Temporaries, output, one input row.
  return per_call / (side * side)


class MemoryCheck:
  """Refuses, by its header's size and before it is decoded, a photo too large to
  stylize in the memory available (`runtime.available_memory`, asked per photo),
  suggesting the --max_side that would fit.

  A photo needs `HOST_BYTES_PER_PIXEL` per photo pixel on the host, plus the
  network's bytes per stylized pixel (after `max_side`): on the host too when the
  network runs on CPU, else on each device, for its share of a batch.
  """

  def __init__(
    self,
    runner: DeviceRunner,
    max_side: Optional[int],
    batch_size: int,
    tile: Optional[int] = None,
    tile_threshold: Optional[int] = None,
  ):
    self.max_side = max_side
    self.tile, self.tile_threshold = tile, tile_threshold
    self.on_host = runner.devices[0].platform == 'cpu'
    self.device = runner.devices[0]
    self.rows = max(batch_size // len(runner.devices), 1)  # Per device, per call.
    self.network = network_bytes_per_pixel(runner)

  def _limits(self) -> tuple[Optional[tuple[int, str]], Optional[tuple[int, str]]]:
    host = runtime.available_memory()
    return host, (host if self.on_host else runtime.available_memory(self.device))

  def max_megapixels(self) -> Optional[tuple[float, int, str]]:
    """(Megapixels that fit, without max_side, the bytes available, where from)."""
    host, _ = self._limits()
    if host is None:
      return None
    per_pixel = HOST_BYTES_PER_PIXEL + (self.network if self.on_host else 0)
    return host[0] / per_pixel / 1e6, host[0], host[1]

  def check(self, width: int, height: int) -> None:
    """PhotoTooLargeError when a `width` x `height` photo would not fit."""
    host, device = self._limits()
    pixels = width * height
    h, w = inference.fit_max_side(height, width, self.max_side)
    stylized = h * w
    if self.tile and self.tile_threshold is not None and stylized > self.tile_threshold:
      # Tiled: a tile (with its overlap) or the shrunk frame of the statistics at a time.
      stylized = min(stylized, max(TILE_STATS_PIXELS, (self.tile + 256) ** 2))
    network = self.network * stylized * (1 if self.on_host else self.rows)
    host_need = HOST_BYTES_PER_PIXEL * pixels + (network if self.on_host else 0)
    short = []
    if host is not None and host_need > host[0]:
      short.append((host_need, host, HOST_BYTES_PER_PIXEL * pixels))
    if not self.on_host and device is not None and network > device[0]:
      short.append((network, device, 0))
    if not short:
      return
    need, (available, source), fixed = short[0]
    size = f'{width}x{height} ({pixels / 1e6:.0f} megapixels)'
    room = available - fixed  # What the network may take at a smaller size.
    side = 0
    if room > 0:
      per_side2 = (
        self.network * (1 if self.on_host else self.rows) * min(width, height) / max(width, height)
      )
      side = int((room / per_side2) ** 0.5) // 64 * 64
    if side >= 64:
      advice = f'use --max_side={side} or less'
    else:
      advice = 'even decoding it would take too much: shrink the file first (or free memory)'
    raise PhotoTooLargeError(
      f'{size} would need about {runtime.size_text(need)} to stylize, more than the '
      f'{runtime.size_text(available)} available ({source}): {advice}.'
    )


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


def stylize_files(
  stylizer: inference.Stylizer,
  jobs: Sequence[Job],
  *,
  options: Optional[StylizeOptions] = None,
  batch_size: Optional[int] = None,
  devices: Optional[Sequence[jax.Device]] = None,
  quality: int = 95,
  png_compression: int = 1,
  workers: int = 4,
  progress: Optional[progress_lib.Progress] = None,
  report: Callable[[str], None] = logging.warning,
  mask_dir: Optional[str] = None,
  style: Any = None,
  label: bool = True,
) -> Summary:
  """Stylizes `jobs` with `options` (existing outputs are overwritten: filter first),
  in `style` (a multi-style model's style name or {name: weight} mix; default its
  default style).

  Files are decoded `workers` at a time ahead of the network and written by as
  many threads; photos are grouped by padded shape (after `options.max_side`)
  into batches of `batch_size`, sharded over `devices`. A file that cannot be
  read or written is reported through `report` and counted as failed. With a
  `background`, a photo's mask comes from `mask_dir` (paired by relative path
  and stem) when it holds one, else from the photo's alpha or segmentation.
  Photos above `options.tile_threshold` are stylized one at a time in tiles
  (`HostStylizer.run_tiled`). Outputs keep their photo's DPI and harmless EXIF (`images.read_info`) and,
  unless `label=False`, carry the AI label in their XMP (`stylizer.label`).
  """
  options = options or StylizeOptions()
  masks = find_masks(mask_dir) if (mask_dir and options.needs_mask) else None
  runner = DeviceRunner(stylizer, devices, style)
  num_devices = len(runner.devices)
  batch_size = batch_size or default_batch_size(runner.devices)
  batch_size = -(-batch_size // num_devices) * num_devices
  summary, lock = Summary(), threading.Lock()
  memory = MemoryCheck(runner, options.max_side, batch_size, options.tile, options.tile_threshold)
  fits = memory.max_megapixels()
  if fits:
    logging.info(
      'Memory available: %s (%s): photos up to %.0f megapixels fit at full size; '
      'larger ones need --max_side (one that does not fit is refused by name).',
      runtime.size_text(fits[1]),
      fits[2],
      fits[0],
    )

  def fail(job: Job, error: BaseException) -> None:
    reason = (
      str(error)
      if isinstance(error, (image_lib.ImageReadError, PhotoTooLargeError))
      else (f'{type(error).__name__}: {error}')
    )
    reason = reason.replace(job.src + ': ', '')
    with lock:
      summary.failed.append((job.name, reason))
    report(f'FAILED {job.name}: {reason}')
    if progress:
      progress.update()

  def load(job: Job) -> inference.Prepared:
    size = image_lib.read_size(job.src)
    if size is not None:
      memory.check(*size)  # Before decoding: one huge photo must not take the run down.
    photo = image_lib.read_image(job.src, keep_alpha=options.needs_mask)
    mask = None
    mask_path = mask_for(job, masks)
    if mask_path is not None:
      from shopstyle_jax import masks as masks_lib  # pylint: disable=g-import-not-at-top

      mask = masks_lib.read_mask(mask_path, photo.shape[:2])
    return inference.prepare(photo, stylizer.factor, options, mask)

  def save(job: Job, out: np.ndarray, prepared: inference.Prepared) -> None:
    try:
      image = inference.finish(out, prepared, options)
      if image.shape[-1] == 4 and options.background == 'keep':
        ext = os.path.splitext(job.dst)[1].lower().lstrip('.')
        if image_lib.WRITE_FORMATS.get(ext) not in image_lib.ALPHA_FORMATS:
          image = image_lib.over_white(image)  # The photo's own look, as read_image shows it.
      image_lib.write_image(
        image,
        job.dst,
        quality,
        png_compression,
        image_lib.read_info(job.src),
        stylizer.label if label else None,
      )
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
      writes.append(writers.submit(save, job, out[i : i + 1].copy(), prepared))

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
      if inference.tiles(prepared, options):  # Alone, in tiles, on the default device.
        try:
          rows = runner.style_row
          if rows is not None:
            rows = np.repeat(rows, len(prepared.batch), axis=0)
          out = stylizer.run_tiled(prepared.batch, options, rows)
        except Exception as e:  # pylint: disable=broad-except
          fail(job, e)
          continue
        write_slots.acquire()
        writes.append(writers.submit(save, job, out, prepared))
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
