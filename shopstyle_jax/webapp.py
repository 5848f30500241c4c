"""The web app's library: uploads in, stylized files and a zip out, and the page.

The library under `python -m shopstyle_jax.app`. The Gradio-free parts are pure
and tested without a server: `expand_uploads` turns uploaded files (photos, or
zips of photos, read safely within `Limits`) into `Photo`s; `output_names`
gives each result its upload's name, made unique; `option_controls` describes
one page control per `StylizeOptions` field and `options_from_values` turns the
controls' values back into options; `page_styles` and `style_from_page` turn a
multi-style model's style picker and mix sliders into a `style=` argument;
`stylize_uploads` runs a stylizer over the
photos, writes the results and their zip, and reports every file it could not
use, without raising. `build_app` wraps these in a Gradio page (imported only
there); `launch` serves it with no outbound traffic.

No other module of the package imports this one.
"""

import dataclasses
import ipaddress
import logging
import os
import posixpath
import re
import shutil
import tempfile
import time
import typing
import warnings
import zipfile
from typing import Any, Callable, Optional, Sequence

import numpy as np

from shopstyle_jax import images as image_lib
from shopstyle_jax import style_mix
from shopstyle_jax.options import StylizeOptions

# --- Limits ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Limits:
  """What one request may ask of the server (README, "Web app"), so that a
  photo, a zip or a crowd cannot run it out of memory.

  Attributes:
    max_pixels: photos larger than this (width x height, read from the file's
      header before decoding) are refused: a 24-megapixel camera photo passes,
      a 100-megapixel scan does not (shrink it, or use the batch command line).
    max_photos: photos per request, counting those inside zips.
    max_upload_bytes: size of one uploaded file (Gradio refuses larger ones).
    max_zip_entries: entries in one zip (folders included).
    max_unpacked_bytes: bytes one zip's entries unpack to, all together.
    queue_size: requests waiting for the device; more are turned away.
  """

  max_pixels: int = 40_000_000
  max_photos: int = 200
  max_upload_bytes: int = 200 * 2**20
  max_zip_entries: int = 1000
  max_unpacked_bytes: int = 2**30
  queue_size: int = 16


class UploadError(ValueError):
  """An upload (or a zip entry) that cannot be stylized; the message says why
  and what to do, without the file's name."""


def megapixels(pixels: int) -> str:
  return f'{pixels / 1e6:.1f} megapixels'


# --- Uploads -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Photo:
  """One photo to stylize.

  Attributes:
    name: its name in messages: the uploaded file's name, or `zip name:entry`.
    stem: its output name without extension: the upload's name, or the entry's
      path inside its zip, without the extension.
    read: returns the file's bytes (a zip entry is unpacked only then).
  """

  name: str
  stem: str
  read: Callable[[], bytes]


Failure = tuple[str, str]  # (name, reason)


def upload_name(path: str) -> str:
  """The name the user gave a file, from the path Gradio stored it under (its
  last component: Gradio keeps uploads' names in a folder of their own)."""
  return os.path.basename(os.fspath(path).replace('\\', '/').rstrip('/')) or 'upload'


def _stem(name: str) -> str:
  stem, ext = posixpath.splitext(name)
  return stem if ext and stem and not stem.endswith('/') else name


def _read_file(path: str) -> Callable[[], bytes]:
  def read():
    with open(path, 'rb') as f:
      return f.read()

  return read


def is_zip_name(name: str) -> bool:
  return name.lower().endswith('.zip')


def safe_entry_name(name: str) -> Optional[str]:
  """A zip entry's path, normalised ('a/./b.jpg' -> 'a/b.jpg'), or None when it
  could land outside a folder it is unpacked to: absolute, a drive letter, or
  with a '..' component (either slash counts)."""
  name = name.replace('\\', '/')
  if name.startswith('/') or re.match(r'^[A-Za-z]:', name):
    return None
  parts = [p for p in name.split('/') if p not in ('', '.')]
  if not parts or '..' in parts:
    return None
  return '/'.join(parts)


def _skipped_entry(path: str) -> bool:
  """Entries a zip of photos carries that are not photos: macOS's resource forks
  and hidden files."""
  return path.startswith('__MACOSX/') or any(p.startswith('.') for p in path.split('/'))


