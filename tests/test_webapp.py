"""The web app's Gradio-free parts, in process: zip safety, names, limits, option
controls, a request's messages, and the command line's early errors. The page in
a real browser is tests/test_app.py (`slow`)."""

import contextlib
import dataclasses
import io
import os
import re
import struct
import zipfile
from typing import Literal, Optional

import numpy as np
import pytest
from absl import flags
from PIL import Image

from shopstyle_jax import app
from shopstyle_jax import webapp
from shopstyle_jax.images import read_image
from shopstyle_jax.options import FIELDS
from shopstyle_jax.options import StylizeOptions

LIMITS = webapp.Limits()


def fake_stylizer(image, options=None):
  """Stands in for a trained stylizer: inverts, then applies brightness as levels."""
  shift = round((options or StylizeOptions()).brightness * 127.5)
  return np.clip(255 - image.astype(int) + shift, 0, 255).astype(np.uint8)


def photo_bytes(fmt='JPEG', size=(24, 16), seed=0) -> bytes:
  image = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), np.uint8)
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format=fmt)
  return buf.getvalue()


def write(path, data: bytes) -> str:
  with open(path, 'wb') as f:
    f.write(data)
  return str(path)


def make_zip(path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> str:
  with zipfile.ZipFile(path, 'w', compression) as zf:
    for name, data in entries.items():
      zf.writestr(zipfile.ZipInfo(name) if name.endswith('/') else name, data)
  return str(path)


# --- Zips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
  'name',
  ['../x.jpg', 'a/../../x.jpg', '/etc/x.jpg', 'C:/x.jpg', 'c:x.jpg', 'a\\..\\..\\x.jpg', '..', ''],
)
def test_unsafe_entry_names_are_refused(name):
  assert webapp.safe_entry_name(name) is None


def test_safe_entry_names_are_normalised():
  assert webapp.safe_entry_name('shoes/./red.jpg') == 'shoes/red.jpg'
  assert webapp.safe_entry_name('shoes\\red.jpg') == 'shoes/red.jpg'
  assert webapp.safe_entry_name('a..b.jpg') == 'a..b.jpg'


def test_a_zip_gives_its_photos_with_their_paths_and_says_what_it_left_out(tmp_path):
  path = make_zip(
    tmp_path / 'set.zip',
    {
      'shoes/': b'',
      'shoes/red.jpg': photo_bytes(),
      'blue.PNG': photo_bytes('PNG'),
      'notes.txt': b'hello',
      '__MACOSX/shoes/._red.jpg': b'x',
      '.DS_Store': b'x',
    },
  )
  photos, skipped = webapp.read_zip(path, LIMITS)
  assert [(p.name, p.stem) for p in photos] == [
    ('set.zip:shoes/red.jpg', 'shoes/red'),
    ('set.zip:blue.PNG', 'blue'),
  ]
  assert photos[0].read() == photo_bytes()
  assert [name for name, _ in skipped] == ['set.zip:notes.txt']
  assert 'not an image' in skipped[0][1]


def test_a_zip_with_a_path_out_of_its_folder_is_refused(tmp_path):
  path = make_zip(tmp_path / 'evil.zip', {'ok.jpg': photo_bytes(), '../../etc/cron.jpg': b'x'})
  with pytest.raises(webapp.UploadError, match=r"'../../etc/cron.jpg' has an unsafe path"):
    webapp.read_zip(path, LIMITS)


def test_a_zip_bomb_is_refused_before_unpacking(tmp_path):
  # 64 MiB of zeros deflate to about 64 kB; the limit counts unpacked bytes.
  path = make_zip(tmp_path / 'bomb.zip', {'a.png': bytes(64 * 2**20)})
  assert os.path.getsize(path) < 2**20
  limits = webapp.Limits(max_unpacked_bytes=32 * 2**20)
  with pytest.raises(webapp.UploadError, match=r'unpacks to 64.0 MiB; .* up to 32.0 MiB'):
    webapp.read_zip(path, limits)


