"""The workdir's `config.json`: the one place that writes it and reads it back.

Training writes the resolved config plus facts about the run (`write_config`),
refusing a workdir trained with other `config.model.*` values, whose
checkpoints would not fit. Inference, evaluation and export read it back
(`load_config`) over today's defaults (configs/default.py, in a source
checkout), so that keys added since the run take their default values, in a
form `--config.*` flags can override.
"""

import importlib.util
import json
import os
from typing import Any

import ml_collections
from ml_collections import config_dict

CONFIG_FILE = 'config.json'
# Keys that fix the parameters' shapes: a workdir's checkpoints only fit a
# config that agrees on all of them.
MODEL_SHAPE_PREFIX = 'model.'
# Each method keeps other networks in its state; each style has its rows of style
# tables; CUT's second discriminator exists when sharp_disc_weight > 0.
MODEL_SHAPE_KEYS = ('method', 'data.styles', 'loss.sharp_disc_weight')
# Keys that pick what a run trains on: a resumed run that changes them switches data.
DATA_SOURCE_KEYS = ('data.name', 'data.folder', 'data.style', 'data.style_folder', 'data.unpaired')
_DEFAULT_CONFIG = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs', 'default.py'
)


def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILE)


def is_workdir(workdir: str) -> bool:
  """Whether `workdir` holds a config.json (training has started there)."""
  return os.path.isfile(config_path(workdir))


def flatten(d: dict, prefix: str = '') -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}, tuples as lists (as in JSON)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  return out


def _is_model_shape_key(key: str) -> bool:
  return key.startswith(MODEL_SHAPE_PREFIX) or key in MODEL_SHAPE_KEYS


def model_shape_differences(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
  """'config.key: saved -> new' for each model-shape key that differs. A key added
  since the run counts with today's default (a run from before config.method
  was 'paired')."""
  defaults = flatten(json.loads(default_config().to_json_best_effort()))
  old = {k: v for k, v in {**defaults, **flatten(saved)}.items() if _is_model_shape_key(k)}
  new = {
    k: v
    for k, v in flatten(json.loads(config.to_json_best_effort())).items()
    if _is_model_shape_key(k)
  }
  return [
    f'config.{k}: {old.get(k)!r} -> {new.get(k)!r}'
    for k in sorted(set(old) | set(new))
    if old.get(k) != new.get(k)
  ]


def data_source_differences(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
  """'key: saved -> new' for each of DATA_SOURCE_KEYS that differs (folders
  compared as real paths)."""
  old = flatten(saved)
  new = flatten(json.loads(config.to_json_best_effort()))

  def same(key, a, b):
    if (key in ('data.folder', 'data.style_folder') or '.style_folders.' in key) and a and b:
      a, b = (os.path.realpath(os.path.expanduser(x)) for x in (a, b))
    return a == b

  # config.data.style_folders flattens to one key per style.
  per_style = sorted(k for k in set(old) | set(new) if k.startswith('data.style_folders.'))
  return [
    f'config.{k}: {old.get(k)!r} -> {new.get(k)!r}'
    for k in DATA_SOURCE_KEYS + tuple(per_style)
    if not same(k, old.get(k), new.get(k))
  ]


def check_model_shapes(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses (ValueError) a workdir whose config.json has other model shapes;
  reads only, so every process can check before anything is written."""
  path = config_path(workdir)
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    diffs = model_shape_differences(saved, config)
    if diffs:
      raise ValueError(
        f'{workdir} holds a run with different model shapes ({"; ".join(diffs)}). Use a new '
        '--workdir, or the same model settings to resume (config.init_from=<that workdir> '
        'fine-tunes from it).'
      )


def write_config(config: ml_collections.ConfigDict, workdir: str, extra: dict) -> None:
  """Writes `<workdir>/config.json` (the resolved config plus run facts in
  `extra`) atomically, refusing (ValueError) a workdir that was trained with
  other model shapes. Training writes it once the checkpoints, if any, have
  been restored: they fit the config."""
  check_model_shapes(config, workdir)
  path = config_path(workdir)
  data = json.loads(config.to_json_best_effort())
  data.update(extra)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config exactly as the run wrote it; FileNotFoundError saying what to do
  when `workdir` is no workdir."""
  path = config_path(workdir)
  if not os.path.exists(path):
    missing = path if os.path.isdir(workdir) else workdir
    raise FileNotFoundError(
      f'{missing} not found: {workdir!r} is not a shopstyle_jax workdir (train into it '
      'first with python main.py --config=... --workdir=...).'
    )
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except (ValueError, TypeError) as e:
    raise ValueError(f'{path} is damaged ({e}); it is not the config.json training writes.') from e


def default_config() -> ml_collections.ConfigDict:
  """configs/default.py's config, when this is a source checkout; else empty."""
  if not os.path.exists(_DEFAULT_CONFIG):
    return ml_collections.ConfigDict()
  spec = importlib.util.spec_from_file_location('_shopstyle_jax_default_config', _DEFAULT_CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def overridable(config: Any) -> ml_collections.ConfigDict:
  """A config loaded from JSON, made overridable by ml_collections' config flags:
  unset fields become untyped placeholders and lists tuples."""
  if isinstance(config, (dict, ml_collections.ConfigDict)):
    items = config.items()
    return ml_collections.ConfigDict({k: overridable(v) for k, v in items})
  if config is None:
    return config_dict.placeholder(object)
  if isinstance(config, list):
    return tuple(overridable(v) for v in config)
  return config


def _merge(base: ml_collections.ConfigDict, loaded: dict[str, Any]) -> None:
  for key, value in loaded.items():
    if key in base and isinstance(base[key], ml_collections.ConfigDict) and isinstance(value, dict):
      _merge(base[key], value)
      continue
    if key in base and value is None and base[key] is not None:
      value = config_dict.placeholder(type(base[key]))
    try:
      base[key] = overridable(value)
    except TypeError:  # The default's type changed since the run: the run's wins.
      del base[key]
      base[key] = overridable(value)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """A workdir's config.json over today's defaults (`default_config`): keys
  added since the run have their default values; ready for `--config.*`
  overrides."""
  config = default_config()
  _merge(config, read_config(workdir).to_dict())
  return config