def read_zip(
  path: str, limits: Limits, name: Optional[str] = None
) -> tuple[list[Photo], list[Failure]]:
  """The photos in an uploaded zip (entries with an image extension, in the
  zip's order) and the entries it leaves out, with why.

  Nothing is unpacked here: each `Photo.read` unpacks its entry, reading at most
  the size the zip declares for it. Raises UploadError, refusing the whole zip,
  for one that is damaged, encrypted, has more than `limits.max_zip_entries`
  entries, declares more than `limits.max_unpacked_bytes` unpacked, or has an
  entry whose path leaves the folder (`../`, absolute): a zip made to attack
  the server, never a shop's photos.
  """
  name = name or upload_name(path)
  try:
    with zipfile.ZipFile(path) as zf:
      infos = zf.infolist()
  except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
    raise UploadError(f'not a readable zip ({e}); zip the photos again.') from e
  if len(infos) > limits.max_zip_entries:
    raise UploadError(
      f'{len(infos)} entries; the app takes zips of up to {limits.max_zip_entries}: '
      'split it into smaller zips.'
    )
  unpacked = sum(info.file_size for info in infos)
  if unpacked > limits.max_unpacked_bytes:
    raise UploadError(
      f'unpacks to {bytes_text(unpacked)}; the app takes zips of up to '
      f'{bytes_text(limits.max_unpacked_bytes)} unpacked: split it into smaller zips.'
    )
  photos, skipped = [], []
  for info in infos:
    entry = safe_entry_name(info.filename)
    if entry is None:
      raise UploadError(
        f'entry {info.filename!r} has an unsafe path (absolute, or with ".."); '
        'zip the photos again from their folder.'
      )
    if info.is_dir() or _skipped_entry(entry):
      continue
    if info.flag_bits & 0x1:
      raise UploadError('it is encrypted; zip the photos again without a password.')
    if os.path.splitext(entry)[1].lower() not in image_lib.IMAGE_EXTENSIONS:
      skipped.append(
        (
          f'{name}:{entry}',
          f'left out: not an image by its extension ({" ".join(image_lib.IMAGE_EXTENSIONS)}).',
        )
      )
      continue
    photos.append(Photo(f'{name}:{entry}', _stem(entry), _read_entry(path, info)))
  return photos, skipped


def _read_entry(path: str, info: zipfile.ZipInfo) -> Callable[[], bytes]:
  def read():
    try:
      with zipfile.ZipFile(path) as zf, zf.open(info) as f:
        data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as e:
      raise UploadError(f'could not be unpacked ({e}); zip the photos again.') from e
    if len(data) > info.file_size:
      raise UploadError('unpacks to more than its zip declares (a damaged zip or a zip bomb).')
    return data

  return read


def expand_uploads(
  paths: Optional[Sequence[Any]], limits: Limits
) -> tuple[list[Photo], list[Failure]]:
  """Uploaded files -> the photos to stylize, and the uploads (or zip entries)
  refused or left out, with why. Zips are opened (`read_zip`); any other file is
  taken as a photo, for `decode` to judge (a zip is a file named *.zip). Raises UploadError when there is
  nothing to stylize at all or more than `limits.max_photos` photos."""
  paths = [p if isinstance(p, str) else getattr(p, 'name', p) for p in (paths or [])]
  if not paths:
    raise UploadError('No files uploaded: drop photos (or a zip of photos) on the upload box.')
  photos, failures = [], []
  for path in paths:
    name = upload_name(path)
    if is_zip_name(name):
      try:
        found, skipped = read_zip(path, limits, name)
      except UploadError as e:
        failures.append((name, f'zip refused: {e}'))
        continue
      photos.extend(found)
      failures.extend(skipped)
    else:
      photos.append(Photo(name, _stem(name), _read_file(path)))
  if len(photos) > limits.max_photos:
    raise UploadError(
      f'{len(photos)} photos in one request; the app takes up to {limits.max_photos}: '
      'upload them in smaller sets (or use python -m shopstyle_jax.stylize for a whole catalogue).'
    )
  return photos, failures


