"""The one image stack, shared by training, inference and export.

Images live in three forms: uint8 [0, 255] on disk and in user code, float32
[-1, 1] for the networks, and float32 [0, 1] for metrics. Every image file or
archive member the package reads is decoded by `read_image`, every output file
is written by `write_image`, every stored record is encoded by `encode_png`,
every resize goes through `resize` and every [-1, 1] <-> uint8 conversion
through `uint8_to_model` and `model_to_uint8`, so that a file gives the same
pixels to training and to the stylizers. Only NumPy is needed at import
(Pillow and OpenCV are imported where files or resizing need them), so
exported stylizers load with jax and numpy alone.
"""

import dataclasses
import functools
import io
import os
import secrets
from typing import Iterable, Optional

import numpy as np


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """Returns uint8 [..., H, W, 3]: grayscale expanded, alpha dropped, 16-bit and
  float [0, 1] images converted. Raises ValueError on what cannot be an image."""
  image = np.asarray(image)
  if image.ndim == 2 or (image.ndim >= 3 and image.shape[-1] in (1, 2) and image.ndim in (3, 4)):
    if image.ndim == 2:
      image = image[..., None]
    image = np.repeat(image[..., :1], 3, axis=-1)  # gray (+alpha) -> RGB
  if image.ndim not in (3, 4) or image.shape[-1] not in (3, 4):
    raise ValueError(
      f'Expected an image [H,W], [H,W,1|3|4] or a batch [N,H,W,3|4]; got shape {image.shape}.'
    )
  image = image[..., :3]
  if image.shape[-2] == 0 or image.shape[-3] == 0:
    raise ValueError(f'Image has zero size: shape {image.shape}.')
  if image.dtype == np.uint8:
    return image
  if image.dtype == np.uint16:
    # Exact rounding to nearest (x / 257 is never halfway): the one 16 -> 8 bit conversion.
    return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
  if np.issubdtype(image.dtype, np.floating):
    if not np.all(np.isfinite(image)):
      raise ValueError('Float image contains NaN or Inf.')
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
      raise ValueError(
        f'Float images must be in [0, 1] (got values in [{lo:.3g}, {hi:.3g}]); '
        'pass uint8 [0, 255] or scale to [0, 1].'
      )
    return np.round(image * 255.0).astype(np.uint8)
  if np.issubdtype(image.dtype, np.integer) or image.dtype == bool:
    raise ValueError(f'Unsupported integer image dtype {image.dtype}; pass uint8 or uint16.')
  raise ValueError(f'Unsupported image dtype {image.dtype}.')


# The three conversions below use only array methods, so they work on NumPy and
# JAX arrays alike (traced code included): the one definition of the mapping.


def uint8_to_model(image):
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return image.astype(np.float32) / 127.5 - 1.0


def model_to_pixels(image):
  """float [-1, 1] -> float32 [0, 255], neither clipped nor rounded (VGG's input)."""
  return (image.astype(np.float32) + 1.0) * 127.5