def test_a_zip_with_too_many_entries_is_refused(tmp_path):
  path = make_zip(tmp_path / 'many.zip', {f'{i}.jpg': b'' for i in range(11)})
  with pytest.raises(webapp.UploadError, match='11 entries; the app takes zips of up to 10'):
    webapp.read_zip(path, webapp.Limits(max_zip_entries=10))


def test_a_zip_entry_larger_than_it_declares_is_not_unpacked(tmp_path):
  """An entry whose header understates its size (a hand-made bomb): unpacking stops
  at the declared size, and the entry fails; the zip's other photos do not."""
  path = make_zip(
    tmp_path / 'liar.zip',
    {'a.jpg': photo_bytes(), 'b.jpg': photo_bytes(seed=1)},
    zipfile.ZIP_STORED,
  )
  data = bytearray(open(path, 'rb').read())
  declared = 100
  with zipfile.ZipFile(path) as zf:
    info = zf.getinfo('b.jpg')
  struct.pack_into('<I', data, info.header_offset + 22, declared)  # Local header.
  central = data.rfind(b'PK\x01\x02')  # b.jpg's central directory record is the last.
  struct.pack_into('<I', data, central + 24, declared)
  write(path, bytes(data))
  photos, _ = webapp.read_zip(path, LIMITS)
  assert photos[0].read() == photo_bytes()
  with pytest.raises(webapp.UploadError, match='could not be unpacked|more than its zip declares'):
    photos[1].read()


def test_a_damaged_zip_is_one_failure_and_the_other_uploads_go_on(tmp_path):
  bad = write(tmp_path / 'bad.zip', b'PK\x03\x04 not really a zip')
  good = write(tmp_path / 'good.jpg', photo_bytes())
  photos, failures = webapp.expand_uploads([bad, good], LIMITS)
  assert [p.name for p in photos] == ['good.jpg']
  assert failures[0][0] == 'bad.zip' and 'zip refused: not a readable zip' in failures[0][1]


# --- Limits and messages ------------------------------------------------------------


def test_nothing_uploaded_says_what_to_do():
  for nothing in (None, []):
    with pytest.raises(webapp.UploadError, match='No files uploaded: drop photos'):
      webapp.expand_uploads(nothing, LIMITS)


def test_too_many_photos_in_one_request_are_refused(tmp_path):
  path = make_zip(tmp_path / 'big.zip', {f'{i}.jpg': b'' for i in range(4)})
  one = write(tmp_path / 'one.jpg', b'')
  with pytest.raises(webapp.UploadError, match='5 photos in one request; the app takes up to 4'):
    webapp.expand_uploads([path, one], webapp.Limits(max_photos=4))


def test_decode_refuses_empty_corrupt_and_non_image_files():
  with pytest.raises(webapp.UploadError, match=r'empty file \(0 bytes\)'):
    webapp.decode(b'', LIMITS)
  with pytest.raises(webapp.UploadError, match='not a readable image.*upload a JPEG, PNG'):
    webapp.decode(photo_bytes()[:200], LIMITS)  # A truncated JPEG.
  with pytest.raises(webapp.UploadError, match='not a readable image'):
    webapp.decode(b'%PDF-1.4 a price list', LIMITS)


def test_decode_refuses_photos_over_the_pixel_limit_from_their_header():
  """A 100-megapixel image is refused from its header, before any pixel is decoded."""
  buf = io.BytesIO()
  Image.new('1', (10_000, 10_000)).save(buf, format='PNG')  # About 12 kB on disk.
  with pytest.raises(
    webapp.UploadError, match=r'10000x10000 pixels \(100.0 megapixels\); .* up to 40.0 megapixels'
  ):
    webapp.decode(buf.getvalue(), LIMITS)
  # Past Pillow's own limit (179 megapixels) its error is turned into the same advice.
  buf = io.BytesIO()
  Image.new('1', (20_000, 10_000)).save(buf, format='PNG')
  with pytest.raises(webapp.UploadError, match=r'exceeds limit.*; the app takes photos of up to'):
    webapp.decode(buf.getvalue(), webapp.Limits(max_pixels=10**9))
  small = photo_bytes(size=(30, 20))
  assert webapp.decode(small, webapp.Limits(max_pixels=600)).shape == (20, 30, 3)
  with pytest.raises(webapp.UploadError, match='30x20 pixels'):
    webapp.decode(small, webapp.Limits(max_pixels=599))