def decode(data: bytes, limits: Limits) -> np.ndarray:
  """A photo's bytes -> uint8 RGB [H, W, 3], by the package's one reader
  (`images.read_image`, then `to_rgb_uint8` as the stylizers convert it).
  Raises UploadError for an empty, unreadable or too large file."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if not data:
    raise UploadError('empty file (0 bytes); upload the photo again.')
  too_large = (
    f'the app takes photos of up to {megapixels(limits.max_pixels)}: shrink it first, '
    'or stylize it with python -m shopstyle_jax.stylize --max_side=...'
  )
  with warnings.catch_warnings():  # Pillow warns from 89 megapixels on; the limit is ours.
    warnings.simplefilter('ignore', Image.DecompressionBombWarning)
    size = image_lib.read_size(data)
  if size is not None and size[0] * size[1] > limits.max_pixels:
    width, height = size
    raise UploadError(f'{width}x{height} pixels ({megapixels(width * height)}); {too_large}')
  try:
    return image_lib.to_rgb_uint8(image_lib.read_image(data))
  except image_lib.ImageReadError as e:
    if isinstance(e.__cause__, Image.DecompressionBombError):  # Over 179 megapixels.
      raise UploadError(f'{e.__cause__}; {too_large}') from e
    raise UploadError(f'{e.reason}; upload a JPEG, PNG, WebP, BMP, GIF or TIFF photo.') from e
  except ValueError as e:
    raise UploadError(f'{e}') from e


def bytes_text(num_bytes: int) -> str:
  for unit, size in (('GiB', 2**30), ('MiB', 2**20), ('kiB', 2**10)):
    if num_bytes >= size:
      return f'{num_bytes / size:.1f} {unit}'
  return f'{num_bytes} bytes'


# --- Output names ------------------------------------------------------------------

OUTPUT_FORMATS = ('png', 'jpg', 'webp')


def output_names(stems: Sequence[str], fmt: str) -> list[str]:
  """Each photo's output file name: its upload's name (or its path in its zip)
  with the extension of `fmt`.

  The rule for duplicates: names compare without regard to case (as a zip
  unpacks on macOS and Windows); the first photo in upload order keeps its name
  and each later one gets ' (2)', ' (3)', ... before the extension, the first
  number not taken. So two uploads 'shoe.jpg' give 'shoe.png' and
  'shoe (2).png', and 'shoe.jpg' with 'shoe.png' the same.
  """
  taken, names = set(), []
  for stem in stems:
    name, n = f'{stem}.{fmt}', 1
    while name.lower() in taken:
      n += 1
      name = f'{stem} ({n}).{fmt}'
    taken.add(name.lower())
    names.append(name)
  return names


def write_zip(path: str, files: Sequence[tuple[str, str]]) -> None:
  """Writes (name in the zip, file) pairs as a zip (stored: PNG, JPEG and WebP
  compress no further)."""
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
    for name, src in files:
      zf.write(src, name)


# --- Options as page controls -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Control:
  """One page control for a `StylizeOptions` field.

  Attributes:
    name: the field's name (and the API's parameter name).
    label: shown above the control.
    kind: 'slider', 'number', 'checkbox', 'dropdown' or 'text'.
    default: the control's initial value (the field's default, as the control
      shows it).
    info: the field's description, from `StylizeOptions`'s docstring.
    minimum, maximum, step: for sliders and numbers.
    choices: for dropdowns.
    none_value: the control's value that means None (max_side's 0: no limit).
  """

  name: str
  label: str
  kind: str
  default: Any
  info: str = ''
  minimum: Optional[float] = None
  maximum: Optional[float] = None
  step: Optional[float] = None
  choices: Optional[tuple[Any, ...]] = None
  none_value: Any = None


# How the fields that need more than their type says are shown. A field added
# to StylizeOptions without an entry here still gets a control from its type
# (`_control_from_type`); an entry only picks a better one (a slider's range).
CONTROL_OVERRIDES = {
  'brightness': dict(kind='slider', minimum=-1.0, maximum=1.0, step=0.01),
  'contrast': dict(kind='slider', minimum=0.0, maximum=3.0, step=0.01),
  'max_side': dict(label='Max side (pixels, 0 = full size)', minimum=0, step=1, none_value=0),
  'strength': dict(kind='slider', minimum=0.0, maximum=1.0, step=0.01),
}


def field_descriptions(cls: type = StylizeOptions) -> dict[str, str]:
  """{field: its description} from the 'Attributes:' section of `cls`'s docstring."""
  text = (cls.__doc__ or '').split('Attributes:', 1)[-1]
  found, name = {}, None
  for line in text.splitlines():
    m = re.match(r'^\s{2,6}(\w+): (.*)$', line)
    if m and m.group(1) in {f.name for f in dataclasses.fields(cls)}:
      name = m.group(1)
      found[name] = m.group(2).strip()
    elif name and line.strip():
      found[name] += ' ' + line.strip()
    else:
      name = None
  return found


