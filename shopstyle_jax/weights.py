"""VGG19 weights for the perceptual loss: download, cache and Keras h5 conversion.

`config.loss.vgg_weights` picks the weights (see `load_vgg19_params`):
  'imagenet': Keras' ImageNet VGG19 "notop" file, downloaded once into the user
      cache and checked against the md5 Keras publishes. Without network and
      cache this falls back, with a loud warning, to seeded random weights.
  a path: a Keras VGG19 notop .h5 file (e.g. that file, copied by hand).
  'random': seeded random (He-normal) weights.

The Keras file stores, per conv layer, a group `block{b}_conv{i}` whose
`weight_names` attribute lists its datasets. Keras 1 era files (the published
ImageNet file among them) name them `block1_conv1_W_1:0`, `block1_conv1_b_1:0`
directly in the group; Keras 2 writes `block1_conv1/kernel:0`, `.../bias:0`
(i.e. datasets at `block1_conv1/block1_conv1/kernel:0`). Both hold TF-layout
kernels [3, 3, in, out] (HWIO), which is Flax's layout too: conversion is a
pure name map, told apart by rank (4-D kernel, 1-D bias).
"""

import hashlib
import http.client
import os
import pathlib
import tempfile
import urllib.request
from typing import List, Optional, Sequence, Tuple, Union

import h5py
import jax.numpy as jnp
import numpy as np
from absl import logging

from shopstyle_jax import runtime
from shopstyle_jax.models import vgg

PathLike = Union[str, os.PathLike]

KERAS_VGG19_NOTOP_FILENAME = 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
KERAS_VGG19_NOTOP_URL = (
  'https://storage.googleapis.com/tensorflow/keras-applications/vgg19/' + KERAS_VGG19_NOTOP_FILENAME
)
# keras/applications/vgg19.py: get_file(..., WEIGHTS_PATH_NO_TOP, file_hash=...).
KERAS_VGG19_NOTOP_MD5 = '253f8cb515780f3b799900260a226db6'

ALLOWED_SPECS = ("'imagenet'", "'random'", 'a path to a Keras VGG19 notop .h5 file')

_HOW_TO = (
  f'To use the ImageNet weights offline, download {KERAS_VGG19_NOTOP_URL} on a '
  f'machine with internet (md5 {KERAS_VGG19_NOTOP_MD5}) and pass '
  '--config.loss.vgg_weights=/path/to/'
  + KERAS_VGG19_NOTOP_FILENAME
  + ' (or --config.loss.vgg_weights=random for random weights).'
)

# Errors that mean "could not fetch the file" (URLError, timeouts and SSL errors
# are OSErrors; a truncated HTTP body is an HTTPException; a bad md5 ValueError).
_FETCH_ERRORS = (OSError, ValueError, http.client.HTTPException)


def default_cache_dir() -> pathlib.Path:
  """Where the weights are cached by default: `runtime.cache_root()`."""
  return pathlib.Path(runtime.cache_root())


def md5sum(path: PathLike) -> str:
  """Hex md5 of a file, read in 1 MiB chunks."""
  digest = hashlib.md5()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def download_file(
  url: str, dest: PathLike, md5: Optional[str] = None, timeout: float = 60.0
) -> None:
  """Downloads `url` to `dest` atomically: a temp file in dest's folder, renamed.

  Concurrent callers (several processes of one job) each write their own temp
  file, so `dest` is never seen half written. Raises OSError on network or disk
  failure, ValueError if `md5` is given and the download does not match.
  """
  dest = pathlib.Path(dest)
  dest.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + '.', suffix='.part')
  try:
    with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout) as response:
      while chunk := response.read(1 << 20):
        out.write(chunk)
    if md5 is not None and (got := md5sum(tmp)) != md5:
      raise ValueError(f'Downloaded {url} has md5 {got}, expected {md5}.')
    os.replace(tmp, dest)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def fetch_imagenet_weights(cache_dir: Optional[PathLike] = None) -> pathlib.Path:
  """Path of the verified Keras ImageNet VGG19 notop file, downloading it if needed.

  Looks in `cache_dir` (default `default_cache_dir()`) and, when `cache_dir` is
  not given, also in Keras' own cache (~/.keras/models). A cached file with the
  wrong md5 is downloaded again. Raises OSError/ValueError when that fails.
  """
  explicit = cache_dir is not None
  path = pathlib.Path(cache_dir if explicit else default_cache_dir()).expanduser()
  path = path / KERAS_VGG19_NOTOP_FILENAME
  candidates = [path]
  if not explicit:
    keras_home = os.environ.get('KERAS_HOME') or os.path.join('~', '.keras')
    candidates.append(pathlib.Path(keras_home).expanduser() / 'models' / KERAS_VGG19_NOTOP_FILENAME)
  for candidate in candidates:
    if candidate.is_file():
      got = md5sum(candidate)
      if got == KERAS_VGG19_NOTOP_MD5:
        return candidate
      logging.warning(
        'Cached VGG19 weights %s have md5 %s, expected %s; ignoring them.',
        candidate,
        got,
        KERAS_VGG19_NOTOP_MD5,
      )
  logging.info(
    'Downloading the ImageNet VGG19 weights (80 MB) from %s to %s.', KERAS_VGG19_NOTOP_URL, path
  )
  download_file(KERAS_VGG19_NOTOP_URL, path, md5=KERAS_VGG19_NOTOP_MD5)
  return path