def test_decode_reads_as_the_package_reader_does():
  data = photo_bytes('PNG')
  np.testing.assert_array_equal(webapp.decode(data, LIMITS), read_image(data))
  gray = io.BytesIO()
  Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(gray, format='PNG')
  assert webapp.decode(gray.getvalue(), LIMITS).shape == (3, 4, 3)


# --- Names ----------------------------------------------------------------------------


def test_output_names_keep_the_uploads_names_and_number_duplicates():
  stems = ['shoe', 'shoe', 'Shoe', 'bag', 'shoe (2)', 'shoes/red', 'shoes/red']
  assert webapp.output_names(stems, 'png') == [
    'shoe.png',
    'shoe (2).png',
    'Shoe (3).png',
    'bag.png',
    'shoe (2) (2).png',
    'shoes/red.png',
    'shoes/red (2).png',
  ]


def test_upload_names_are_the_files_last_component():
  assert webapp.upload_name('/tmp/gradio/abc123/red shoe.JPG') == 'red shoe.JPG'
  assert webapp.upload_name('C:\\Users\\me\\shoe.jpg') == 'shoe.jpg'


# --- Option controls ------------------------------------------------------------------


def test_every_stylize_option_has_a_control_in_the_fields_order():
  controls = webapp.option_controls()
  assert tuple(c.name for c in controls) == FIELDS
  by_name = {c.name: c for c in controls}
  assert by_name['brightness'].kind == 'slider' and by_name['brightness'].minimum == -1.0
  assert by_name['max_side'].kind == 'number' and by_name['max_side'].default == 0
  assert all(c.info for c in controls)  # From StylizeOptions's docstring.
  assert 'added in [-1, 1]' in by_name['brightness'].info


def test_the_controls_defaults_are_the_options_defaults():
  controls = webapp.option_controls()
  assert webapp.options_from_values([c.default for c in controls], controls) == StylizeOptions()


def test_control_values_become_checked_options():
  controls = webapp.option_controls()
  values = {c.name: c.default for c in controls}
  values.update(brightness=0.2, max_side=512.0)  # The page sends numbers as floats.
  options = webapp.options_from_values([values[c.name] for c in controls], controls)
  assert options == StylizeOptions(brightness=0.2, max_side=512)
  values.update(contrast=-1.0)
  with pytest.raises(ValueError, match='contrast=-1.0 must be >= 0'):
    webapp.options_from_values([values[c.name] for c in controls], controls)


@dataclasses.dataclass(frozen=True)
class _LaterOptions:
  """Options as another branch may extend them.

  Attributes:
    brightness: added.
    background: what goes behind the product.
    preserve_color: keep the photo's colours.
    sharpness: how much detail, in [0, 1];
      None for the model's.
    label: a free text.
  """

  brightness: float = 0.0
  background: Literal['keep', 'white', 'transparent'] = 'keep'
  preserve_color: bool = False
  sharpness: Optional[float] = None
  label: str = ''


def test_options_added_later_get_controls_from_their_types():
  controls = {c.name: c for c in webapp.option_controls(_LaterOptions)}
  assert list(controls) == ['brightness', 'background', 'preserve_color', 'sharpness', 'label']
  assert controls['background'].kind == 'dropdown'
  assert controls['background'].choices == ('keep', 'white', 'transparent')
  assert (
    controls['preserve_color'].kind == 'checkbox' and controls['preserve_color'].default is False
  )
  assert controls['sharpness'].kind == 'number' and controls['sharpness'].default == 0
  assert controls['sharpness'].info == "how much detail, in [0, 1]; None for the model's."
  assert controls['label'].kind == 'text'