def model_to_uint8(image):
  """float [-1, 1] -> uint8, rounding to nearest (values outside are clipped)."""
  image = image if hasattr(image, 'clip') else np.asarray(image)
  return model_to_pixels(image.astype(np.float32).clip(-1.0, 1.0)).round().astype(np.uint8)


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes one image [H, W, C] or a batch [N, H, W, C], uint8 or float32:
  area averaging to shrink (fewer pixels), bicubic to grow."""
  if images.shape[-3:-1] == (height, width):
    return images
  # Imported here: stylizers only need OpenCV for `max_side`, and exported ones may lack it.
  import cv2  # pylint: disable=g-import-not-at-top

  shrink = height * width < images.shape[-3] * images.shape[-2]
  interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC

  def one(image):
    return cv2.resize(image, (width, height), interpolation=interpolation).reshape(
      height, width, -1
    )

  return one(images) if images.ndim == 3 else np.stack([one(im) for im in images])


# --- Image files ----------------------------------------------------------------

# Files a folder walk picks up (case-insensitive); a list of paths may name others.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff')

# Output formats: file extension -> Pillow format.
WRITE_FORMATS = {
  'png': 'PNG',
  'jpg': 'JPEG',
  'jpeg': 'JPEG',
  'webp': 'WEBP',
  'bmp': 'BMP',
  'tif': 'TIFF',
  'tiff': 'TIFF',
}

# Bump when `read_image` decodes some file to other pixels: converted photo
# folders record it, so caches made by an older reader are rebuilt.
READER_VERSION = 3  # 3: photos with a non-sRGB ICC profile are converted to sRGB.

_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'

Source = str | os.PathLike | bytes


class ImageReadError(ValueError):
  """A file that is not a readable (or usable) image; `reason` is the message
  without the file's name."""

  def __init__(self, message: str, reason: Optional[str] = None):
    super().__init__(message)
    self.reason = message if reason is None else reason


def _error(name: str, reason: str) -> ImageReadError:
  return ImageReadError(f'{name}: {reason}', reason)


def _name(source: Source) -> str:
  return '<bytes>' if isinstance(source, bytes) else os.fspath(source)


def _is_16bit_color_png(data: bytes) -> bool:
  """Pillow decodes 16-bit RGB(A) PNGs to 8 bits by truncation; these go to OpenCV."""
  # Signature (8), IHDR length and type (8), width, height (8), bit depth, color type.
  header = data[:26]
  return (
    len(header) == 26
    and header[:8] == _PNG_SIGNATURE
    and header[24] == 16
    and (header[25] in (2, 6))
  )