def _control_from_type(name: str, hint: Any, default: Any) -> dict[str, Any]:
  """A control for a field from its type: bool -> checkbox, Literal -> dropdown,
  int/float -> number, Optional[...] -> its type's control with a 'none' value,
  anything else -> text."""
  args = typing.get_args(hint)
  if typing.get_origin(hint) is typing.Union and type(None) in args:
    inner = [a for a in args if a is not type(None)][0]
    spec = _control_from_type(name, inner, default)
    spec['none_value'] = {'number': 0, 'slider': 0, 'text': ''}.get(spec['kind'], 'none')
    if spec['kind'] == 'dropdown':
      spec['choices'] = ('none', *spec['choices'])
    if default is None:
      spec['default'] = spec['none_value']
    return spec
  if hint is bool:
    return dict(kind='checkbox', default=default)
  if typing.get_origin(hint) is typing.Literal:
    return dict(kind='dropdown', default=default, choices=tuple(args))
  if hint in (int, float):
    return dict(kind='number', default=default, step=1 if hint is int else None)
  return dict(kind='text', default='' if default is None else str(default))


def option_controls(cls: type = StylizeOptions) -> list[Control]:
  """One `Control` per field of `cls`, in the fields' order: built from the
  dataclass, so an option added to `StylizeOptions` appears in the page (and the
  API) without a change here."""
  hints = typing.get_type_hints(cls)
  infos = field_descriptions(cls)
  controls = []
  for field in dataclasses.fields(cls):
    default = field.default
    spec = _control_from_type(field.name, hints[field.name], default)
    spec.update(CONTROL_OVERRIDES.get(field.name, {}))
    if default is None and 'none_value' in spec:
      spec['default'] = spec['none_value']
    spec.setdefault('label', field.name.replace('_', ' ').capitalize())
    controls.append(Control(name=field.name, info=infos.get(field.name, ''), **spec))
  return controls


def options_from_values(values: Sequence[Any], controls: Sequence[Control]) -> StylizeOptions:
  """The controls' values (in `controls`' order) -> StylizeOptions, checked by
  it. Numbers that the page sends as floats become ints for int fields. Raises
  ValueError (or TypeError) with StylizeOptions's message."""
  hints = typing.get_type_hints(StylizeOptions)
  kwargs = {}
  for control, value in zip(controls, values, strict=True):
    if control.none_value is not None and value == control.none_value:
      value = None
    if value is not None:
      hint = hints[control.name]
      inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
      if inner[0] is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    kwargs[control.name] = value
  return StylizeOptions(**kwargs)


# --- Styles of a multi-style model ------------------------------------------------------

MIX = 'Mix of styles (the sliders below)'


def page_styles(stylizer: Any) -> tuple[str, ...]:
  """The styles the page lets one pick: a multi-style model's `styles`; none for
  a single-style model (it has nothing to pick)."""
  styles = tuple(getattr(stylizer, 'styles', None) or ())
  return styles if len(styles) > 1 else ()


def default_style(stylizer: Any) -> Optional[str]:
  styles = page_styles(stylizer)
  if not styles:
    return None
  default = getattr(stylizer, 'default_style', None)
  return default if default in styles else styles[0]


def style_from_page(
  choice: Optional[str], weights: Sequence[float], styles: Sequence[str]
) -> Optional[style_mix.Style]:
  """The style picker's choice (a style, or `MIX`) and the mix sliders' values
  (one per style, in `styles`' order) -> the stylizer's `style=` argument.

  A mix takes the styles whose sliders are above 0, each weighted by its share
  of their sum, so sliders at 1 and 1 blend half and half, as 0.5 and 0.5 do.
  ValueError when a mix has every slider at 0."""
  if not styles:
    return None
  if choice != MIX:
    return choice or None
  weights = [float(w or 0.0) for w in weights]
  total = sum(w for w in weights if w > 0)
  if total <= 0:
    raise ValueError(
      'A mix of styles needs at least one style above 0: move its slider, or pick one style.'
    )
  return {name: w / total for name, w in zip(styles, weights, strict=True) if w > 0}