# --- A request --------------------------------------------------------------------------


def test_a_request_stylizes_what_it_can_and_reports_the_rest(tmp_path):
  up = tmp_path / 'uploads'
  up.mkdir()
  (up / 'a').mkdir()
  (up / 'b').mkdir()
  good = write(up / 'a' / 'shoe.jpg', photo_bytes())
  same_name = write(up / 'b' / 'shoe.jpg', photo_bytes(seed=1))
  broken = write(up / 'broken.jpg', photo_bytes()[:300])
  empty = write(up / 'empty.png', b'')
  text = write(up / 'prices.csv', b'sku,price\n1,2\n')
  zipped = make_zip(up / 'set.zip', {'bags/bag.png': photo_bytes('PNG', seed=2), 'evil.txt': b'x'})
  out = tmp_path / 'out'
  calls = []
  result = webapp.stylize_uploads(
    fake_stylizer,
    [good, same_name, broken, empty, text, zipped],
    StylizeOptions(brightness=0.1),
    'png',
    str(out),
    LIMITS,
    progress=lambda i, n, name: calls.append((i, n, name)),
  )
  assert [name for name, _ in result.files] == ['shoe.png', 'shoe (2).png', 'bags/bag.png']
  for (name, path), src in zip(result.files, [good, same_name]):
    want = fake_stylizer(read_image(src), StylizeOptions(brightness=0.1))
    np.testing.assert_array_equal(read_image(path), want)
  with zipfile.ZipFile(result.zip_path) as zf:
    assert zf.namelist() == ['shoe.png', 'shoe (2).png', 'bags/bag.png']
  failed = dict(result.failures)
  assert set(failed) == {'set.zip:evil.txt', 'broken.jpg', 'empty.png', 'prices.csv'}
  assert 'empty file' in failed['empty.png'] and 'not a readable image' in failed['broken.jpg']
  report = result.report()
  assert report.startswith('**Stylized 3 photos**') and '4 file(s) not stylized' in report
  assert '`broken.jpg`: not a readable image' in report
  assert calls[0] == (0, 6, 'shoe.jpg') and calls[-1] == (6, 6, '')
  assert len(result.previews) == 3


def test_a_request_with_only_bad_files_writes_no_zip(tmp_path):
  broken = write(tmp_path / 'broken.jpg', b'\xff\xd8\xff garbage')
  result = webapp.stylize_uploads(
    fake_stylizer, [broken], StylizeOptions(), 'jpg', str(tmp_path / 'out'), LIMITS
  )
  assert result.files == [] and result.zip_path is None
  assert result.report().startswith('**Nothing was stylized.**')


def test_user_names_cannot_inject_markdown():
  result = webapp.Result([], None, [], [('<img src=x>`*.jpg', 'bad')], 0.0)
  assert '\\<img src=x\\>\\`\\*.jpg' in result.report()


def test_work_folders_are_removed_when_old_and_at_close(tmp_path):
  work = webapp.WorkFolders(str(tmp_path / 'root'), keep_seconds=60)
  old, new = work.new(), work.new()
  os.utime(old, (0, 0))
  work.prune()
  assert not os.path.exists(old) and os.path.exists(new)
  work.close()
  assert not os.path.exists(work.root)


# --- Serving and the command line ---------------------------------------------------------


def test_only_loopback_is_served_without_a_password():
  for host in ('127.0.0.1', 'localhost', '::1', '127.0.0.2'):
    webapp.check_host(host, None)
  for host in ('0.0.0.0', '192.168.1.5', 'shop.example.com', '::'):
    with pytest.raises(ValueError, match='--auth=user:password or the environment variable'):
      webapp.check_host(host, None)
    webapp.check_host(host, ('shop', 'secret'))