def _upright(array: np.ndarray, im) -> np.ndarray:
  """`array`, decoded from `im`'s data by OpenCV, turned upright: moved pixel for
  pixel as `ImageOps.exif_transpose` moves those of `im` (a map of pixel indices
  is transposed, as Pillow has no 16-bit colour mode)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top

  orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
  if orientation == 1:
    return array
  height, width = array.shape[:2]
  index = Image.fromarray(np.arange(height * width, dtype=np.int32).reshape(height, width))
  index.getexif()[_EXIF_ORIENTATION] = orientation
  moved = np.asarray(ImageOps.exif_transpose(index))
  return array.reshape(height * width, -1)[moved].reshape(moved.shape + array.shape[2:])


# --- Colour management -----------------------------------------------------------

# An embedded profile whose transform to sRGB moves no colour of this grid by
# more than this many levels is sRGB (whatever its name): its pixels are kept.
_SRGB_TOLERANCE = 1
# The profile modes `read_image` converts from, and the colour space each needs.
_ICC_SPACES = {'RGB': 'RGB', 'RGBA': 'RGB', 'CMYK': 'CMYK'}


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
  """The sRGB profile outputs are tagged with (LittleCMS's built-in, via Pillow)."""
  from PIL import ImageCms  # pylint: disable=g-import-not-at-top

  return ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()


@functools.lru_cache(maxsize=32)
def _srgb_transform(icc: bytes, mode: str):
  """A relative-colorimetric transform from the profile `icc` (for 'RGB' or
  'CMYK' images) to sRGB, or None when the profile is sRGB itself (within
  `_SRGB_TOLERANCE` levels on a 16^3 grid of RGB colours) or does not describe
  `mode`'s colour space (then the pixels are taken as they are)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageCms  # pylint: disable=g-import-not-at-top

  source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
  if source.profile.xcolor_space.strip() != _ICC_SPACES[mode]:
    return None
  srgb = ImageCms.createProfile('sRGB')
  transform = ImageCms.buildTransform(
    source, srgb, mode, 'RGB', renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
  )
  if mode == 'RGB':
    levels = np.linspace(0, 255, 16).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing='ij'), -1).reshape(64, 64, 3)
    moved = np.asarray(ImageCms.applyTransform(Image.fromarray(grid), transform))
    if np.abs(moved.astype(int) - grid).max() <= _SRGB_TOLERANCE:
      return None
  return transform


def to_srgb(im):
  """A decoded Pillow image converted to sRGB when it embeds a non-sRGB ICC
  profile (RGB, RGBA or CMYK; alpha kept as it is), so that an Adobe RGB photo
  does not come out washed out; untagged and sRGB images are returned as they
  are (the same pixels). Other modes (gray, 16-bit) keep their pixels."""
  icc = im.info.get('icc_profile')
  if not icc or im.mode not in _ICC_SPACES:
    return im
  from PIL import ImageCms  # pylint: disable=g-import-not-at-top

  try:
    transform = _srgb_transform(bytes(icc), 'CMYK' if im.mode == 'CMYK' else 'RGB')
  except (OSError, ImageCms.PyCMSError, ValueError):
    return im  # A damaged profile: the pixels as stored, as before profiles were read.
  if transform is None:
    return im
  if im.mode == 'RGBA':  # LittleCMS would not carry the alpha: it is put back as it was.
    rgb = ImageCms.applyTransform(im.convert('RGB'), transform)
    rgb.putalpha(im.getchannel('A'))
    return rgb
  return ImageCms.applyTransform(im, transform)


def _plain_mode(im):
  """`im` in a mode NumPy takes as is: L, LA, RGB, RGBA, I, F or I;16 (alpha kept,
  transparency colour keys made alpha, for `over_white`)."""
  keyed = 'transparency' in im.info
  if im.mode == 'P':
    return im.convert('RGBA' if keyed else 'RGB')
  if im.mode in ('PA', 'RGBa') or (im.mode == 'RGB' and keyed):
    return im.convert('RGBA')
  if im.mode == 'La' or (im.mode in ('1', 'L') and keyed):
    return im.convert('LA')
  if im.mode == '1':
    return im.convert('L')
  if im.mode in ('L', 'LA', 'RGB', 'RGBA', 'I', 'F') or im.mode.startswith('I;16'):
    return im
  return im.convert('RGB')  # CMYK, YCbCr, LAB, HSV


def read_image(
  source: Source, *, draft: Optional[tuple[int, int]] = None, keep_alpha: bool = False
) -> np.ndarray:
  """Decodes an image file (a path, or its bytes), upright, in sRGB, with
  transparent pixels composited over white (product cut-outs are shot on white).

  Returns uint8 or uint16 [H, W] (gray) or [H, W, 3] (RGB): what
  `to_rgb_uint8` and so every stylizer accepts, so
  `stylizer(read_image(path))` is exactly what the batch CLI writes, and
  `read_rgb` is what training stores. EXIF orientation is applied by
  `PIL.ImageOps.exif_transpose`; 16-bit PNGs keep their 16 bits (RGB ones via
  OpenCV, which Pillow would cut to 8); palette images are expanded, CMYK
  converted, 1-bit made 8-bit; an animation gives its first frame. An 8-bit
  RGB(A) or CMYK file with an embedded non-sRGB ICC profile (Adobe RGB,
  Display P3, a press profile) is converted to sRGB (`to_srgb`); untagged and
  sRGB files keep their stored pixels.

  Args:
    source: a path, or the bytes of a file.
    draft: (width, height) of the upright image: lets JPEGs decode at a reduced
      scale (Pillow's draft mode: 1/2, 1/4 or 1/8) while both sides stay at
      least this large. Much faster for large photos, whose pixels then differ
      from a full decode's; for readers that shrink the image anyway. None
      (the default) decodes at full size.
    keep_alpha: return gray+alpha [H, W, 2] or RGBA [H, W, 4] as stored for
      files with transparency, instead of compositing over white (the
      stylizers take the alpha as the product's mask).

  Raises:
    ImageReadError: for missing, truncated or corrupt files.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top

  name = _name(source)
  try:
    if isinstance(source, bytes):
      data = source
    else:
      with open(source, 'rb') as f:
        data = f.read()
    with Image.open(io.BytesIO(data)) as im:
      if draft and draft[0] > 0 and draft[1] > 0 and im.format == 'JPEG':
        turned = im.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
        im.draft(None, draft[::-1] if turned else tuple(draft))
      im.load()  # Decodes now, so truncated data fails here.
      if im.format == 'PNG' and im.mode in ('RGB', 'RGBA') and _is_16bit_color_png(data):
        import cv2  # pylint: disable=g-import-not-at-top

        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None:
          raise _error(name, 'OpenCV could not decode this 16-bit PNG.')
        array = _upright(array[..., [2, 1, 0, 3][: array.shape[-1]]], im)  # BGR(A) -> RGB(A)
      else:
        ImageOps.exif_transpose(im, in_place=True)
        array = np.asarray(_plain_mode(to_srgb(im)))
  except (ImageReadError, MemoryError):
    raise
  except FileNotFoundError as e:
    raise _error(name, 'file not found') from e
  except Exception as e:  # pylint: disable=broad-except
    # Pillow raises many types for broken data (OSError, SyntaxError, struct.error, ...).
    raise _error(name, f'not a readable image ({e})') from e
  if array.dtype.kind in 'iu' and array.dtype != np.uint8:
    if array.size and (array.min() < 0 or array.max() > 65535):
      raise _error(name, f'{array.dtype} values outside [0, 65535].')
    array = array.astype(np.uint16)  # also byte-swaps big-endian 'I;16B'
  if array.size == 0:
    raise _error(name, f'image has zero size {array.shape}.')
  return array if keep_alpha else over_white(array)


def read_size(source: Source) -> Optional[tuple[int, int]]:
  """(width, height) as stored, from the file's header, without decoding its
  pixels (cheap for any size); None when Pillow cannot tell (`read_image` then
  says why)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
      return im.size
  except Exception:  # pylint: disable=broad-except
    return None


# EXIF tags outputs keep (IFD0 only, no GPS or Exif sub-IFD): nothing that locates
# or names a person (GPS, owner, serial numbers, maker notes, artist).
_KEPT_EXIF = {
  0x010F: 'Make',
  0x0110: 'Model',
  0x0131: 'Software',
  0x0132: 'DateTime',
  0x8298: 'Copyright',
}


@dataclasses.dataclass(frozen=True)
class ImageInfo:
  """What an output keeps of its photo's metadata: the resolution (dots per
  inch) and the EXIF tags of `_KEPT_EXIF` (GPS and personal tags dropped)."""

  dpi: Optional[tuple[float, float]] = None
  exif: dict[int, object] = dataclasses.field(default_factory=dict)


def read_info(source: Source) -> ImageInfo:
  """The metadata an output keeps (`ImageInfo`), from the file's header without
  decoding its pixels; empty when Pillow cannot read it."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
      dpi = im.info.get('dpi')
      exif = im.getexif()
      kept = {tag: exif[tag] for tag in _KEPT_EXIF if tag in exif}
  except Exception:  # pylint: disable=broad-except
    return ImageInfo()
  if dpi is not None:
    try:
      dpi = (float(dpi[0]), float(dpi[1]))
    except (TypeError, ValueError, IndexError):
      dpi = None
    if dpi is not None and not (dpi[0] > 0 and dpi[1] > 0):
      dpi = None
  return ImageInfo(dpi, kept)


def read_rgb(source: Source, *, draft: Optional[tuple[int, int]] = None) -> np.ndarray:
  """`read_image` as uint8 RGB [H, W, 3] (by `to_rgb_uint8`, as the stylizers
  convert it): the photos training reads. Raises ImageReadError."""
  image = read_image(source, draft=draft)
  try:
    return to_rgb_uint8(image)
  except ValueError as e:  # Float images outside [0, 1].
    raise _error(_name(source), str(e)) from e


def over_white(image: np.ndarray) -> np.ndarray:
  """Composites gray+alpha [..., 2] or RGBA [..., 4] integer images over white."""
  if image.ndim != 3 or image.shape[-1] not in (2, 4):
    return image
  top = float(np.iinfo(image.dtype).max)
  alpha = image[..., -1:].astype(np.float32) / top
  color = image[..., :-1].astype(np.float32) * alpha + top * (1.0 - alpha)
  color = np.round(color).astype(image.dtype)
  return color[..., 0] if color.shape[-1] == 1 else color


def encode_png(image: np.ndarray) -> bytes:
  """uint8 RGB [H, W, 3] -> PNG bytes, by OpenCV at its default compression: the
  catalogue's bytes depend on it, so every machine builds the same dataset."""
  return _encode(image, '.png')


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
  """uint8 RGB [H, W, 3] -> JPEG bytes (OpenCV), `quality` in [0, 100]."""
  import cv2  # pylint: disable=g-import-not-at-top

  return _encode(image, '.jpg', cv2.IMWRITE_JPEG_QUALITY, quality)


def _encode(image: np.ndarray, ext: str, *params: int) -> bytes:
  import cv2  # pylint: disable=g-import-not-at-top

  ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), list(params))
  if not ok:
    raise RuntimeError(f'{ext} encoding failed.')
  return data.tobytes()


