"""The batch CLI (python -m shopstyle_jax.stylize), its library (batch) and image files."""

import hashlib
import io
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from absl import flags
from PIL import Image
from PIL import ImageOps

from conftest import assert_pixel_rule
from shopstyle_jax import StylizeOptions
from shopstyle_jax import batch
from shopstyle_jax import images as image_lib
from shopstyle_jax import inference
from shopstyle_jax import load_stylizer
from shopstyle_jax import stylize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
  """A smooth, product-photo-like RGB image."""
  y, x = np.mgrid[0:h, 0:w] / max(h, w)
  phase = np.random.RandomState(seed).uniform(0, 6, 3)
  channels = [127.5 + 120 * np.sin(6 * x + 4 * y + p) for p in phase]
  return np.stack(channels, -1).round().astype(np.uint8)


def _write_catalogue(folder) -> dict[str, tuple[int, int]]:
  """Writes photos of several kinds; returns {readable name: upright (H, W)}."""
  os.makedirs(folder / 'shoes' / 'red', exist_ok=True)
  Image.fromarray(_photo(40, 60, 1)).save(folder / 'bag.jpg', quality=92)
  Image.fromarray(_photo(33, 47, 2)).save(folder / 'shoes' / 'boot.png')
  Image.fromarray(_photo(70, 24, 3)).save(folder / 'shoes' / 'red' / 'heel.webp', quality=90)
  Image.fromarray(_photo(32, 32, 4)[..., 0]).save(folder / 'gray.png')
  rgba = np.concatenate([_photo(20, 70, 5), np.full((20, 70, 1), 200, np.uint8)], -1)
  Image.fromarray(rgba).save(folder / 'cutout.png')
  Image.fromarray(_photo(25, 30, 6)[..., 1].astype(np.uint16) * 257).save(folder / 'gray16.png')
  # Stored 24 wide and 36 high, shown rotated a quarter turn: upright it is 36 x 24.
  rotated = Image.fromarray(_photo(24, 36, 7))
  exif = rotated.getexif()
  exif[0x0112] = 6
  rotated.save(folder / 'rotated.jpg', exif=exif.tobytes(), quality=92)
  whole = io.BytesIO()
  Image.fromarray(_photo(48, 48, 8)).save(whole, format='JPEG')
  (folder / 'broken.jpg').write_bytes(whole.getvalue()[:400])  # Truncated.
  (folder / 'notes.txt').write_text('not a photo')
  Image.fromarray(_photo(8, 8)).save(folder / '.hidden.png')
  return {
    'bag.jpg': (40, 60),
    'shoes/boot.png': (33, 47),
    'shoes/red/heel.webp': (70, 24),
    'gray.png': (32, 32),
    'cutout.png': (20, 70),
    'gray16.png': (25, 30),
    'rotated.jpg': (36, 24),
  }


def _digests(folder) -> dict[str, str]:
  return {
    str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
    for p in sorted(folder.rglob('*'))
    if p.is_file()
  }


def _output(out_dir, name: str, fmt: str = 'png'):
  return out_dir / f'{os.path.splitext(name)[0]}.{fmt}'


def test_cli_stylizes_a_catalogue_and_a_rerun_rewrites_nothing(tmp_path, trained_workdir, capsys):
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  sizes = _write_catalogue(photos)
  before = _digests(photos)
  args = (f'--workdir={trained_workdir}', f'--input={photos}', f'--output={out}')
  assert _cli(*args) == 0
  stdout = capsys.readouterr().out
  assert '7 done, 0 skipped (output already there), 1 failed' in stdout
  assert 'failed: broken.jpg' in stdout
  written = sorted(str(p.relative_to(out)) for p in out.rglob('*') if p.is_file())
  assert written == sorted(str(_output(out, n).relative_to(out)) for n in sizes)
  assert _digests(photos) == before  # Inputs untouched.

  stylizer = load_stylizer(trained_workdir)
  for name, size in sizes.items():
    result = np.asarray(Image.open(_output(out, name)))
    assert result.shape == size + (3,), name
    # The same pixels as the Python API on the same file.
    expected = stylizer(image_lib.read_image(str(photos / name)))
    assert_pixel_rule(result, expected, same_program=True)

  mtimes = {p: p.stat().st_mtime_ns for p in out.rglob('*')}
  assert _cli(*args, '--strict') == 1  # --strict: a failed file fails the run.
  assert '0 done, 7 skipped (output already there), 1 failed' in capsys.readouterr().out
  assert {p: p.stat().st_mtime_ns for p in out.rglob('*')} == mtimes
  assert _digests(photos) == before