def test_auth_is_user_colon_password():
  assert webapp.parse_auth('shop:se:cret') == ('shop', 'se:cret')
  assert webapp.parse_auth(None) is None and webapp.parse_auth('') is None
  for bad in ('shop', 'shop:', ':secret'):
    with pytest.raises(ValueError, match='user:password'):
      webapp.parse_auth(bad)


def _cli(*args, env=None):
  """The app's command line in this process, on fresh flags: (status, stderr)."""
  flag_values = flags.FlagValues()
  app.define_flags(flag_values)
  flag_values(['app', *args])
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr):
    return app.run(flag_values), stderr.getvalue()


def test_the_command_line_needs_a_password_off_loopback(tmp_path, monkeypatch):
  monkeypatch.delenv(webapp.AUTH_ENV, raising=False)
  status, err = _cli(f'--workdir={tmp_path}', '--host=0.0.0.0')
  assert status == 2 and err.startswith('Error: --host=0.0.0.0 lets other machines reach the app')


def test_the_command_line_names_a_wrong_workdir_or_model(tmp_path):
  status, err = _cli(f'--workdir={tmp_path / "missing"}')
  assert status == 2 and err.startswith('Error: ') and 'missing' in err
  status, err = _cli(f'--model={write(tmp_path / "x.bin", b"junk")}')
  assert status == 2 and 'is not a shopstyle_jax exported stylizer' in err
  status, err = _cli()
  assert status == 2 and 'Give one of --workdir' in err


def test_the_library_does_not_import_the_app():
  import shopstyle_jax  # pylint: disable=g-import-not-at-top

  folder = os.path.dirname(shopstyle_jax.__file__)
  for root, _, files in os.walk(folder):
    for name in files:
      if name.endswith('.py') and name not in ('app.py', 'webapp.py'):
        text = open(os.path.join(root, name)).read()
        assert 'webapp' not in text and 'shopstyle_jax.app' not in text, name


def test_the_api_takes_the_options_by_their_names_and_the_theme_loads_no_web_fonts():
  demo = webapp.build_app(fake_stylizer, work=webapp.WorkFolders(keep_seconds=0))
  try:
    endpoints = demo.get_api_info()['named_endpoints']
    assert list(endpoints) == ['/stylize']  # The page's own events are private.
    names = [p['parameter_name'] for p in endpoints['/stylize']['parameters']]
    assert names == ['files', *FIELDS, 'output_format', 'style']
    assert [r['label'] for r in endpoints['/stylize']['returns']] == ['Results', 'report']
  finally:
    demo.work_folders.close()
  css = webapp.system_theme()._get_theme_css()
  assert not re.findall(r'url\(\s*[\'"]?(?:https?:)?//', css)
  assert '@import' not in css


def test_a_photo_the_stylizer_fails_on_is_one_failure(tmp_path):
  def stylizer(image, options=None):
    if image.shape[0] == 20:
      raise MemoryError('device out of memory')
    return fake_stylizer(image, options)

  small = write(tmp_path / 'small.jpg', photo_bytes(size=(30, 20)))
  fine = write(tmp_path / 'fine.jpg', photo_bytes())
  result = webapp.stylize_uploads(
    stylizer, [small, fine], StylizeOptions(), 'png', str(tmp_path / 'out'), LIMITS
  )
  assert [name for name, _ in result.files] == ['fine.png']
  assert result.failures == [
    ('small.jpg', 'the stylizer failed on it (MemoryError: device out of memory).')
  ]


# --- A multi-style model's style and mix -------------------------------------------------


class MultiStyleStylizer:
  """Stands in for a multi-style stylizer: `fake_stylizer`, shifted by the style's
  weights, and the style it was asked for, recorded."""

  styles = ('sketch', 'watercolor', 'identity')
  default_style = 'watercolor'

  def __init__(self):
    self.asked = []

  def __call__(self, image, options=None, *, style=None):
    self.asked.append(style)
    return fake_stylizer(image, options)


