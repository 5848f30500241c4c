"""A trained generator as one self-contained file: write it, and load it back.

The library under `python -m shopstyle_jax.export`. The file is a zip archive
holding

  metadata.json       factor, step, style, dataset, model settings, versions
  function.stablehlo  `jax.export` serialization of f(weights, images) -> images:
                      the generator's `stylize_fn` as StableHLO, for the batch
                      size and any height and width that are multiples of the
                      factor (all symbolic), lowered for CPU, CUDA and TPU; a
                      multi-style generator's is f(weights, style, images) with
                      style the float32 [batch, S] weights (format version 2),
                      so one file holds every style and mix
  weights/NNNN.npy    the weights f takes, in order
  norm_stats.stablehlo, with_norm_stats.stablehlo (single-style files)
                      `norm_stats_fn` and `with_norm_stats_fn` likewise, the
                      statistics as a flat list: what tiled stylizing (photos
                      above `tile_threshold`) runs

`load_exported(path)` returns a callable with `load_stylizer`'s interface that
needs only jax and numpy: no model code, no config, no checkpoint library.
Reflection padding to the factor and cropping back run on the host, outside
the exported function, with the same code as `load_stylizer` (`inference`,
which imports only jax and numpy).
"""

import datetime
import functools
import io
import json
import os
import zipfile
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

from shopstyle_jax import images as image_lib
from shopstyle_jax import inference

FORMAT = 'shopstyle_jax.exported_stylizer'
VERSION = 2  # The newest format this module reads; 2 adds the style input.
_SINGLE_STYLE_VERSION = 1  # Single-style files stay version 1: older readers load them.
# Any version may also hold the tiling functions (norm_stats, with_norm_stats).
DEFAULT_PLATFORMS = ('cpu', 'cuda', 'tpu')
_METADATA, _FUNCTION, _WEIGHTS = 'metadata.json', 'function.stablehlo', 'weights/'
_NORM_STATS, _WITH_NORM_STATS = 'norm_stats.stablehlo', 'with_norm_stats.stablehlo'


class ExportedStylizer(inference.HostStylizer):
  """An exported generator as a callable on uint8 photos of any size:
  `stylizer(images, options=None, *, style=None, **overrides)` (a `StylizeOptions`,
  or its fields as keywords; a style name or mix), exactly as the `Stylizer` that
  `load_stylizer` returns; `styles` lists its styles."""

  def __init__(
    self,
    exported: jax_export.Exported,
    weights: Sequence[np.ndarray],
    metadata: dict[str, Any],
    tiling: Optional[tuple[jax_export.Exported, jax_export.Exported]] = None,
  ):
    self.exported = exported
    self.tiling = tiling
    self.weights = [jax.device_put(w) for w in weights]
    self.metadata = metadata
    self.factor = int(metadata['factor'])
    self.step = metadata.get('step')
    self.default_style = metadata.get('style')
    self.styles = tuple(metadata.get('styles') or (self.default_style,))
    self.label = image_lib.Label(metadata.get('style'), self.step, image_lib.weights_hash(weights))
    self._call = jax.jit(exported.call)  # One compile per input shape.
    if tiling is not None:
      self._stats, self._with_stats = (jax.jit(e.call) for e in tiling)

  def run(self, batch: np.ndarray, style: Optional[np.ndarray] = None) -> np.ndarray:
    images = jnp.asarray(batch, jnp.float32)
    if len(self.styles) > 1:
      return np.asarray(self._call(self.weights, jnp.asarray(style, jnp.float32), images))
    return np.asarray(self._call(self.weights, images))

  def _check_tiling(self) -> None:
    if self.tiling is None:
      why = (
        'holds several styles (tiled multi-style files are not built yet)'
        if len(self.styles) > 1
        else 'was written before tiling existed'
      )
      raise ValueError(
        f'This exported stylizer {why}, so it cannot stylize photos above '
        'tile_threshold: pass max_side (or tile_threshold=None), use load_stylizer on '
        'the workdir, or export a single-style model again with python -m shopstyle_jax.export.'
      )

  def norm_stats(self, batch: np.ndarray, style: Optional[np.ndarray] = None) -> Any:
    self._check_tiling()
    return self._stats(self.weights, jnp.asarray(batch, jnp.float32))

  def run_with_norm_stats(
    self, batch: np.ndarray, stats: Any, style: Optional[np.ndarray] = None
  ) -> np.ndarray:
    self._check_tiling()
    return np.asarray(self._with_stats(self.weights, stats, jnp.asarray(batch, jnp.float32)))