def style_from_text(text: Optional[str], stylizer: Any) -> Optional[style_mix.Style]:
  """The API's `style` (as the command line's --style: 'watercolor', or
  'oil:0.5,watercolor:0.5'; '' for the model's default) -> `style=`, checked
  against the model's styles. ValueError (or TypeError) naming them."""
  style = style_mix.parse(text)
  if style is not None:
    styles = tuple(getattr(stylizer, 'styles', None) or ())
    if styles:
      style_mix.style_vector(style, styles, styles[0])
  return style


def style_text(style: Optional[style_mix.Style]) -> str:
  """A `style=` argument as the report names it."""
  if style is None or isinstance(style, str):
    return style or ''
  return ', '.join(f'{name} {weight:.0%}' for name, weight in style.items())


# --- Stylizing a request ------------------------------------------------------------

PREVIEW_SIDE = 1024  # Before/after previews are shrunk to this longer side.


@dataclasses.dataclass
class Result:
  """What one request gave.

  Attributes:
    files: (output name, file) for each stylized photo, in upload order.
    zip_path: all of them in one zip (None when there are none).
    previews: (output name, before, after) preview files for the before/after view.
    failures: (name, why) for every upload or zip entry not stylized.
    seconds: how long the request took.
    style: the style or mix asked for, as `style_text` writes it ('' for the
      model's default).
  """

  files: list[tuple[str, str]]
  zip_path: Optional[str]
  previews: list[tuple[str, str, str]]
  failures: list[Failure]
  seconds: float
  style: str = ''

  def report(self) -> str:
    """The page's message, in Markdown: what was done, then each failure."""
    lines = [
      f'**Stylized {len(self.files)} photo{"" if len(self.files) == 1 else "s"}** '
      f'in {self.seconds:.1f} s' + (f', style {_md(self.style)}.' if self.style else '.')
      if self.files
      else '**Nothing was stylized.**'
    ]
    if self.failures:
      lines.append(f'\n{len(self.failures)} file(s) not stylized:\n')
      lines.extend(f'- `{_md(name)}`: {_md(reason)}' for name, reason in self.failures)
    return '\n'.join(lines)


def _md(text: str) -> str:
  """`text` safe inside Markdown (an upload's name is the user's)."""
  return re.sub(r'([`*_<>\[\]\\])', r'\\\1', text)


def error_report(message: str) -> str:
  return f'**Nothing was stylized:** {_md(message)}'


def _preview(image: np.ndarray, path: str) -> str:
  height, width = image.shape[:2]
  scale = min(1.0, PREVIEW_SIDE / max(height, width))
  if scale < 1.0:
    image = image_lib.resize(image, max(1, round(height * scale)), max(1, round(width * scale)))
  image_lib.write_image(image, path)
  return path


def stylize_uploads(
  stylizer: Callable[..., np.ndarray],
  paths: Optional[Sequence[Any]],
  options: StylizeOptions,
  fmt: str,
  out_dir: str,
  limits: Limits,
  progress: Optional[Callable[[int, int, str], None]] = None,
  style: Optional[style_mix.Style] = None,
) -> Result:
  """Stylizes uploaded files (photos and zips) into `out_dir`: each result under
  its upload's name (`output_names`), all of them in 'stylized.zip', and small
  before/after previews.

  Never raises for what the user sent: unreadable, empty, too large or refused
  files become `Result.failures`, and the others are still stylized. Raises
  UploadError only when nothing was uploaded or too many photos were.
  `progress(done, total, name)` is called before each photo. `style` (a
  multi-style model's style or mix) goes to the stylizer as `style=`; None
  leaves it to the model's default.
  """
  start = time.monotonic()
  if fmt not in OUTPUT_FORMATS:
    raise UploadError(f'Output format {fmt!r}: choose one of {", ".join(OUTPUT_FORMATS)}.')
  photos, failures = expand_uploads(paths, limits)
  names = output_names([p.stem for p in photos], fmt)
  files, previews = [], []
  results = os.path.join(out_dir, 'results')
  for i, (photo, name) in enumerate(zip(photos, names)):
    if progress:
      progress(i, len(photos), photo.name)
    try:
      image = decode(photo.read(), limits)
    except UploadError as e:
      failures.append((photo.name, str(e)))
      continue
    try:
      styled = stylizer(image, options) if style is None else stylizer(image, options, style=style)
    except Exception as e:  # pylint: disable=broad-except  # e.g. the device's memory.
      logging.getLogger(__name__).exception('Stylizing %s failed', photo.name)
      failures.append((photo.name, f'the stylizer failed on it ({type(e).__name__}: {e}).'))
      continue
    dst = os.path.join(results, name)
    image_lib.write_image(styled, dst)
    files.append((name, dst))
    if len(previews) < 50:
      stem = os.path.join(out_dir, 'previews', f'{i:04d}')
      previews.append(
        (name, _preview(image, f'{stem}_before.png'), _preview(styled, f'{stem}_after.png'))
      )
  zip_path = None
  if files:
    zip_path = os.path.join(out_dir, 'stylized.zip')
    write_zip(zip_path, files)
  if progress:
    progress(len(photos), len(photos), '')
  return Result(files, zip_path, previews, failures, time.monotonic() - start, style_text(style))


