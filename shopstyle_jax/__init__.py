"""shopstyle_jax: product photos -> styled images with a conditional GAN (JAX/Flax).

The public face is inference: `stylize_fn` (jitted, pure), `load_stylizer`
(a trained workdir -> a callable on uint8 photos of any size),
`load_exported` (the same callable from a file written by
`python -m shopstyle_jax.export`, needing only jax and numpy) and
`StylizeOptions` (what either callable may be asked: brightness, contrast,
max_side, background, preserve_color, strength). They are imported on first use, so `import shopstyle_jax` stays
light.
"""

import importlib
from typing import Any

_LAZY = {
  'load_stylizer': 'shopstyle_jax.inference',
  'stylize_fn': 'shopstyle_jax.inference',
  'load_exported': 'shopstyle_jax.exporting',
  'StylizeOptions': 'shopstyle_jax.options',
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(list(globals()) + __all__)