def export_stylizer(
  stylizer: Any, platforms: Sequence[str] = DEFAULT_PLATFORMS
) -> tuple[jax_export.Exported, list[np.ndarray]]:
  """Exports a `Stylizer`'s network with symbolic batch, height and width.

  Returns the Exported f(weights, images) (multi-style: f(weights, style,
  images), style float32 [batch, S]) and the weights list it takes
  (`export_tiling` exports what tiling needs).
  """
  generator = stylizer.generator
  leaves, treedef = jax.tree.flatten(jax.device_get(stylizer.variables))
  weights = [np.asarray(x) for x in leaves]
  num_styles = len(stylizer.styles)

  def fn(weights, images):
    return inference.stylize_fn(generator, jax.tree.unflatten(treedef, weights), images)

  def styled_fn(weights, style, images):
    return inference.stylize_fn(generator, jax.tree.unflatten(treedef, weights), images, style)

  f = generator.factor
  # Multiples of the factor by construction, so every downsampling divides.
  shape = jax_export.symbolic_shape(f'b, {f}*h, {f}*w, 3')
  args = (
    [jax.ShapeDtypeStruct(w.shape, w.dtype) for w in weights],
    jax.ShapeDtypeStruct(shape, jnp.float32),
  )
  if num_styles > 1:  # The style weights share the images' symbolic batch size.
    args = (args[0], jax.ShapeDtypeStruct((shape[0], num_styles), jnp.float32), args[1])
    fn = styled_fn
  exported = jax_export.export(jax.jit(fn), platforms=tuple(platforms))(*args)
  return exported, weights


def export_tiling(
  stylizer: Any, platforms: Sequence[str] = DEFAULT_PLATFORMS
) -> tuple[jax_export.Exported, jax_export.Exported]:
  """Exports `inference.norm_stats_fn` as g(weights, images) -> [stats] and
  `inference.with_norm_stats_fn` as h(weights, [stats], images) -> images (the
  statistics as a flat list, each [batch, channels]), symbolic like
  `export_stylizer`'s f: what `HostStylizer.run_tiled` calls."""
  generator = stylizer.generator
  leaves, treedef = jax.tree.flatten(jax.device_get(stylizer.variables))
  f = generator.factor
  probe = jax.ShapeDtypeStruct((1, f, f, 3), jnp.float32)
  stats_shapes, stats_treedef = jax.tree.flatten(
    jax.eval_shape(functools.partial(inference.norm_stats_fn, generator), stylizer.variables, probe)
  )

  def stats_fn(weights, images):
    variables = jax.tree.unflatten(treedef, weights)
    return jax.tree.leaves(inference.norm_stats_fn(generator, variables, images))

  def with_stats_fn(weights, stats, images):
    variables = jax.tree.unflatten(treedef, weights)
    stats = jax.tree.unflatten(stats_treedef, stats)
    return inference.with_norm_stats_fn(generator, variables, stats, images)

  b, h, w = jax_export.symbolic_shape(f'b, {f}*h, {f}*w')
  weights = [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in leaves]
  images = jax.ShapeDtypeStruct((b, h, w, 3), jnp.float32)
  stats = [jax.ShapeDtypeStruct((b, *s.shape[1:]), s.dtype) for s in stats_shapes]
  platforms = tuple(platforms)
  return (
    jax_export.export(jax.jit(stats_fn), platforms=platforms)(weights, images),
    jax_export.export(jax.jit(with_stats_fn), platforms=platforms)(weights, stats, images),
  )


def save_exported(
  path: str,
  exported: jax_export.Exported,
  weights: Sequence[np.ndarray],
  metadata: dict[str, Any],
  tiling: Optional[tuple[jax_export.Exported, jax_export.Exported]] = None,
) -> None:
  """Writes the archive (via a temporary file, so a crash leaves no partial one);
  `tiling` is `export_tiling`'s pair."""
  metadata = dict(
    metadata,
    format=FORMAT,
    version=VERSION if len(metadata.get('styles') or ()) > 1 else _SINGLE_STYLE_VERSION,
    platforms=list(exported.platforms),
    num_weights=len(weights),
    jax_version=jax.__version__,
    input_shape=str(exported.in_avals[-1].shape),
  )
  tmp = f'{path}.tmp'
  with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED) as zf:
    zf.writestr(_METADATA, json.dumps(metadata, indent=2, sort_keys=True))
    zf.writestr(_FUNCTION, bytes(exported.serialize()))
    for i, w in enumerate(weights):
      buf = io.BytesIO()
      np.save(buf, w, allow_pickle=False)
      zf.writestr(f'{_WEIGHTS}{i:04d}.npy', buf.getvalue())
    if tiling is not None:
      zf.writestr(_NORM_STATS, bytes(tiling[0].serialize()))
      zf.writestr(_WITH_NORM_STATS, bytes(tiling[1].serialize()))
  os.replace(tmp, path)


