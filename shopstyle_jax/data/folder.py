"""The user's own catalogue: a folder of photos, converted once to array_record.

Layouts, in this order of precedence:

  * `side_by_side` set: every image is an A|B pair, the photo on the
    'photo_right' or 'photo_left' half;
  * `photos/` and `targets/` subfolders: pairs by matching relative path minus
    extension (`photos/bag/1.jpg` with `targets/bag/1.png`);
  * otherwise every image is a photo, its target rendered in `style` (none
    stored when `style` is None: photos for unpaired training);
  * `style_images` set: a folder of style images (`config.data.style_folder`),
    every file one image, no target, all of them in the train split.

Every file (subfolders included, hidden ones not) is read by
`images.read_image`, as the stylizers read it: EXIF orientation applied;
alpha, palette, grayscale and 16-bit images converted to RGB (transparency
composited over white, a studio backdrop); only large JPEGs are decoded at a
reduced scale (still at least the stored size). The cache key also holds
`images.READER_VERSION`, so a changed reader converts again. Files that do not
decode are skipped and reported. Photo and target are then resized so their
shorter side is `size` and centre-cropped to size x size: the pipeline only
has to crop, so reading costs what the catalogue's does.

The pairs go PNG-encoded into one array_record file in a cache directory whose
name hashes everything the conversion depends on (file names, sizes and
mtimes, layout, style and renderer version, size, test fraction), so a changed
folder is converted afresh. Of processes sharing the cache, one converts while
the others wait on a file lock beside the entry (`build_lock`) and then reuse
it; the entry is written under a temporary name and renamed when complete, so
a complete one is all that is ever reused. Files are assigned to the test split
by a stable hash of their names.
"""

import dataclasses
import hashlib
import json
import os
import re
import shutil
import struct
import time
import uuid
from typing import Any, Optional

import grain
import numpy as np
from absl import logging

from shopstyle_jax import images as image_lib
from shopstyle_jax import runtime
from shopstyle_jax import styles
from shopstyle_jax.data import build_lock
from shopstyle_jax.data import threads

SIDE_BY_SIDE = ('photo_right', 'photo_left')
# Bump when the conversion's output changes, so that old caches are not used.
_FORMAT_VERSION = 1
_RECORDS = 'records.array_record'
_INFO = 'info.json'
_MAX_NAMES_LOGGED = 10


@dataclasses.dataclass(frozen=True)
class FolderSpec:
  """What to convert: `config.data`'s folder fields plus the stored size."""

  folder: str
  size: int  # Stored square size (the pipeline's load size).
  style: Optional[str] = 'sketch'  # None: a photos-only folder stores no target.
  side_by_side: Optional[str] = None
  test_fraction: float = 0.1
  cache_dir: Optional[str] = None  # Unset = <user cache>/shopstyle_jax/folders.
  # A folder of style images: every file one image, no target, no test split.
  style_images: bool = False

  @property
  def key(self) -> str:
    """The config key naming this folder, for messages."""
    return 'config.data.style_folder' if self.style_images else 'config.data.folder'


@dataclasses.dataclass(frozen=True)
class _Item:
  name: str  # Relative path (pairs: without extension); hashed for the split.
  paths: tuple[str, ...]  # (image,) or (photo, target).


# The folder code's name for the one image error.
BadImage = image_lib.ImageReadError


# ----------------------------------------------------------------------------
# Stored images.
# ----------------------------------------------------------------------------


def read_photo(path: str, size: tuple[int, int]) -> np.ndarray:
  """uint8 RGB [H, W, 3] of a file, read as the stylizers read it, except that
  JPEGs are decoded at a reduced scale while (width, height) stays at least
  `size`: large photos are then cheap to read. Raises BadImage, its message the
  reason alone (the log names the file)."""
  try:
    return image_lib.read_rgb(path, draft=size)
  except BadImage as e:
    raise BadImage(e.reason) from e