def test_cli_never_writes_into_its_input(tmp_path, trained_workdir, capsys):
  photos = tmp_path / 'photos'
  photos.mkdir()
  Image.fromarray(_photo(20, 20)).save(photos / 'a.png')
  before = _digests(photos)
  assert _cli(f'--workdir={trained_workdir}', f'--input={photos}', f'--output={photos}') == 2
  assert '--output is the input folder' in capsys.readouterr().err
  # A single file whose output would be itself.
  assert (
    _cli(f'--workdir={trained_workdir}', f'--input={photos / "a.png"}', f'--output={photos}') == 2
  )
  assert 'would be overwritten' in capsys.readouterr().err
  assert _digests(photos) == before


@pytest.mark.slow
def test_module_runs_as_a_program(tmp_path, trained_workdir):
  """`python -m shopstyle_jax.stylize`: outputs, the summary and the progress line."""
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  sizes = _write_catalogue(photos)
  # The test process's XLA_FLAGS (8 CPU devices): the same backend as the in-process
  # stylizer, so the program's pixels must equal its pixels exactly.
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'shopstyle_jax.stylize',
      f'--workdir={trained_workdir}',
      f'--input={photos}',
      f'--output={out}',
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-5000:]
  assert '7 done, 0 skipped (output already there), 1 failed' in proc.stdout
  assert 'FAILED broken.jpg' in proc.stderr
  assert 'images/s' in proc.stderr and 'ETA' in proc.stderr, proc.stderr
  stylizer = load_stylizer(trained_workdir)
  for name in sizes:
    assert_pixel_rule(
      np.asarray(Image.open(_output(out, name))),
      stylizer(image_lib.read_image(str(photos / name))),
      same_program=True,
    )


def test_find_inputs_folder_list_and_file(tmp_path):
  photos = tmp_path / 'photos'
  _write_catalogue(photos)
  out = photos / 'styled'  # An output inside the input folder is not walked.
  out.mkdir()
  Image.fromarray(_photo(8, 8)).save(out / 'old.png')
  root, paths = batch.find_inputs(str(photos), exclude=str(out))
  assert root == str(photos)
  assert [os.path.relpath(p, photos) for p in paths] == [
    'bag.jpg',
    'broken.jpg',
    'cutout.png',
    'gray.png',
    'gray16.png',
    'rotated.jpg',
    'shoes/boot.png',
    'shoes/red/heel.webp',
  ]

  listing = tmp_path / 'list.txt'
  listing.write_text(
    '# catalogue\nphotos/shoes/boot.png\n\n  photos/shoes/red/heel.webp \n'
    f'{photos / "shoes" / "boot.png"}\nphotos/missing.png\n'
  )
  root, paths = batch.find_inputs(str(listing))
  assert root == str(photos)
  assert paths == [
    str(photos / 'shoes' / 'boot.png'),
    str(photos / 'shoes/red/heel.webp'),
    str(photos / 'missing.png'),
  ]

  root, paths = batch.find_inputs(str(photos / 'bag.jpg'))
  assert (root, paths) == (str(photos), [str(photos / 'bag.jpg')])
  with pytest.raises(ValueError, match='does not exist'):
    batch.find_inputs(str(tmp_path / 'nowhere'))
  (tmp_path / 'binary.dat').write_bytes(b'\xff\xfe\x00\x81')
  with pytest.raises(ValueError, match='neither an image'):
    batch.find_inputs(str(tmp_path / 'binary.dat'))


def test_plan_jobs_keeps_paths_and_separates_same_stems(tmp_path):
  root = str(tmp_path)
  paths = [str(tmp_path / 'a.jpg'), str(tmp_path / 'a.png'), str(tmp_path / 'x' / 'b.jpeg')]
  jobs = batch.plan_jobs(root, paths, str(tmp_path / 'out'), 'png')
  assert [os.path.relpath(j.dst, tmp_path / 'out') for j in jobs] == [
    'a.png',
    'a.png.png',
    'x/b.png',
  ]
  assert [j.name for j in jobs] == ['a.jpg', 'a.png', 'x/b.jpeg']
  with pytest.raises(ValueError, match='would be overwritten'):
    batch.plan_jobs(root, paths, root, 'png')