def decode_png(data: bytes) -> np.ndarray:
  """`encode_png`'s bytes -> uint8 RGB [H, W, 3]. Only for records this package
  wrote (lossless, so any decoder gives these pixels); files go to `read_image`."""
  import cv2  # pylint: disable=g-import-not-at-top

  return cv2.cvtColor(
    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
  )


# --- The AI label (XMP) ------------------------------------------------------------

# IPTC's digital source type for media made by a model trained on sampled content
# (https://cv.iptc.org/newscodes/digitalsourcetype/): what the EU AI Act's Art. 50
# disclosure reads from an image file.
TRAINED_ALGORITHMIC_MEDIA = 'http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia'
_IPTC_EXT_NS = 'http://iptc.org/std/Iptc4xmpExt/2008-02-29/'
_XMP_NS = 'http://ns.adobe.com/xap/1.0/'
# The model's fields: our own XMP namespace.
SHOPSTYLE_NS = 'urn:x-shopstyle-jax:xmp:1.0/'
# Formats `write_image` labels (BMP holds no metadata).
_XMP_FORMATS = ('PNG', 'JPEG', 'WEBP', 'TIFF')
_XMP_TIFF_TAG = 700


@dataclasses.dataclass(frozen=True)
class Label:
  """What an output says about the model that made it: written into its XMP with
  the IPTC digital source type `trainedAlgorithmicMedia` (`label_xmp`).

  Attributes:
    style: the model's style (config.data.style), or None.
    step: its checkpoint step, or None.
    weights: a hash of its weights (`weights_hash`), or None.
  """

  style: Optional[str] = None
  step: Optional[int] = None
  weights: Optional[str] = None