def test_the_page_picker_and_sliders_give_a_style_or_a_mix():
  styles = MultiStyleStylizer.styles
  assert webapp.page_styles(MultiStyleStylizer()) == styles
  assert webapp.default_style(MultiStyleStylizer()) == 'watercolor'
  assert webapp.page_styles(fake_stylizer) == ()  # One style: nothing to pick.
  assert webapp.style_from_page('sketch', [0.3, 0.0, 0.0], styles) == 'sketch'
  mix = webapp.style_from_page(webapp.MIX, [1.0, 1.0, 0.0], styles)
  assert mix == {'sketch': 0.5, 'watercolor': 0.5}
  mix = webapp.style_from_page(webapp.MIX, [0.0, 0.6, 0.2], styles)
  assert list(mix) == ['watercolor', 'identity'] and mix['watercolor'] == pytest.approx(0.75)
  with pytest.raises(ValueError, match='at least one style above 0'):
    webapp.style_from_page(webapp.MIX, [0.0, 0.0, 0.0], styles)
  assert webapp.style_from_page('anything', [], ()) is None


def test_the_api_style_is_the_command_lines_and_is_checked():
  stylizer = MultiStyleStylizer()
  assert webapp.style_from_text('', stylizer) is None
  assert webapp.style_from_text('sketch', stylizer) == 'sketch'
  assert webapp.style_from_text('sketch:0.25,identity:0.75', stylizer) == {
    'sketch': 0.25,
    'identity': 0.75,
  }
  with pytest.raises(ValueError, match='sketch, watercolor, identity'):
    webapp.style_from_text('oil', stylizer)
  with pytest.raises(ValueError, match='sum to 1.5'):
    webapp.style_from_text('sketch:0.5,watercolor:1', stylizer)


def _event_fn(demo, name):
  (fn,) = [f.fn for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == name]
  return fn


def test_the_page_and_api_send_the_style_to_the_stylizer(tmp_path):
  stylizer = MultiStyleStylizer()
  demo = webapp.build_app(stylizer, work=webapp.WorkFolders(str(tmp_path / 'work'), 0))
  try:
    components = {c['props'].get('elem_id'): c for c in demo.config['components']}
    assert components['style']['props']['choices'][-1][0] == webapp.MIX
    assert components['style']['props']['value'] == 'watercolor'
    assert {'mix_sketch', 'mix_watercolor', 'mix_identity'} <= set(components)
    names = [
      p['parameter_name'] for p in demo.get_api_info()['named_endpoints']['/stylize']['parameters']
    ]
    assert names == ['files', *FIELDS, 'output_format', 'style']
    photo = write(tmp_path / 'shoe.jpg', photo_bytes())
    defaults = [c.default for c in webapp.option_controls()]
    noop = lambda *a, **k: None
    # The page: a mix from the sliders, then one style from the picker.
    out = _event_fn(demo, 'ui_fn')([photo], *defaults, 'png', webapp.MIX, 0, 2, 2, progress=noop)
    assert 'style watercolor 50%, identity 50%' in out[2], out[2]
    assert read_image(out[1][0]).shape == (16, 24, 3)
    _event_fn(demo, 'ui_fn')([photo], *defaults, 'png', 'sketch', 0, 2, 2, progress=noop)
    # The API: the command line's syntax; a wrong style is a message, nothing stylized.
    files, report = _event_fn(demo, 'api_fn')(
      [photo], *defaults, 'png', 'sketch:0.5,identity:0.5', progress=noop
    )
    assert len(files) == 1 and 'style sketch 50%, identity 50%' in report
    files, report = _event_fn(demo, 'api_fn')([photo], *defaults, 'png', 'oil', progress=noop)
    assert files == [] and "Unknown style 'oil'" in report
    assert stylizer.asked == [
      {'watercolor': 0.5, 'identity': 0.5},
      'sketch',
      {'sketch': 0.5, 'identity': 0.5},
    ]
  finally:
    demo.work_folders.close()