def test_stylize_files_groups_shapes_over_devices(tmp_path, trained_workdir):
  """In-process, on the 8 test devices: photos of different sizes but equal
  padded shapes run together, and give the single-photo API's pixels."""
  import jax  # pylint: disable=g-import-not-at-top

  stylizer = load_stylizer(trained_workdir)
  sizes = [
    (30, 40),
    (32, 33),
    (20, 64),
    (31, 40),
    (40, 30),
    (64, 20),
    (5, 7),
    (30, 40),
    (33, 60),
    (17, 17),
  ]
  jobs = []
  for i, size in enumerate(sizes):
    src = tmp_path / 'in' / f'{i}.png'
    src.parent.mkdir(exist_ok=True)
    Image.fromarray(_photo(*size, seed=i)).save(src)
    jobs.append(batch.Job(str(src), str(tmp_path / 'out' / f'{i}.png'), f'{i}.png'))
  jobs.append(
    batch.Job(str(tmp_path / 'in' / 'gone.png'), str(tmp_path / 'out' / 'gone.png'), 'gone.png')
  )
  expected = [
    stylizer(image_lib.read_image(j.src), brightness=0.1, contrast=1.2) for j in jobs[:-1]
  ]
  reports = []
  options = StylizeOptions(brightness=0.1, contrast=1.2)
  summary = batch.stylize_files(stylizer, jobs, options=options, workers=2, report=reports.append)
  assert summary.done == len(sizes) and summary.failed == [('gone.png', 'file not found')]
  assert reports == ['FAILED gone.png: file not found']
  for job, size, want in zip(jobs, sizes, expected):
    out = np.asarray(Image.open(job.dst))
    assert out.shape == size + (3,)
    assert_pixel_rule(out, want, same_program=True)  # One photo per call on CPU.

  # Sharded over 8 devices, two photos each: another program, the tolerant rule.
  summary = batch.stylize_files(
    stylizer, jobs[:-1], batch_size=16, devices=jax.local_devices(), options=options
  )
  assert summary.done == len(sizes) and not summary.failed
  assert_pixel_rule([np.asarray(Image.open(job.dst)) for job in jobs[:-1]], expected)


def test_call_sizes_are_few():
  assert [batch._call_size(n, 8, 64) for n in (1, 8, 9, 17, 33, 64)] == [8, 8, 16, 32, 64, 64]
  assert [batch._call_size(n, 1, 1) for n in (1,)] == [1]
  assert batch._call_size(5, 2, 6) == 6


def test_max_side_shrinks_then_restores_size(tmp_path, trained_workdir):
  stylizer = load_stylizer(trained_workdir)
  src = tmp_path / 'big.png'
  Image.fromarray(_photo(90, 150)).save(src)
  job = batch.Job(str(src), str(tmp_path / 'big_out.png'), 'big.png')
  summary = batch.stylize_files(stylizer, [job], options=StylizeOptions(max_side=64), workers=1)
  assert summary.done == 1
  out = np.asarray(Image.open(job.dst))
  assert out.shape == (90, 150, 3)
  np.testing.assert_array_equal(out, stylizer(image_lib.read_image(str(src)), max_side=64))


def _cli(*args) -> int:
  """Runs the stylize command line in this process, on fresh flags."""
  flag_values = flags.FlagValues()
  stylize.define_flags(flag_values)
  flag_values(['stylize', *args])
  return stylize.run(flag_values)


