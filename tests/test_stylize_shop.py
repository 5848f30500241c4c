"""Shop-ready output (issue 16): background, product masks, colour preservation, on the
v0 fixtures' tiny stylizer (loads in a second) and the exported file alike."""

import os

import numpy as np
import pytest
from absl import flags
from PIL import Image

import shopstyle_jax
from conftest import assert_pixel_rule
from shopstyle_jax import StylizeOptions
from shopstyle_jax import batch
from shopstyle_jax import color
from shopstyle_jax import images as image_lib
from shopstyle_jax import masks
from shopstyle_jax import stylize
from shopstyle_jax.data import synthetic

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'v0')


@pytest.fixture(scope='module')
def stylizer():
  return shopstyle_jax.load_stylizer(os.path.join(FIXTURES, 'workdir'))


@pytest.fixture(scope='module')
def exported():
  return shopstyle_jax.load_exported(os.path.join(FIXTURES, 'stylizer.bin'))


@pytest.fixture(scope='module')
def scene():
  """A catalogue photo (a vivid product, so colour shifts show) and its true mask."""
  photo, mask = synthetic.render_scene(synthetic.example_seed('test', 4), 96, 't_shirt')
  return photo, mask


def _rgba(photo, mask):
  return np.dstack([photo, mask])


def test_defaults_are_todays_pixels(stylizer, scene):
  photo, _ = scene
  plain = stylizer(photo)
  for options in (StylizeOptions(), StylizeOptions(background='style', preserve_color=False)):
    np.testing.assert_array_equal(stylizer(photo, options), plain)


def test_keep_leaves_the_background_unchanged(stylizer, scene):
  photo, mask = scene
  out = stylizer(photo, background='keep', mask=mask)
  outside = mask == 0
  assert out.shape == photo.shape
  assert np.abs(out[outside].astype(int) - photo[outside]).max() <= 1
  inside = mask == 255
  np.testing.assert_array_equal(out[inside], stylizer(photo)[inside])


def test_white_and_transparent(stylizer, scene):
  photo, mask = scene
  white = stylizer(photo, background='white', mask=mask)
  assert np.all(white[mask == 0] == 255)
  clear = stylizer(photo, background='transparent', mask=mask)
  assert clear.shape == photo.shape[:2] + (4,)
  np.testing.assert_array_equal(clear[..., 3], mask)