class WorkFolders:
  """Per-request output folders under one root, removed after `keep_seconds`
  (Gradio copies what a request returns into its own cache, which it cleans
  as `build_app`'s `delete_cache` says) and all at `close`."""

  def __init__(self, root: Optional[str] = None, keep_seconds: float = 600.0):
    self.root = root or tempfile.mkdtemp(prefix='shopstyle_app_')
    os.makedirs(self.root, exist_ok=True)
    self.keep_seconds = keep_seconds

  def new(self) -> str:
    """A fresh folder for a request, after removing those older than `keep_seconds`."""
    self.prune()
    return tempfile.mkdtemp(prefix='request_', dir=self.root)

  def prune(self, now: Optional[float] = None) -> None:
    now = time.time() if now is None else now
    for entry in os.listdir(self.root):
      path = os.path.join(self.root, entry)
      try:
        if now - os.path.getmtime(path) > self.keep_seconds:
          shutil.rmtree(path, ignore_errors=True)
      except FileNotFoundError:
        pass

  def remove(self, path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)

  def close(self) -> None:
    shutil.rmtree(self.root, ignore_errors=True)


# --- Serving -------------------------------------------------------------------------

# Outbound traffic off: Gradio's analytics and version check, Hugging Face's telemetry.
OFFLINE_ENV = {
  'GRADIO_ANALYTICS_ENABLED': 'False',
  'HF_HUB_OFFLINE': '1',
  'HF_HUB_DISABLE_TELEMETRY': '1',
  'DO_NOT_TRACK': '1',
}

AUTH_ENV = 'SHOPSTYLE_APP_AUTH'


def is_local_host(host: str) -> bool:
  """Whether binding to `host` keeps the app on this machine (loopback only)."""
  if host == 'localhost':
    return True
  try:
    return ipaddress.ip_address(host.strip('[]')).is_loopback
  except ValueError:
    return False


def parse_auth(text: Optional[str]) -> Optional[tuple[str, str]]:
  """'user:password' -> (user, password); None for None or ''. Raises ValueError
  for anything else."""
  if not text:
    return None
  user, sep, password = text.partition(':')
  if not sep or not user or not password:
    raise ValueError(
      'The password must be given as user:password (both non-empty), e.g. '
      f'--auth=shop:secret or {AUTH_ENV}=shop:secret.'
    )
  return user, password


def check_host(host: str, auth: Optional[tuple[str, str]]) -> None:
  """ValueError when `host` reaches other machines and no password is set."""
  if not is_local_host(host) and auth is None:
    raise ValueError(
      f'--host={host} lets other machines reach the app: give it a password with '
      f'--auth=user:password or the environment variable {AUTH_ENV}=user:password '
      '(or serve on 127.0.0.1).'
    )


