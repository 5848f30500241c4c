"""Training methods: one pure train step over its own state pytree each.

`config.method` names one of METHODS; `get(name)` returns its module, which
follows the contract in `methods/common.py` (create_state, make_step,
build_models).
"""

import importlib
from types import ModuleType

METHODS = ('paired', 'cyclegan', 'cut', 'fastcut', 'neural_style')
# fastcut is CUT with other weights and flip-equivariance: the same module.
_MODULES = {
  'paired': 'paired',
  'cyclegan': 'cyclegan',
  'cut': 'cut',
  'fastcut': 'cut',
  'neural_style': 'neural_style',
}


def get(name: str) -> ModuleType:
  """The module implementing `config.method=name`."""
  if name not in _MODULES:
    raise ValueError(f'config.method={name!r} is not allowed; choose one of {METHODS}.')
  return importlib.import_module(f'shopstyle_jax.methods.{_MODULES[name]}')