def _attr_strings(group: h5py.Group, name: str) -> List[str]:
  """String list attribute, also in Keras' chunked form (name0, name1, ...)."""
  if name in group.attrs:
    chunks = [group.attrs[name]]
  else:
    chunks, i = [], 0
    while f'{name}{i}' in group.attrs:
      chunks.append(group.attrs[f'{name}{i}'])
      i += 1
  values = []
  for chunk in chunks:
    for item in np.atleast_1d(chunk):  # Layers without weights store an empty float array.
      if isinstance(item, bytes):
        values.append(item.decode('utf8'))
      elif isinstance(item, str):
        values.append(item)
  return values


def _conv_datasets(group: h5py.Group) -> Tuple[h5py.Dataset, h5py.Dataset]:
  """(kernel, bias) datasets of a Keras conv layer group, whatever their names.

  Follows `weight_names` as Keras does (tolerating a missing or extra ':0'),
  else takes every dataset below the group; the 4-D one is the kernel and the
  1-D one the bias.
  """
  datasets = []
  for name in _attr_strings(group, 'weight_names'):
    variants = (name, name[:-2]) if name.endswith(':0') else (name, name + ':0')
    found = [group[v] for v in variants if isinstance(group.get(v), h5py.Dataset)]
    if not found:
      datasets = []
      break
    datasets.append(found[0])
  if not datasets:
    group.visititems(lambda _, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
  kernels = [d for d in datasets if d.ndim == 4]
  biases = [d for d in datasets if d.ndim == 1]
  if len(kernels) != 1 or len(biases) != 1:
    found = ', '.join(f'{d.name} {d.shape}' for d in datasets) or 'no datasets'
    raise ValueError(f'expected one 4-D kernel and one 1-D bias, found {found}')
  return kernels[0], biases[0]


def read_keras_vgg19_h5(path: PathLike, layers: Sequence[str]) -> vgg.Params:
  """Flax params (up to the deepest of `layers`) from a Keras VGG19 notop h5 file.

  All 16 conv layers are checked for presence and shape (so a VGG16 or
  Theano-layout file is refused even if only early layers are needed); only the
  needed ones are read. Raises FileNotFoundError / ValueError naming the file.
  """
  layers = vgg.check_layers(layers)
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f'VGG19 weights file {path} does not exist. {_HOW_TO}')
  if not path.is_file():
    raise ValueError(f'VGG19 weights path {path} is not a file. {_HOW_TO}')
  if not h5py.is_hdf5(path):
    raise ValueError(
      f'VGG19 weights file {path} is not an HDF5 (.h5) file; expected the Keras '
      f'VGG19 notop weights. {_HOW_TO}'
    )
  needed = set(vgg.conv_names_for(layers))
  params, problems = {}, []
  try:
    with h5py.File(path, 'r') as f:
      # Weights-only files keep layers at the root; whole-model files under model_weights.
      root = (
        f['model_weights']
        if ('layer_names' not in f.attrs and isinstance(f.get('model_weights'), h5py.Group))
        else f
      )
      for name, shapes in vgg.param_shapes(vgg.VGG_LAYERS).items():
        group = root.get(name)
        if not isinstance(group, h5py.Group):
          problems.append(f'no layer group {name!r}')
          continue
        try:
          kernel, bias = _conv_datasets(group)
        except ValueError as e:
          problems.append(f'{name}: {e}')
          continue
        if kernel.shape != shapes['kernel'] or bias.shape != shapes['bias']:
          problems.append(
            f'{name}: kernel {kernel.shape} and bias {bias.shape}, expected '
            f'{shapes["kernel"]} (HWIO) and {shapes["bias"]}'
          )
        elif name in needed:
          params[name] = {
            'kernel': np.asarray(kernel, np.float32),
            'bias': np.asarray(bias, np.float32),
          }
  except OSError as e:  # Truncated or corrupt HDF5.
    raise ValueError(f'Could not read VGG19 weights file {path}: {e}. {_HOW_TO}') from e
  if problems:
    shown = '; '.join(problems[:4]) + (
      f'; ... ({len(problems)} problems)' if len(problems) > 4 else ''
    )
    raise ValueError(f'{path} is not a Keras VGG19 notop weights file ({shown}). {_HOW_TO}')
  return {name: {k: jnp.asarray(v) for k, v in p.items()} for name, p in params.items()}


