"""`StylizeOptions`: what a caller may ask of a stylizer, defined once.

The Python API (`stylizer(photo, options=...)` or keyword arguments), the batch
command line, the exported stylizer and, later, the web app take these same
options, validated here when they are built: a bad value fails before any model
loads. Plain Python only, so the exported stylizer (jax and numpy) and a
command line's flag checks can import it at no cost.
"""

import dataclasses
import math
import numbers
import typing
from typing import Any, Literal, Optional

# The `background` choices (a Literal, so that the web app offers them as a list).
Background = Literal['style', 'keep', 'white', 'transparent']
BACKGROUNDS = typing.get_args(Background)

# The default `tile_threshold`: 4 megapixels (2048 x 2048), a fixed number.
TILE_THRESHOLD = 2048 * 2048
# Tiling takes the instance-norm statistics from the whole frame shrunk to at
# most this many pixels (fixed, whatever `tile_threshold` is): 4 megapixels.
TILE_STATS_PIXELS = 2048 * 2048


@dataclasses.dataclass(frozen=True)
class StylizeOptions:
  """How a photo is stylized; the defaults leave the network's output as it is.

  A photo goes through these steps, in this order:

    1. decode: the file is read upright (`images.read_image`), converted to
       sRGB when it embeds another ICC profile, then made uint8 RGB; with a
       `background` other than 'style', its alpha (if any) is kept as the
       product mask and its colour composited over white;
    2. mask (only with a `background` other than 'style'): the mask given (the
       shop's own, `--mask_dir`), else the photo's alpha, else the studio
       backdrop segmented (`masks.segment_product`);
    3. resize for `max_side`: a photo whose longer side exceeds it is shrunk to it;
    4. pad by reflection to the generator's multiple;
    5. the network (`inference.stylize_fn`), in [-1, 1]; a frame of more than
       `tile_threshold` pixels (after step 3) is stylized in overlapping tiles
       of `tile` pixels, blended with raised-cosine weights, every tile
       normalised with the instance-norm statistics of one pass over the whole
       frame shrunk to at most `TILE_STATS_PIXELS` (4 megapixels;
       `inference.run_tiled`);
    6. crop the padding off, and resize back to the photo's size before step 3;
    7. colour preservation (`preserve_color`): the output's Lab lightness with
       the photo's a and b;
    8. strength: `photo + strength * (output - photo)` in [-1, 1] (the photo
       at its own size, before step 3);
    9. brightness and contrast: `x * contrast + brightness` in [-1, 1];
    10. background: 'keep' puts the photo's own pixels back outside the mask,
       'white' white, 'transparent' adds the mask as alpha (an RGBA photo's
       own alpha, exactly); 'keep' on an RGBA photo keeps its alpha too;
    11. quantise to uint8 (clipped, rounded to nearest).

  With the defaults, an untagged or sRGB photo of at most `tile_threshold`
  pixels gets the pixels it got before these options existed.

  Attributes:
    brightness: added in [-1, 1] after the network (0.1 is about 13 levels
      lighter); a finite number in [-1, 1].
    contrast: factor around mid-grey after the network (1 = unchanged, 0 = flat
      grey); a finite number >= 0.
    max_side: stylize photos whose longer side exceeds this many pixels at that
      size (faster), and return them at their own size; None (default) for no limit.
    background: 'style' (default: the whole frame stylized), 'keep' (the
      photo's own pixels outside the product), 'white', or 'transparent' (RGBA
      out, the product opaque; needs a format with alpha: PNG, WebP, TIFF).
    preserve_color: keep the photo's colours and take only the style's
      lightness (luminance transfer in CIE Lab, Gatys et al. 2016).
    strength: how much of the style, blended with the photo on the host (any
      model): 1 (default) the stylized output, 0 the photo, 0.5 halfway; a
      finite number in [0, 1].
    tile: the side of the tiles, in pixels (rounded up to the generator's
      multiple), for frames above `tile_threshold`; a positive integer.
    tile_threshold: frames (after `max_side`) of more pixels than this are
      stylized in tiles, in bounded memory; a fixed number (default
      `TILE_THRESHOLD`, 4 megapixels), never the machine's, so the same photo
      gives the same pixels everywhere; None never tiles.
  """

  brightness: float = 0.0
  contrast: float = 1.0
  max_side: Optional[int] = None
  background: Background = 'style'
  preserve_color: bool = False
  strength: float = 1.0
  tile: int = 1024
  tile_threshold: Optional[int] = TILE_THRESHOLD

  def __post_init__(self):
    brightness = _number('brightness', self.brightness)
    if not -1.0 <= brightness <= 1.0:
      raise ValueError(
        f'brightness={brightness} must be in [-1, 1] (it is added to images in '
        '[-1, 1]; 0 = unchanged).'
      )
    contrast = _number('contrast', self.contrast)
    if not contrast >= 0.0:
      raise ValueError(
        f'contrast={contrast} must be >= 0 (a factor around mid-grey; 1 = unchanged).'
      )
    max_side = self.max_side
    if max_side is not None:
      if isinstance(max_side, bool) or not isinstance(max_side, numbers.Integral):
        raise TypeError(f'max_side={max_side!r} must be a positive integer (pixels) or None.')
      max_side = int(max_side)
      if max_side < 1:
        raise ValueError(f'max_side={max_side} must be a positive integer (pixels) or None.')
    if self.background not in BACKGROUNDS:
      raise ValueError(
        f'background={self.background!r} must be one of {", ".join(map(repr, BACKGROUNDS))}.'
      )
    if isinstance(self.preserve_color, str) or self.preserve_color not in (True, False):
      raise TypeError(f'preserve_color={self.preserve_color!r} must be True or False.')
    object.__setattr__(self, 'preserve_color', bool(self.preserve_color))
    strength = _number('strength', self.strength)
    if not 0.0 <= strength <= 1.0:
      raise ValueError(
        f'strength={strength} must be in [0, 1] (1 = the stylized output, 0 = the photo).'
      )
    object.__setattr__(self, 'strength', strength)
    object.__setattr__(self, 'tile', _positive_int('tile', self.tile))
    if self.tile_threshold is not None:
      object.__setattr__(
        self, 'tile_threshold', _positive_int('tile_threshold', self.tile_threshold)
      )
    # Plain Python values, so that equal options compare and hash equal.
    object.__setattr__(self, 'brightness', brightness)
    object.__setattr__(self, 'contrast', contrast)
    object.__setattr__(self, 'max_side', max_side)

  @property
  def blends(self) -> bool:
    """Whether step 8 (strength) changes anything."""
    return self.strength != 1.0

  @property
  def adjusts(self) -> bool:
    """Whether step 9 changes anything."""
    return self.brightness != 0.0 or self.contrast != 1.0

  @property
  def needs_mask(self) -> bool:
    """Whether step 2 runs: a background other than 'style'."""
    return self.background != 'style'