def test_cli_mistakes_are_one_line_before_the_model_loads(
  tmp_path, trained_workdir, monkeypatch, capsys
):
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  photos.mkdir()
  Image.fromarray(_photo(20, 20)).save(photos / 'a.png')
  (tmp_path / 'a_file').write_text('')

  def no_model(*args, **kwargs):
    raise AssertionError('the model was loaded')

  monkeypatch.setattr(inference, 'load_stylizer', no_model)
  good = (f'--workdir={trained_workdir}', f'--input={photos}', f'--output={out}')
  for args, message in [
    ((f'--workdir={tmp_path / "nowhere"}',), 'is not a shopstyle_jax workdir'),
    ((f'--workdir={photos}',), 'is not a shopstyle_jax workdir'),
    (('--step=999',), r'No checkpoint at step 999 .*available steps: \[.*4\]'),
    (('--brightness=nan',), 'brightness=nan must be a finite number'),
    (('--brightness=2',), r'brightness=2.0 must be in \[-1, 1\]'),
    (('--contrast=-inf',), 'contrast=-inf must be a finite number'),
    (('--max_side=0',), 'max_side=0 must be a positive integer'),
    ((f'--output={tmp_path / "a_file" / "sub"}',), 'cannot be written'),
    ((f'--output={tmp_path / "a_file"}',), 'exists and is not a folder'),
  ]:
    assert _cli(*good, *args) == 2, args
    err = capsys.readouterr().err
    assert err.startswith('Error: ') and err.count('\n') == 1, err
    assert re.search(message, err), (args, err)
  assert not out.exists()  # Nothing written, not even the output folder.


def test_cli_cleans_a_killed_runs_temporary_files_and_honours_the_umask(tmp_path, trained_workdir):
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  (photos / 'sub').mkdir(parents=True)
  Image.fromarray(_photo(20, 24)).save(photos / 'a.png')
  Image.fromarray(_photo(21, 17, 1)).save(photos / 'sub' / 'b.jpg')
  (out / 'sub').mkdir(parents=True)
  stale = [out / '.a.pngq3x_9zk1.tmp', out / 'sub' / '.b.png0f1e2d3c.tmp']
  kept = [
    out / '.a.png.tmp',
    out / '.c.pngq3x_9zk1.tmp',
    out / 'notes.tmp',
    out / 'sub' / '.b.png0f1e2d3c.tmp.bak',
  ]
  for path in stale + kept:
    path.write_bytes(b'half a PNG')
  old = os.umask(0o027)
  try:
    assert _cli(f'--workdir={trained_workdir}', f'--input={photos}', f'--output={out}') == 0
  finally:
    os.umask(old)
  assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
  for name in ('a.png', 'sub/b.png'):
    assert (out / name).stat().st_mode & 0o777 == 0o640, name  # 0o666 & ~umask


def test_write_image_honours_the_umask(tmp_path):
  umask = os.umask(0)
  os.umask(umask)
  image_lib.write_image(_photo(4, 4), str(tmp_path / 'a.png'))
  assert (tmp_path / 'a.png').stat().st_mode & 0o777 == 0o666 & ~umask
  assert image_lib.stale_temp_files(str(tmp_path), ['a.png']) == []
  assert image_lib.stale_temp_files(str(tmp_path / 'nowhere'), ['a.png']) == []


def test_list_outputs_are_relative_to_the_entries_common_folder(tmp_path):
  photos = tmp_path / 'photos'
  _write_catalogue(photos)
  (tmp_path / 'lists').mkdir()
  (tmp_path / 'link').symlink_to(photos, target_is_directory=True)
  # Absolute paths, one through a symbolic link to the folder, and a relative one.
  listing = tmp_path / 'lists' / 'today.txt'
  listing.write_text(
    f'{photos / "bag.jpg"}\n{tmp_path / "link" / "shoes" / "boot.png"}\n'
    '../photos/shoes/red/heel.webp\n../link/bag.jpg\n'
  )
  root, paths = batch.find_inputs(str(listing))
  assert root == os.path.realpath(photos) and len(paths) == 3
  jobs = batch.plan_jobs(root, paths, str(tmp_path / 'out'), 'png')
  assert [os.path.relpath(j.dst, tmp_path / 'out') for j in jobs] == [
    'bag.png',
    'shoes/boot.png',
    'shoes/red/heel.png',
  ]
  with pytest.raises(ValueError, match='is not under'):
    batch.plan_jobs(str(photos / 'shoes'), paths, str(tmp_path / 'out'), 'png')


def test_progress_line(tmp_path):
  stream = io.StringIO()
  progress = batch.Progress(4, stream=stream, interval=0.0)
  progress.update(2)
  progress.message('FAILED x.jpg: broken')
  progress.update(2)
  progress.close()
  text = stream.getvalue()
  assert '2/4 images (50%)' in text and '4/4 images (100%)' in text
  assert 'images/s' in text and 'ETA' in text and 'FAILED x.jpg: broken\n' in text