# Left as they are: a missing or unreadable file (or no memory) is no damage. Damaged
# data raises many types (BadZipFile, KeyError, struct.error, AttributeError from
# the deserializer, ...): every other exception means a damaged file.
_PASS_THROUGH = (FileNotFoundError, IsADirectoryError, PermissionError, MemoryError)


def _damaged(path: str, error: BaseException) -> ValueError:
  return ValueError(
    f'{path} is not a shopstyle_jax exported stylizer or is damaged '
    f'({type(error).__name__}: {error}); export it again with python -m '
    'shopstyle_jax.export.'
  )


def read_metadata(path: str) -> dict[str, Any]:
  """The metadata of an exported stylizer file, without loading the function.
  Raises ValueError for a file that is not one, or is damaged."""
  try:
    with zipfile.ZipFile(path) as zf:
      metadata = json.loads(zf.read(_METADATA))
  except _PASS_THROUGH:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise _damaged(path, e) from e
  if not isinstance(metadata, dict) or metadata.get('format') != FORMAT:
    raise ValueError(
      f'{path} is not a shopstyle_jax exported stylizer (its metadata.json is '
      'not one written by python -m shopstyle_jax.export).'
    )
  if metadata.get('version', 0) > VERSION:
    raise ValueError(
      f'{path} has format version {metadata["version"]}; this shopstyle_jax '
      f'reads up to {VERSION}: upgrade it.'
    )
  return metadata


def load_exported(path: str) -> ExportedStylizer:
  """Loads a file written by `python -m shopstyle_jax.export` as a stylizer.

  Needs only jax and numpy. The result is called like `load_stylizer`'s:
  `stylizer(photo, brightness=0.1, contrast=1.2)` or `stylizer(photo, options)`;
  its `metadata` holds the step, style and model settings. Files without the
  tiling functions (written before tiling, or multi-style) stylize photos up to
  `tile_threshold` only. Raises
  FileNotFoundError, or ValueError for a file that is not one or is damaged.
  """
  metadata = read_metadata(path)
  try:
    with zipfile.ZipFile(path) as zf:
      exported = jax_export.deserialize(bytearray(zf.read(_FUNCTION)))
      tiling = None
      if _NORM_STATS in zf.namelist():
        tiling = tuple(
          jax_export.deserialize(bytearray(zf.read(name)))
          for name in (_NORM_STATS, _WITH_NORM_STATS)
        )
      weights = [
        np.load(io.BytesIO(zf.read(f'{_WEIGHTS}{i:04d}.npy')), allow_pickle=False)
        for i in range(int(metadata['num_weights']))
      ]
    inputs = 2 if len(metadata.get('styles') or ()) > 1 else 1  # (style,) images
    expected = [tuple(a.shape) for a in exported.in_avals[:-inputs]]
    if [w.shape for w in weights] != expected:
      raise ValueError(
        f"its {len(weights)} weights do not fit the function's {len(expected)} inputs"
      )
  except _PASS_THROUGH:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise _damaged(path, e) from e
  return ExportedStylizer(exported, weights, metadata, tiling)


def check_output(path: str) -> None:
  """Creates `path`'s folder and checks that a file can be written there, before
  the slow export; ValueError saying why not."""
  folder = os.path.dirname(os.path.abspath(path))
  if os.path.isdir(path):
    raise ValueError(f'{path} is a folder; name the file to write, e.g. {path}/stylizer.bin.')
  probe = os.path.join(folder, f'.write_test.{os.getpid()}')
  try:
    os.makedirs(folder, exist_ok=True)
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise ValueError(
      f'Cannot write {path} ({e.strerror or e}): choose another --output or fix '
      "the folder's permissions."
    ) from e


def stylizer_metadata(stylizer: Any, workdir: str, precision: str) -> dict[str, Any]:
  """What `save_exported` records about a `Stylizer` from `workdir`."""
  config = stylizer.config
  return {
    'factor': stylizer.factor,
    'step': stylizer.step,
    'workdir': os.path.abspath(workdir),
    'style': config.data.style,
    'styles': list(stylizer.styles),
    'dataset': config.data.get('folder') or config.data.name,
    'model': config.model.to_dict(),
    'image_size': config.image_size,
    'precision': precision,
    'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
  }


def verify(path: str, stylizer: Any) -> int:
  """Reloads the file at `path` and returns the largest difference, in levels,
  between it and `stylizer` on a random photo, in each of its styles (0: the
  same pixels)."""
  photo = np.random.RandomState(0).randint(
    0, 256, (stylizer.factor + 3, stylizer.factor + 5, 3), np.uint8
  )
  exported = load_exported(path)
  return max(
    int(np.abs(exported(photo, style=s).astype(int) - stylizer(photo, style=s)).max())
    for s in stylizer.styles
  )