def test_rgba_photo_keeps_its_alpha_exactly(stylizer, scene, tmp_path):
  photo, mask = scene
  alpha = (mask.astype(int) * 7 // 8).astype(np.uint8)  # Not what a segmentation would give.
  rgba = _rgba(photo, alpha)
  for background in ('transparent', 'keep'):
    out = stylizer(rgba, background=background)
    np.testing.assert_array_equal(out[..., 3], alpha)
  # Through a PNG file and the reader, as the batch CLI does.
  path = str(tmp_path / 'cut.png')
  image_lib.write_image(rgba, path)
  out = stylizer(image_lib.read_image(path, keep_alpha=True), background='transparent')
  image_lib.write_image(out, str(tmp_path / 'out.png'))
  np.testing.assert_array_equal(
    image_lib.read_image(str(tmp_path / 'out.png'), keep_alpha=True)[..., 3], alpha
  )


def test_segmentation_finds_the_product_when_no_mask_is_given(stylizer, scene):
  photo, mask = scene
  assert masks.iou(masks.segment_product(photo), mask) >= 0.9
  out = stylizer(photo, background='keep')
  far = masks.segment_product(photo) == 0
  assert far.mean() > 0.3 and np.abs(out[far].astype(int) - photo[far]).max() <= 1


def test_segmentation_reaches_iou_0_9_on_the_test_split_white_on_white_included():
  """Issue 16's bar, on the first 18 test examples (2 per category) at 128 px: the
  mean mask IoU is at least 0.9 on the photos and on their white-on-white variants
  (benchmarks/segmentation.py measures 90; README, "Background")."""
  ious = {False: [], True: []}
  for index in range(18):
    category = synthetic.scene.example_category(index)
    seed = synthetic.example_seed('test', index)
    for white in (False, True):
      photo, truth = synthetic.render_scene(seed, 128, category, white)
      ious[white].append(masks.iou(masks.segment_product(photo), truth))
  assert {synthetic.scene.example_category(i) for i in range(18)} == set(synthetic.CATEGORIES)
  assert np.mean(ious[False]) >= 0.9, ious[False]
  assert np.mean(ious[True]) >= 0.9, ious[True]


def test_bad_masks_are_refused(stylizer, scene):
  photo, _ = scene
  with pytest.raises(ValueError, match='does not fit the photo'):
    stylizer(photo, background='keep', mask=np.zeros((5, 5), np.uint8))
  with pytest.raises(ValueError, match=r'in \[0, 1\]'):
    stylizer(photo, background='keep', mask=np.full(photo.shape[:2], 2.0))
  with pytest.raises(ValueError, match="background='sky' must be one of"):
    stylizer(photo, background='sky')


def test_preserve_color_halves_the_colour_difference_and_keeps_the_lightness(stylizer, scene):
  photo, mask = scene
  plain = stylizer(photo)
  kept = stylizer(photo, preserve_color=True)
  plain_de = color.median_ciede2000(photo, plain, mask)
  kept_de = color.median_ciede2000(photo, kept, mask)
  assert kept_de <= 0.5 * plain_de, (kept_de, plain_de)
  lightness = lambda x: color.to_lab(x.astype(np.float32) / 255.0)[..., 0]
  # Lab L in [0, 100]: 1/255 of its range, beyond what quantising to uint8 moves.
  assert np.median(np.abs(lightness(kept) - lightness(plain))[mask > 127]) <= 100 / 255


def test_exported_stylizer_takes_every_option(stylizer, exported, scene):
  photo, mask = scene
  rgba = _rgba(photo, mask)
  cases = [
    dict(background='keep', mask=mask),
    dict(background='white'),
    dict(background='transparent'),
    dict(preserve_color=True, brightness=0.05),
  ]
  for kwargs in cases:
    assert_pixel_rule(exported(photo, **kwargs), stylizer(photo, **kwargs))
  assert_pixel_rule(exported(rgba, background='keep'), stylizer(rgba, background='keep'))


def _cli(*args) -> int:
  flag_values = flags.FlagValues()
  stylize.define_flags(flag_values)
  flag_values(['stylize', *args])
  return stylize.run(flag_values)


def test_cli_background_preserve_color_and_mask_dir(tmp_path, scene, capsys):
  photo, mask = scene
  os.makedirs(tmp_path / 'in' / 'tops')
  os.makedirs(tmp_path / 'masks' / 'tops')
  Image.fromarray(photo).save(tmp_path / 'in' / 'tops' / 'shirt.jpg', quality=95, dpi=(240, 240))
  Image.fromarray(mask).save(tmp_path / 'masks' / 'tops' / 'shirt.png')
  workdir = os.path.join(FIXTURES, 'workdir')
  common = (f'--workdir={workdir}', f'--input={tmp_path / "in"}')
  # transparent with JPEG is refused before the model loads.
  assert (
    _cli(*common, f'--output={tmp_path / "a"}', '--background=transparent', '--format=jpg') == 2
  )
  assert 'no alpha channel' in capsys.readouterr().err
  assert _cli(*common, f'--output={tmp_path / "b"}', f'--mask_dir={tmp_path / "masks"}') == 2
  assert '--mask_dir needs --background' in capsys.readouterr().err
  assert (
    _cli(
      *common,
      f'--output={tmp_path / "out"}',
      '--background=transparent',
      f'--mask_dir={tmp_path / "masks"}',
      '--preserve_color',
    )
    == 0
  )
  path = str(tmp_path / 'out' / 'tops' / 'shirt.png')
  out = image_lib.read_image(path, keep_alpha=True)
  np.testing.assert_array_equal(out[..., 3], mask)  # The shop's own mask.
  read = image_lib.read_image(str(tmp_path / 'in' / 'tops' / 'shirt.jpg'))
  assert_pixel_rule(
    out,
    shopstyle_jax.load_stylizer(workdir)(
      read, background='transparent', preserve_color=True, mask=mask
    ),
  )
  with Image.open(path) as im:
    assert round(float(im.info['dpi'][0])) == 240 and 'icc_profile' in im.info
  label = image_lib.read_label(path)  # Labelled by default.
  assert label['DigitalSourceType'] == image_lib.TRAINED_ALGORITHMIC_MEDIA
  assert label['WeightsHash'] == shopstyle_jax.load_stylizer(workdir).label.weights


def test_strength_blends_photo_and_style(stylizer, exported, scene):
  photo, _ = scene
  plain = stylizer(photo).astype(int)
  np.testing.assert_array_equal(stylizer(photo, strength=1.0), plain)
  # 0: the photo itself (kept at its own size, so max_side's round trip does not show).
  np.testing.assert_array_equal(stylizer(photo, strength=0.0), photo)
  np.testing.assert_array_equal(stylizer(photo, strength=0.0, max_side=40), photo)
  # 0.5: the midpoint, within the rounding of the two uint8 ends.
  half = stylizer(photo, strength=0.5).astype(int)
  assert np.abs(2 * half - (plain + photo)).max() <= 2
  assert np.abs(half - plain).mean() > 5  # Not the stylized output.
  # Strength comes before brightness: the photo, 0.1 lighter (12.75 levels).
  lighter = stylizer(photo, strength=0.0, brightness=0.1).astype(int)
  assert np.abs(lighter - np.minimum(photo + 12.75, 255)).max() <= 0.5
  assert_pixel_rule(exported(photo, strength=0.3), stylizer(photo, strength=0.3))
  for bad in (-0.1, 1.5, float('nan')):
    with pytest.raises(ValueError, match='strength'):
      StylizeOptions(strength=bad)


def test_outputs_are_labelled_as_ai_generated(stylizer, exported, scene, tmp_path):
  photo, _ = scene
  out = stylizer(photo)
  assert stylizer.label.style == 'sketch' and stylizer.label.step == stylizer.step
  assert len(stylizer.label.weights) == 16
  assert exported.label == stylizer.label  # The same weights, the same hash.
  for ext in ('png', 'jpg', 'webp'):
    path = str(tmp_path / f'out.{ext}')
    stylizer.write(out, path)
    assert image_lib.read_label(path) == {
      'DigitalSourceType': 'http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia',
      'Style': 'sketch',
      'Step': str(stylizer.step),
      'WeightsHash': stylizer.label.weights,
    }
    # Raw bytes too: the packet is in the file as written.
    assert b'trainedAlgorithmicMedia' in open(path, 'rb').read()
    stylizer.write(out, path, label=False)
    assert image_lib.read_label(path) is None
  np.testing.assert_array_equal(image_lib.read_image(str(tmp_path / 'out.png')), out)
  # The batch engine labels unless told not to (--no_label).
  Image.fromarray(photo).save(tmp_path / 'p.png')
  for label in (True, False):
    dst = str(tmp_path / f'batch_{label}.png')
    job = batch.Job(str(tmp_path / 'p.png'), dst, 'p.png')
    assert batch.stylize_files(stylizer, [job], label=label, workers=1).done == 1
    assert (image_lib.read_label(dst) is not None) == label