# --- Reading files -------------------------------------------------------------------


@pytest.mark.parametrize('orientation', range(1, 9))
def test_read_image_applies_exif_orientation_as_pillow(tmp_path, orientation):
  image = Image.fromarray(_photo(6, 10))
  exif = image.getexif()
  exif[0x0112] = orientation
  path = str(tmp_path / 'o.png')
  image.save(path, exif=exif.tobytes())
  expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
  np.testing.assert_array_equal(image_lib.read_image(path), expected)


def test_read_image_modes(tmp_path):
  rgb = _photo(12, 20)
  rgb16 = rgb.astype(np.uint16) * 256 + np.arange(20, dtype=np.uint16)[:, None]
  cv2.imwrite(str(tmp_path / 'rgb16.png'), rgb16[..., ::-1])
  got = image_lib.read_image(str(tmp_path / 'rgb16.png'))
  assert got.dtype == np.uint16
  np.testing.assert_array_equal(got, rgb16)  # Full 16 bits, not Pillow's 8.
  rgba16 = np.concatenate([rgb16, np.full((12, 20, 1), 65535, np.uint16)], -1)
  rgba16[:, :10, 3] = 0  # left half transparent: white after compositing
  cv2.imwrite(str(tmp_path / 'rgba16.png'), rgba16[..., [2, 1, 0, 3]])
  expected = rgb16.copy()
  expected[:, :10] = 65535
  np.testing.assert_array_equal(image_lib.read_image(str(tmp_path / 'rgba16.png')), expected)

  gray16 = rgb16[..., 0]
  Image.fromarray(gray16).save(tmp_path / 'gray16.png')
  np.testing.assert_array_equal(image_lib.read_image(str(tmp_path / 'gray16.png')), gray16)

  palette = Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE, colors=16)
  palette.save(tmp_path / 'palette.png')
  np.testing.assert_array_equal(
    image_lib.read_image(str(tmp_path / 'palette.png')), np.asarray(palette.convert('RGB'))
  )
  palette.save(tmp_path / 'transparent.png', transparency=0)
  transparent = image_lib.read_image(str(tmp_path / 'transparent.png'))
  assert transparent.shape == (12, 20, 3)
  index0 = np.asarray(palette) == 0
  assert index0.any() and (transparent[index0] == 255).all()

  Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'cmyk.jpg')
  assert image_lib.read_image(str(tmp_path / 'cmyk.jpg')).shape == (12, 20, 3)
  Image.fromarray(rgb[..., 0] > 128).save(tmp_path / 'bits.png')
  bits = image_lib.read_image(str(tmp_path / 'bits.png'))
  assert bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 255}
  Image.fromarray(rgb).save(tmp_path / 'x.webp', lossless=True)
  np.testing.assert_array_equal(image_lib.read_image(str(tmp_path / 'x.webp')), rgb)


def test_read_image_rejects_bad_files(tmp_path):
  (tmp_path / 'text.png').write_text('hello')
  with pytest.raises(image_lib.ImageReadError, match='text.png: not a readable image'):
    image_lib.read_image(str(tmp_path / 'text.png'))
  with pytest.raises(image_lib.ImageReadError, match='file not found'):
    image_lib.read_image(str(tmp_path / 'missing.jpg'))
  whole = io.BytesIO()
  Image.fromarray(_photo(64, 64)).save(whole, format='JPEG')
  (tmp_path / 'cut.jpg').write_bytes(whole.getvalue()[:600])
  with pytest.raises(image_lib.ImageReadError, match='cut.jpg'):
    image_lib.read_image(str(tmp_path / 'cut.jpg'))


def test_write_image_is_atomic_and_checks_format(tmp_path):
  image = _photo(10, 12)
  image_lib.write_image(image, str(tmp_path / 'sub' / 'a.png'))
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'sub' / 'a.png')), image)
  with pytest.raises(ValueError, match='Unknown output format'):
    image_lib.write_image(image, str(tmp_path / 'a.xyz'))
  assert sorted(os.listdir(tmp_path / 'sub')) == ['a.png']  # No temporary files left.