def center_square(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes the shorter side to `size`, then crops the centre square."""
  height, width = image.shape[:2]
  scale = size / min(height, width)
  new_w = max(size, round(width * scale))
  new_h = max(size, round(height * scale))
  image = image_lib.resize(image, new_h, new_w)
  top, left = (new_h - size) // 2, (new_w - size) // 2
  return np.ascontiguousarray(image[top : top + size, left : left + size])


def encode_record(photo: np.ndarray, target: Optional[np.ndarray]) -> bytes:
  """One stored example: len(photo PNG) as uint32, photo PNG, target PNG (none
  when `target` is None: a photo or style image alone)."""
  photo_png = image_lib.encode_png(photo)
  target_png = b'' if target is None else image_lib.encode_png(target)
  return struct.pack('<I', len(photo_png)) + photo_png + target_png


def decode_record(
  record: bytes, keys: tuple[str, ...] = ('photo', 'target')
) -> dict[str, np.ndarray]:
  """The record's images among `keys`; 'target' is absent when none is stored."""
  (length,) = struct.unpack_from('<I', record)
  out = {}
  if 'photo' in keys:
    out['photo'] = image_lib.decode_png(record[4 : 4 + length])
  if 'target' in keys and len(record) > 4 + length:
    out['target'] = image_lib.decode_png(record[4 + length :])
  return out


# ----------------------------------------------------------------------------
# Layout, conversion of one item, split.
# ----------------------------------------------------------------------------


def _walk(root: str) -> list[str]:
  """Relative paths ('/'-separated) of the non-hidden files under root, sorted."""
  found = []
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
    dirnames[:] = [d for d in dirnames if not d.startswith('.')]
    found += [
      os.path.relpath(os.path.join(dirpath, name), root)
      for name in filenames
      if not name.startswith('.')
    ]
  return sorted(p.replace(os.sep, '/') for p in found)


def _layout(spec: FolderSpec) -> str:
  if spec.style_images:
    return 'style'
  if spec.side_by_side:
    return 'side_by_side'
  if all(os.path.isdir(os.path.join(spec.folder, d)) for d in ('photos', 'targets')):
    return 'pairs'
  return 'render'


def _items(spec: FolderSpec, layout: str) -> tuple[list[_Item], list[tuple[str, str]]]:
  """The folder's items and the files left out of any pair (name, reason)."""
  if layout != 'pairs':
    return [_Item(p, (os.path.join(spec.folder, p),)) for p in _walk(spec.folder)], []
  sides, unpaired = {}, []
  for side in ('photos', 'targets'):
    by_stem = {}
    for p in _walk(os.path.join(spec.folder, side)):
      by_stem.setdefault(os.path.splitext(p)[0], []).append(p)
    for stem, paths in by_stem.items():
      if len(paths) > 1:
        unpaired += [(f'{side}/{p}', 'several files with this name') for p in paths]
    sides[side] = {s: p[0] for s, p in by_stem.items() if len(p) == 1}
  photos, targets = sides['photos'], sides['targets']
  for side, mine, other in (('photos', photos, 'targets'), ('targets', targets, 'photos')):
    unpaired += [
      (f'{side}/{mine[s]}', f'no matching file in {other}/')
      for s in sorted(set(mine) - set(sides[other]))
    ]
  items = [
    _Item(
      s,
      (
        os.path.join(spec.folder, 'photos', photos[s]),
        os.path.join(spec.folder, 'targets', targets[s]),
      ),
    )
    for s in sorted(set(photos) & set(targets))
  ]
  return items, sorted(unpaired)


def _convert(item: _Item, spec: FolderSpec, layout: str) -> bytes:
  """The stored record of one item; raises BadImage."""
  size = spec.size
  if layout in ('render', 'style'):
    photo = center_square(read_photo(item.paths[0], (size, size)), size)
    if layout == 'style' or spec.style is None:
      return encode_record(photo, None)
    return encode_record(photo, styles.render(spec.style, photo))
  if layout == 'side_by_side':
    pair = read_photo(item.paths[0], (2 * size, size))
    half = pair.shape[1] // 2
    if half < 1:
      raise BadImage(f'too narrow for an A|B pair: {pair.shape[1]} px')
    left, right = pair[:, :half], pair[:, pair.shape[1] - half :]
    photo, target = (right, left) if spec.side_by_side == 'photo_right' else (left, right)
  else:
    photo = read_photo(item.paths[0], (size, size))
    target = read_photo(item.paths[1], (size, size))
    ratios = [a.shape[1] / a.shape[0] for a in (photo, target)]
    if abs(ratios[0] / ratios[1] - 1) > 0.02:
      raise BadImage(
        f'photo ({photo.shape[1]}x{photo.shape[0]}) and target '
        f'({target.shape[1]}x{target.shape[0]}) differ in '
        'aspect ratio'
      )
  return encode_record(center_square(photo, size), center_square(target, size))


def _unit_hash(name: str) -> float:
  """A stable pseudo-random number in [0, 1) per name."""
  # os.fsencode: the name's own bytes, also for names that are not UTF-8 (their
  # undecodable bytes arrive as surrogates); UTF-8 names hash as before.
  digest = hashlib.sha256(os.fsencode(name)).digest()
  return int.from_bytes(digest[:8], 'big') / 2.0**64


def split_indices(names: list[str], test_fraction: float) -> dict[str, list[int]]:
  """Train and test record indices: test holds names hashing below the fraction.

  Both splits are non-empty: with no name below the fraction the lowest-hashing
  one is held out, with none above it the highest is kept for training, and a
  single record is used for both.
  """
  hashes = [_unit_hash(n) for n in names]
  test = [i for i, h in enumerate(hashes) if h < test_fraction]
  train = [i for i, h in enumerate(hashes) if h >= test_fraction]
  if len(names) == 1:
    return {'train': [0], 'test': [0]}
  if not test:
    lowest = min(train, key=hashes.__getitem__)
    test, train = [lowest], [i for i in train if i != lowest]
  elif not train:
    highest = max(test, key=hashes.__getitem__)
    train, test = [highest], [i for i in test if i != highest]
  return {'train': train, 'test': test}


# ----------------------------------------------------------------------------
# The cache.
# ----------------------------------------------------------------------------


def _check(spec: FolderSpec) -> str:
  """Validates the spec; returns the folder's absolute real path."""
  if spec.side_by_side is not None and spec.side_by_side not in SIDE_BY_SIDE:
    raise ValueError(
      f'config.data.side_by_side={spec.side_by_side!r} is not '
      f'allowed; choose one of {SIDE_BY_SIDE} or leave it unset.'
    )
  if not 0.0 <= spec.test_fraction < 1.0:
    raise ValueError(f'config.data.test_fraction={spec.test_fraction} must be in [0, 1).')
  if spec.style is not None and spec.style not in styles.RENDERERS:
    raise ValueError(
      f'Unknown style {spec.style!r}; allowed: {", ".join(sorted(styles.RENDERERS))}.'
    )
  folder = os.path.realpath(os.path.expanduser(spec.folder))
  if not os.path.exists(folder):
    raise FileNotFoundError(f'{spec.key}={spec.folder!r} does not exist.')
  if not os.path.isdir(folder):
    raise NotADirectoryError(f'{spec.key}={spec.folder!r} is not a directory.')
  return folder


def _cache_root(spec: FolderSpec, folder: str) -> str:
  if spec.cache_dir:
    root = os.path.realpath(os.path.expanduser(spec.cache_dir))
  else:
    root = os.path.realpath(runtime.cache_dir('folders'))
  if root == folder or root.startswith(folder + os.sep):
    raise ValueError(
      f'config.data.cache_dir={root!r} is inside {spec.key}={folder!r}; put it elsewhere.'
    )
  os.makedirs(root, exist_ok=True)
  return root


def _cache_key(spec: FolderSpec, folder: str, layout: str, items: list[_Item]) -> str:
  files = []
  for item in items:
    for path in item.paths:
      st = os.stat(path)
      files.append((os.path.relpath(path, folder), st.st_size, st.st_mtime_ns))
  key = {
    'format': _FORMAT_VERSION,
    'reader': image_lib.READER_VERSION,
    'folder': folder,
    'layout': layout,
    'side_by_side': spec.side_by_side,
    'size': spec.size,
    'test_fraction': spec.test_fraction,
    'files': files,
    'style': spec.style if layout == 'render' else None,
    'styles_version': (styles.VERSION if layout == 'render' and spec.style else None),
  }
  return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _log_skipped(folder: str, total: int, skipped: list) -> None:
  if not skipped:
    return
  shown = '; '.join(f'{n} ({why})' for n, why in skipped[:_MAX_NAMES_LOGGED])
  more = len(skipped) - _MAX_NAMES_LOGGED
  logging.warning(
    '%s: skipped %d of %d files that are not usable images: %s%s',
    folder,
    len(skipped),
    total,
    shown,
    f'; and {more} more' if more > 0 else '',
  )


def _write(
  path: str, spec: FolderSpec, folder: str, layout: str, items: list[_Item], unpaired: list
) -> None:
  """Converts every item into `path` (a new directory)."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  os.makedirs(path)
  writer = array_record_module.ArrayRecordWriter(os.path.join(path, _RECORDS), 'group_size:1')
  names, skipped = [], list(unpaired)
  start = last_log = time.time()

  def convert(item):
    try:
      return _convert(item, spec, layout), None
    except BadImage as e:
      return None, str(e)

  converted = threads.map_in_chunks(convert, items)
  for done, (item, (record, error)) in enumerate(converted, 1):
    if record is None:
      skipped.append((item.name, error))
    else:
      writer.write(record)
      names.append(item.name)
    if time.time() - last_log > 10:
      last_log = time.time()
      logging.info('Converting %s: %d/%d files.', folder, done, len(items))
  writer.close()
  total = len(items) + len(unpaired)
  if not names:
    raise ValueError(
      f'{spec.key}={folder!r} holds no readable image '
      f'({total} files tried: '
      f'{", ".join(n for n, _ in skipped[:_MAX_NAMES_LOGGED]) or "none"}). '
      'Supported: JPEG, PNG, WebP and other formats PIL reads.'
    )
  info = {
    'folder': folder,
    'layout': layout,
    'spec': dataclasses.asdict(spec),
    'files': total,
    'names': names,
    'splits': (
      {'train': list(range(len(names))), 'test': []}
      if layout == 'style'
      else split_indices(names, spec.test_fraction)
    ),
    'skipped': skipped,
    'seconds': round(time.time() - start, 1),
  }
  with open(os.path.join(path, _INFO), 'w') as f:
    json.dump(info, f, indent=1)


def _write_atomically(
  path: str, spec: FolderSpec, folder: str, layout: str, items: list[_Item], unpaired: list
) -> None:
  """`_write` under a temporary name, renamed to `path` when complete.

  A killed conversion leaves no half-written cache entry; and where the build
  lock cannot work, a process that loses the race uses the winner's copy.
  """
  tmp = os.path.join(
    os.path.dirname(path), f'.{os.path.basename(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
  )
  try:
    _write(tmp, spec, folder, layout, items, unpaired)
    os.rename(tmp, path)
  except OSError:
    if not os.path.exists(os.path.join(path, _INFO)):
      raise
    # Another process finished the same conversion first: use it.
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def prepare(spec: FolderSpec, verbose: bool = True) -> str:
  """Converts the folder if its cache is missing; returns the cache path.

  Raises FileNotFoundError for a missing folder and ValueError for one with no
  readable image; a failed conversion leaves nothing in the cache.
  """
  folder = _check(spec)
  spec = dataclasses.replace(spec, folder=folder)
  layout = _layout(spec)
  items, unpaired = _items(spec, layout)
  if not items:
    what = 'no photo with a matching target' if layout == 'pairs' else 'no files'
    raise ValueError(f'{spec.key}={spec.folder!r} holds {what}; nothing to train on.')
  root = _cache_root(spec, folder)
  base = re.sub(r'[^A-Za-z0-9._-]', '_', os.path.basename(folder))[:40]
  path = os.path.join(root, f'{base}-{_cache_key(spec, folder, layout, items)[:20]}')
  if not os.path.exists(os.path.join(path, _INFO)):
    with build_lock.held(build_lock.lock_path_for(path), f'converting {folder}'):
      # The process that held the lock has usually just converted it.
      if not os.path.exists(os.path.join(path, _INFO)):
        if verbose:
          logging.info(
            'Converting %s (%d files, layout %s) into %s.', folder, len(items), layout, path
          )
        _write_atomically(path, spec, folder, layout, items, unpaired)
  info = read_info(path)
  if verbose:
    _log_skipped(folder, info['files'], [tuple(s) for s in info['skipped']])
    if layout == 'style':
      logging.info(
        'Style folder %s: %d style images (%d px) in %s.',
        folder,
        len(info['splits']['train']),
        spec.size,
        path,
      )
    else:
      logging.info(
        'Folder %s: %d train and %d test images (%s layout, %d px) in %s.',
        folder,
        len(info['splits']['train']),
        len(info['splits']['test']),
        layout,
        spec.size,
        path,
      )
  return path


def has_targets(spec: FolderSpec) -> bool:
  """Whether the converted folder stores targets (photos-only folders with
  style None and style folders do not). Reads only the folder's layout."""
  layout = _layout(dataclasses.replace(spec, folder=os.path.expanduser(spec.folder)))
  return layout in ('pairs', 'side_by_side') or (layout == 'render' and spec.style is not None)


def read_info(path: str) -> dict[str, Any]:
  with open(os.path.join(path, _INFO)) as f:
    return json.load(f)


class FolderSource:
  """Random access to one split of a converted folder: {'photo', 'target'}
  ('target' absent where none is stored), or only the images in `keys`."""

  def __init__(self, path: str, split: str, keys: tuple[str, ...] = ('photo', 'target')):
    self._path = path
    self._split = split
    self._keys = tuple(keys)
    self._indices = np.asarray(read_info(path)['splits'][split], np.int64)
    self._records = grain.sources.ArrayRecordDataSource([os.path.join(path, _RECORDS)])

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return decode_record(self._records[int(self._indices[index])], self._keys)

  def __repr__(self) -> str:
    return f'FolderSource({self._path!r}, {self._split!r})'