def system_theme():
  """Gradio's default theme with the system's fonts: the default one loads its
  fonts from Google, which this app must not contact."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  return gr.themes.Default(
    font=('ui-sans-serif', 'system-ui', 'Segoe UI', 'Helvetica', 'Arial', 'sans-serif'),
    font_mono=('ui-monospace', 'SFMono-Regular', 'Menlo', 'Consolas', 'monospace'),
  )


def build_app(
  stylizer: Callable[..., np.ndarray],
  *,
  model: str = '',
  limits: Limits = Limits(),
  work: Optional[WorkFolders] = None,
):
  """The page around `stylizer` (from `load_stylizer` or `load_exported`), as a
  gr.Blocks with its queue set: one request on the device at a time, at most
  `limits.queue_size` waiting. `model` is the line the page shows about it.

  Its API endpoint `/stylize` takes the files, then one value per
  `StylizeOptions` field (named as the fields), the output format and `style`
  (a multi-style model's style or mix, written as the command line's --style;
  '' for its default), and returns the stylized files and the report. For a
  multi-style model the page adds a style picker and one mix slider per style.
  """
  for key, value in OFFLINE_ENV.items():
    os.environ.setdefault(key, value)
  import gradio as gr  # pylint: disable=g-import-not-at-top

  work = work or WorkFolders()
  controls = option_controls()
  styles = page_styles(stylizer)

  def run(files, values, fmt, style_fn, progress):
    """One request: (result or None, report). `style_fn()` gives the style."""
    try:
      options = options_from_values(values, controls)
      style = style_fn()
    except (ValueError, TypeError) as e:
      return None, error_report(f'{e}')
    out_dir = work.new()
    try:
      result = stylize_uploads(
        stylizer,
        files,
        options,
        fmt,
        out_dir,
        limits,
        progress=lambda i, n, name: progress(
          (i, n), desc=f'{name}' if name else 'Done', unit='photos'
        ),
        style=style,
      )
    except UploadError as e:
      work.remove(out_dir)
      return None, error_report(f'{e}')
    except Exception as e:  # pylint: disable=broad-except
      # The server keeps serving: the request fails with its message, its files go.
      work.remove(out_dir)
      logging.getLogger(__name__).exception('Request failed')
      return None, error_report(f'the server failed on this request ({type(e).__name__}: {e}).')
    if not result.files:
      work.remove(out_dir)
    return (result if result.files else None), result.report()

  def split(args):
    """(files, option values, format, the rest) from an event's positional arguments."""
    n = len(controls)
    return args[0], list(args[1 : 1 + n]), args[1 + n], args[2 + n :]

  def ui_fn(*args, progress=gr.Progress()):
    files, values, fmt, rest = split(args)
    style_fn = lambda: style_from_page(rest[0], rest[1:], styles) if styles else None
    result, report = run(files, values, fmt, style_fn, progress)
    if result is None:
      return None, None, report, None, gr.update(choices=[], value=None), []
    names = [name for name, _, _ in result.previews]
    first = result.previews[0] if result.previews else None
    return (
      result.zip_path,
      [path for _, path in result.files],
      report,
      (first[1], first[2]) if first else None,
      gr.update(choices=names, value=names[0] if names else None),
      result.previews,
    )

  def api_fn(*args, progress=gr.Progress()):
    files, values, fmt, rest = split(args)
    style_fn = lambda: style_from_text(rest[0] if rest else '', stylizer)
    result, report = run(files, values, fmt, style_fn, progress)
    return ([path for _, path in result.files] if result else []), report

  def show(name, previews):
    for n, before, after in previews or []:
      if n == name:
        return before, after
    return None

  # Parameter names for the API (and gradio_client's keywords): the fields'.
  import inspect  # pylint: disable=g-import-not-at-top

  def signature(extra: Sequence[str]) -> inspect.Signature:
    names = ['files', *(c.name for c in controls), 'output_format', *extra]
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    progress = inspect.Parameter('progress', inspect.Parameter.KEYWORD_ONLY, default=gr.Progress())
    params.append(progress)
    return inspect.Signature(params)

  ui_fn.__signature__ = signature(
    ['style', *(f'mix_{i}' for i in range(len(styles)))] if styles else []
  )
  api_fn.__signature__ = signature(['style'])

  with gr.Blocks(title='shopstyle_jax', analytics_enabled=False, delete_cache=(600, 3600)) as demo:
    gr.Markdown(
      '## shopstyle_jax: product photos to styled images\n'
      f'{_md(model)}\n\n'
      "Drop one photo, many, or a zip of photos. Results keep the uploads' names; "
      f'photos up to {megapixels(limits.max_pixels)}, {limits.max_photos} a request.'
    )
    with gr.Row():
      with gr.Column():
        uploads = gr.File(
          label='Photos (or a zip of photos)',
          file_count='multiple',
          type='filepath',
          elem_id='uploads',
        )
        inputs = [uploads]
        with gr.Accordion('Options', open=True):
          for c in controls:
            inputs.append(_component(gr, c))
          inputs.append(
            gr.Radio(
              list(OUTPUT_FORMATS),
              value='png',
              label='Output format',
              info='PNG keeps every pixel; JPEG and WebP are smaller.',
              elem_id='output_format',
            )
          )
        style_inputs = []
        if styles:
          with gr.Accordion('Style', open=True):
            style_inputs.append(
              gr.Dropdown(
                [*styles, MIX],
                value=default_style(stylizer),
                label='Style',
                info="One of the model's styles, or a mix of them set with the sliders below.",
                elem_id='style',
              )
            )
            for name in styles:
              style_inputs.append(
                gr.Slider(
                  minimum=0.0,
                  maximum=1.0,
                  step=0.05,
                  value=0.0,
                  label=f'Mix: {name}',
                  info="Used when the style is a mix: each style in its share of the sliders' sum.",
                  elem_id=f'mix_{name}',
                )
              )
        api_style = gr.Textbox(value='', visible=False, label='style')
        button = gr.Button('Stylize', variant='primary', elem_id='stylize')
      with gr.Column():
        report = gr.Markdown(label='report', elem_id='report')
        zip_out = gr.File(label='All results (zip)', elem_id='zip')
        files_out = gr.File(label='Results', file_count='multiple', elem_id='results')
        compare = gr.Dropdown(label='Before / after', choices=[], elem_id='compare')
        slider = gr.ImageSlider(
          label='Before / after', type='filepath', format='png', elem_id='slider'
        )
        previews = gr.State([])
    button.click(
      ui_fn,
      inputs + style_inputs,
      [zip_out, files_out, report, slider, compare, previews],
      api_visibility='private',
      concurrency_id='device',
      concurrency_limit=1,
    )
    hidden = gr.Button(visible=False)
    hidden.click(
      api_fn,
      inputs + [api_style],
      [files_out, report],
      api_name='stylize',
      concurrency_id='device',
      concurrency_limit=1,
    )
    compare.change(show, [compare, previews], slider, api_visibility='private')
  demo.queue(default_concurrency_limit=1, max_size=limits.queue_size)
  demo.work_folders = work
  return demo