FIELDS = tuple(f.name for f in dataclasses.fields(StylizeOptions))


def resolve(options: Optional[StylizeOptions] = None, **overrides: Any) -> StylizeOptions:
  """`options` (default: the defaults) with the fields given as keywords replaced:
  what `stylizer(photo, options, brightness=...)` runs with."""
  if options is None:
    options = StylizeOptions()
  elif not isinstance(options, StylizeOptions):
    raise TypeError(f'options={options!r} must be a StylizeOptions.')
  unknown = sorted(set(overrides) - set(FIELDS))
  if unknown:
    raise TypeError(
      f'Unknown stylize option(s) {", ".join(unknown)}; the options are {", ".join(FIELDS)}.'
    )
  return dataclasses.replace(options, **overrides) if overrides else options


def _positive_int(name: str, value: Any) -> int:
  """`value` as a positive int; TypeError / ValueError saying what is wanted."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f'{name}={value!r} must be a positive integer (pixels).')
  if value < 1:
    raise ValueError(f'{name}={value} must be a positive integer (pixels).')
  return int(value)


def _number(name: str, value: Any) -> float:
  """`value` as a finite float; TypeError for what is not a real number."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f'{name}={value!r} must be a number.')
  value = float(value)
  if not math.isfinite(value):
    raise ValueError(f'{name}={value} must be a finite number.')
  return value