def weights_hash(arrays: Iterable[np.ndarray]) -> str:
  """The first 16 hex digits of the SHA-256 of `arrays` (a model's variables, as
  `jax.tree.leaves` orders them): their shapes, dtypes and bytes. The same for a
  checkpoint's stylizer and its exported file."""
  import hashlib  # pylint: disable=g-import-not-at-top

  digest = hashlib.sha256()
  for array in arrays:
    array = np.ascontiguousarray(array)
    digest.update(f'{array.dtype.str}{array.shape}'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()[:16]


def label_xmp(label: Label) -> bytes:
  """An XMP packet (UTF-8) saying the image is AI-generated (IPTC digital source
  type `trainedAlgorithmicMedia`) by shopstyle_jax, with `label`'s model fields."""
  from xml.sax.saxutils import quoteattr  # pylint: disable=g-import-not-at-top

  fields = [
    ('Iptc4xmpExt:DigitalSourceType', TRAINED_ALGORITHMIC_MEDIA),
    ('xmp:CreatorTool', 'shopstyle_jax'),
  ]
  for name, value in (('Style', label.style), ('Step', label.step), ('WeightsHash', label.weights)):
    if value is not None:
      fields.append((f'shopstyle:{name}', str(value)))
  attributes = ''.join(f'\n    {name}={quoteattr(value)}' for name, value in fields)
  return (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""\n'
    f'    xmlns:Iptc4xmpExt="{_IPTC_EXT_NS}"\n'
    f'    xmlns:xmp="{_XMP_NS}"\n'
    f'    xmlns:shopstyle="{SHOPSTYLE_NS}"{attributes}/>\n'
    ' </rdf:RDF>\n'
    '</x:xmpmeta>\n'
    '<?xpacket end="w"?>'
  ).encode('utf-8')


def read_xmp(source: Source) -> Optional[bytes]:
  """The XMP packet of an image file (PNG, JPEG, WebP, TIFF), or None."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
    xmp = im.info.get('xmp')
    if xmp is None and im.format == 'TIFF':
      xmp = im.tag_v2.get(_XMP_TIFF_TAG)
  if isinstance(xmp, tuple):
    xmp = bytes(xmp)
  return xmp.encode('utf-8') if isinstance(xmp, str) else xmp


def read_label(source: Source) -> Optional[dict[str, str]]:
  """The AI label of an image file as {'DigitalSourceType': ..., 'Style': ...,
  'Step': ..., 'WeightsHash': ...} (the fields it has), or None when its XMP has
  no digital source type. Parses the XMP with the standard library."""
  import xml.etree.ElementTree as ET  # pylint: disable=g-import-not-at-top

  xmp = read_xmp(source)
  if not xmp:
    return None
  root = ET.fromstring(xmp.decode('utf-8').strip('\ufeff').split('?>', 1)[1].rsplit('<?', 1)[0])
  found = {}
  for element in root.iter():
    for key, value in element.attrib.items():
      for ns, prefix in ((_IPTC_EXT_NS, ''), (SHOPSTYLE_NS, '')):
        if key.startswith('{' + ns + '}'):
          found[prefix + key[len(ns) + 2 :]] = value
  return found if 'DigitalSourceType' in found else None


# Formats that store an alpha channel (RGBA outputs), and those that carry an ICC profile.
ALPHA_FORMATS = ('PNG', 'WEBP', 'TIFF')
_ICC_FORMATS = ('PNG', 'JPEG', 'WEBP', 'TIFF')


def check_alpha_format(ext: str) -> None:
  """ValueError when the output format of extension `ext` cannot hold alpha."""
  fmt = WRITE_FORMATS.get(ext.lower().lstrip('.'))
  if fmt is not None and fmt not in ALPHA_FORMATS:
    raise ValueError(
      f'{fmt} has no alpha channel, so a transparent background cannot be written '
      'as .' + ext.lower().lstrip('.') + ': choose png, webp or tiff (or another background).'
    )


def write_image(
  image: np.ndarray,
  path: str,
  quality: int = 95,
  png_compression: int = 1,
  info: Optional[ImageInfo] = None,
  label: Optional[Label] = None,
) -> None:
  """Writes uint8 [H, W, 3] (or RGBA [H, W, 4]: PNG, WebP, TIFF) to `path`, in the
  format its extension names, tagged sRGB (PNG, JPEG, WebP, TIFF), atomically:
  a crash never leaves a partial file that a rerun would take as done (only a
  hidden temporary file, which `stale_temp_files` finds). The file's mode
  honours the umask, as `open` does.

  `quality` is for JPEG and WebP; `png_compression` is zlib's level (0-9): 1
  encodes a 400x600 photo about 5x faster than Pillow's default 6, for files
  about 10% larger. `info` (`read_info` of the photo) gives the DPI and the
  EXIF tags to keep; GPS and personal tags never reach an output. `label` (the
  stylizer's `label`) writes the AI label into the file's XMP (`label_xmp`; PNG,
  JPEG, WebP, TIFF: BMP holds no metadata)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  ext = os.path.splitext(path)[1].lower().lstrip('.')
  if ext not in WRITE_FORMATS:
    raise ValueError(f'Unknown output format {ext!r}; choose one of {sorted(WRITE_FORMATS)}.')
  fmt = WRITE_FORMATS[ext]
  if image.ndim == 3 and image.shape[-1] == 4:
    check_alpha_format(ext)
  options = (
    {'quality': quality}
    if fmt in ('JPEG', 'WEBP')
    else {'compress_level': png_compression}
    if fmt == 'PNG'
    else {}
  )
  if fmt in _ICC_FORMATS:
    options['icc_profile'] = srgb_profile()
  info = info or ImageInfo()
  if info.dpi and fmt != 'WEBP':
    options['dpi'] = info.dpi
  if info.exif and fmt != 'BMP':
    exif = Image.Exif()
    exif.update(info.exif)
    options['exif'] = exif
  if label is not None and fmt in _XMP_FORMATS:
    xmp = label_xmp(label)
    if fmt == 'PNG':  # Pillow writes PNG's XMP as the iTXt chunk Adobe defines.
      from PIL import PngImagePlugin  # pylint: disable=g-import-not-at-top

      chunks = PngImagePlugin.PngInfo()
      chunks.add_itxt('XML:com.adobe.xmp', xmp.decode('utf-8'))
      options['pnginfo'] = chunks
    elif fmt == 'TIFF':
      exif = options.setdefault('exif', Image.Exif())
      exif[_XMP_TIFF_TAG] = xmp
    else:
      options['xmp'] = xmp
  directory = os.path.dirname(path) or '.'
  os.makedirs(directory, exist_ok=True)
  fd, tmp = _create_temp(directory, os.path.basename(path))
  try:
    with os.fdopen(fd, 'wb') as f:
      Image.fromarray(image).save(f, format=fmt, **options)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


# `write_image`'s temporary files: '.' + the output's name + 8 random characters
# + '.tmp' (as tempfile.mkstemp named them before).
_TEMP_RANDOM, _TEMP_SUFFIX = 8, '.tmp'
_TEMP_CHARS = frozenset('abcdefghijklmnopqrstuvwxyz0123456789_')


def _create_temp(directory: str, name: str) -> tuple[int, str]:
  """Creates `write_image`'s temporary file for output `name`: (fd, path).

  Mode 0o666 minus the umask, which the kernel applies (mkstemp's 0o600 would
  make every output private).
  """
  flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
  while True:
    tmp = os.path.join(directory, f'.{name}{secrets.token_hex(_TEMP_RANDOM // 2)}{_TEMP_SUFFIX}')
    try:
      return os.open(tmp, flags, 0o666), tmp
    except FileExistsError:
      continue


def stale_temp_files(directory: str, names: Iterable[str]) -> list[str]:
  """Paths of the temporary files `write_image` left in `directory` (a killed
  writer's) for outputs called `names`; [] if `directory` does not exist."""
  names = set(names)
  try:
    entries = os.listdir(directory)
  except (FileNotFoundError, NotADirectoryError):
    return []
  tail = _TEMP_RANDOM + len(_TEMP_SUFFIX)
  return sorted(
    os.path.join(directory, e)
    for e in entries
    if e.startswith('.')
    and e.endswith(_TEMP_SUFFIX)
    and len(e) > tail + 1
    and e[1:-tail] in names
    and set(e[-tail : -len(_TEMP_SUFFIX)]) <= _TEMP_CHARS
  )