def _component(gr, c: Control):
  """The Gradio component for a `Control`."""
  common = dict(label=c.label, info=c.info, value=c.default, elem_id=f'option_{c.name}')
  if c.kind == 'slider':
    return gr.Slider(minimum=c.minimum, maximum=c.maximum, step=c.step, **common)
  if c.kind == 'number':
    return gr.Number(
      minimum=c.minimum,
      maximum=c.maximum,
      step=c.step or 1,
      precision=0 if c.step == 1 else None,
      **common,
    )
  if c.kind == 'checkbox':
    return gr.Checkbox(**common)
  if c.kind == 'dropdown':
    return gr.Dropdown(choices=list(c.choices), **common)
  return gr.Textbox(**common)


def launch(
  demo,
  *,
  host: str = '127.0.0.1',
  port: int = 7860,
  auth: Optional[tuple[str, str]] = None,
  limits: Limits = Limits(),
  block: bool = True,
):
  """Serves `demo` (from `build_app`) with no outbound traffic: the system-fonts
  theme, no analytics, no share link, uploads over `limits.max_upload_bytes`
  refused. Raises ValueError for a non-local `host` without `auth`."""
  check_host(host, auth)
  return demo.launch(
    server_name=host,
    server_port=port,
    auth=auth,
    share=False,
    theme=system_theme(),
    max_file_size=limits.max_upload_bytes,
    show_error=True,
    quiet=True,
    ssr_mode=False,
    prevent_thread_lock=not block,
    footer_links=['api'],
  )


__all__ = (
  'Control',
  'Limits',
  'Photo',
  'Result',
  'UploadError',
  'WorkFolders',
  'build_app',
  'check_host',
  'decode',
  'expand_uploads',
  'launch',
  'option_controls',
  'options_from_values',
  'output_names',
  'page_styles',
  'parse_auth',
  'read_zip',
  'safe_entry_name',
  'style_from_page',
  'style_from_text',
  'stylize_uploads',
)
