"""Style names and mixes: which styles a run holds, and a `style=` argument as
the [N, S] weight array a multi-style generator reads.

Plain Python and NumPy only: the exported stylizer, the command lines' flag
checks and the config checks import it at no cost.
"""

import math
import numbers
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

# The extra style trained on (photo, photo): mixing toward it dials a style down.
IDENTITY = 'identity'

# What `style=` may be: a style's name, or {name: weight} with weights summing to 1.
Style = Union[str, Mapping[str, float]]


def config_styles(config: Any) -> tuple[str, ...]:
  """The styles a run trains, in the order of its style rows: `config.data.styles`,
  or `(config.data.style,)` when that is unset. ValueError when both are set and
  disagree (`config.data.style`, the default style, must be one of the styles)."""
  data = config.data
  styles = data.get('styles')
  if not styles:
    return (data.style,)
  if isinstance(styles, str):
    styles = (styles,)
  styles = tuple(styles)
  if len(set(styles)) != len(styles):
    raise ValueError(f'config.data.styles={styles} names a style twice.')
  if data.style not in styles:
    raise ValueError(
      f'config.data.style={data.style!r} is not one of config.data.styles={styles}: '
      'config.data.style is the default style of a multi-style run, so set both to '
      f'agree (e.g. --config.data.style={styles[0]}) or leave config.data.styles unset '
      'for a single-style run.'
    )
  return styles


def num_styles(config: Any) -> int:
  """How many styles the run's networks hold (1: the single-style networks)."""
  return len(config_styles(config))


def _check_name(name: Any, styles: Sequence[str]) -> str:
  if not isinstance(name, str) or name not in styles:
    raise ValueError(
      f'Unknown style {name!r}; this model has the styles {", ".join(styles)}. Pass one '
      "of them (style='" + styles[0] + "') or a mix of them as {name: weight} with "
      'weights summing to 1.'
    )
  return name


def style_vector(style: Optional[Style], styles: Sequence[str], default: str) -> np.ndarray:
  """`style` (a name, a {name: weight} mix, or None for `default`) -> float32 [S]
  weights over `styles`. ValueError for an unknown name, negative weights, or
  weights that do not sum to 1."""
  styles = tuple(styles)
  if style is None:
    style = default
  out = np.zeros(len(styles), np.float32)
  if isinstance(style, str):
    out[styles.index(_check_name(style, styles))] = 1.0
    return out
  if not isinstance(style, Mapping) or not style:
    raise TypeError(
      f'style={style!r} must be a style name or a non-empty {{name: weight}} mix; '
      f'the styles are {", ".join(styles)}.'
    )
  for name, weight in style.items():
    _check_name(name, styles)
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
      raise TypeError(f'style weight {name!r}: {weight!r} must be a number.')
    if not math.isfinite(weight) or weight < 0:
      raise ValueError(f'style weight {name!r}: {weight} must be a finite number >= 0.')
    out[styles.index(name)] = float(weight)
  total = float(sum(float(w) for w in style.values()))
  if abs(total - 1.0) > 1e-4:
    raise ValueError(
      f'The style weights {dict(style)} sum to {total:g}; they must sum to 1 (a mix '
      "blends the styles, e.g. {'oil': 0.5, 'watercolor': 0.5})."
    )
  return out


def style_weights(
  style: Optional[Style], styles: Sequence[str], default: str, n: int
) -> np.ndarray:
  """`style_vector` for each of n images: float32 [n, S]."""
  return np.tile(style_vector(style, styles, default)[None], (n, 1))


def parse(text: Optional[str]) -> Optional[Style]:
  """A command line's --style: 'oil', or 'oil:0.5,watercolor:0.5' (a mix); None or
  '' for the model's default style."""
  if not text:
    return None
  if ':' not in text:
    return text.strip()
  mix = {}
  for part in text.split(','):
    name, _, weight = part.partition(':')
    try:
      mix[name.strip()] = float(weight)
    except ValueError:
      raise ValueError(
        f'--style={text!r}: {part!r} is not name:weight (e.g. oil:0.5,watercolor:0.5).'
      ) from None
  return mix