def _looks_like_path(spec: str) -> bool:
  """Whether an unknown spec was meant as a file (else it is a misspelt keyword)."""
  return (
    os.sep in spec
    or '/' in spec
    or spec.startswith('~')
    or os.path.exists(spec)
    or os.path.splitext(spec)[1] != ''
  )


def _fallback_warning(seed: int, reason: str, cache_dir: Optional[PathLike]) -> None:
  """Logs the can't-miss banner for running without the ImageNet weights."""
  target = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
  bar = '=' * 78
  logging.warning(
    '\n%s\n'
    'VGG19 IMAGENET WEIGHTS UNAVAILABLE -- THE PERCEPTUAL LOSS USES RANDOM WEIGHTS (seed %d).\n'
    'Could not get %s:\n  %s\n'
    'Training runs, but the VGG loss is not the ImageNet one and results differ.\n'
    'Fix: download that file on a machine with internet (md5 %s), then\n'
    '  put it at %s, or\n'
    '  pass --config.loss.vgg_weights=/path/to/%s.\n'
    'To use random VGG weights on purpose (no warning): --config.loss.vgg_weights=random.\n'
    '%s',
    bar,
    seed,
    KERAS_VGG19_NOTOP_URL,
    reason,
    KERAS_VGG19_NOTOP_MD5,
    target / KERAS_VGG19_NOTOP_FILENAME,
    KERAS_VGG19_NOTOP_FILENAME,
    bar,
  )


def load_vgg19_params(
  spec: PathLike,
  layers: Sequence[str],
  seed: int = 0,
  cache_dir: Optional[PathLike] = None,
  allow_random_fallback: bool = True,
) -> Tuple[vgg.Params, str]:
  """VGG19 params for `layers` (cut after the deepest) and what they really are.

  Args:
    spec: 'imagenet', 'random' or a path to a Keras VGG19 notop .h5 file.
    layers: the VGG19 ReLU outputs the loss uses (`vgg.VGG_LAYERS` names).
    seed: seed of the random weights ('random', or the 'imagenet' fallback).
    cache_dir: download cache for 'imagenet'; default `default_cache_dir()`.
    allow_random_fallback: if False, 'imagenet' raises instead of falling back.

  Returns:
    (params, description): float32 params to apply as
    `vgg.VGG19(layers).apply({'params': params}, images)`, and a one-line
    description of the weights actually used, for logs and run metadata.

  Raises:
    ValueError: unknown spec, or a file that is not a Keras VGG19 notop h5.
    FileNotFoundError: a path that does not exist.
    OSError: 'imagenet' unavailable and allow_random_fallback=False.
  """
  layers = vgg.check_layers(layers)
  if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
    raise ValueError(f'Unknown VGG weights {spec!r}; allowed: {", ".join(ALLOWED_SPECS)}.')
  spec = os.fspath(spec)
  if spec == 'random':
    return vgg.init_random_params(layers, seed), f'random (seed {seed}, He-normal)'
  if spec == 'imagenet':
    try:
      path = fetch_imagenet_weights(cache_dir)
    except _FETCH_ERRORS as e:
      if not allow_random_fallback:
        raise
      reason = f'{type(e).__name__}: {e}'
      _fallback_warning(seed, reason, cache_dir)
      return (
        vgg.init_random_params(layers, seed),
        f'random (seed {seed}) -- ImageNet weights unavailable: {reason}',
      )
    params = read_keras_vgg19_h5(path, layers)
    return params, f'imagenet (Keras VGG19 notop, md5 {KERAS_VGG19_NOTOP_MD5}, {path})'
  if not _looks_like_path(spec):
    raise ValueError(f'Unknown VGG weights {spec!r}; allowed: {", ".join(ALLOWED_SPECS)}.')
  if spec.endswith(('.pth', '.pt')):
    raise ValueError(
      f'VGG19 weights file {spec} looks like a PyTorch checkpoint, which is not '
      f'supported; use the Keras .h5 file. {_HOW_TO}'
    )
  params = read_keras_vgg19_h5(spec, layers)
  path = pathlib.Path(spec).expanduser().resolve()
  got = md5sum(path)
  if got == KERAS_VGG19_NOTOP_MD5:
    description = f'imagenet (Keras VGG19 notop, md5 {got}, {path})'
  else:
    description = (
      f'file {path} (Keras VGG19 notop layout; md5 {got} is not the published '
      f"ImageNet file's {KERAS_VGG19_NOTOP_MD5}: converted or fine-tuned weights?)"
    )
    logging.warning(
      'VGG19 weights %s: md5 %s differs from the published ImageNet file (%s); '
      'using them because their layout is right.',
      path,
      got,
      KERAS_VGG19_NOTOP_MD5,
    )
  return params, description
