"""Configs and their errors, in process: every config file validates, and each
command-line or config mistake is refused by cli.parse_train_flags (main.py's
parser) with one line naming the file or key and what is allowed."""

import glob
import importlib.util
import inspect
import os

import jax
import jax.numpy as jnp
import pytest

from conftest import ROOT
from conftest import load_config
from shopstyle_jax import cli
from shopstyle_jax import config_lib
from shopstyle_jax.models import generators

# config_flags loads config files with importlib's deprecated load_module().
pytestmark = pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')

TINY = os.path.join(ROOT, 'configs', 'tiny.py')


def config_names():
  """(name, variant) of every configs/*.py; one whose get_config takes an argument
  is listed with each variant, as configs/sketch.py's 'cpu' and 'full'."""
  out = []
  for path in sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py'))):
    name = os.path.splitext(os.path.basename(path))[0]
    if name == '__init__':
      continue
    spec = importlib.util.spec_from_file_location(f'_test_config_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out.append((name, ''))
    if inspect.signature(module.get_config).parameters:
      out += [(name, 'cpu'), (name, 'full')]
  return out


def test_config_files_are_found():
  names = config_names()
  for listed in [
    ('default', ''),
    ('tiny', ''),
    ('pix2pix', ''),
    ('sketch', 'full'),
    ('oil', 'cpu'),
    ('edges2handbags', ''),
  ]:
    assert listed in names


@pytest.mark.parametrize('name,variant', config_names())
def test_every_config_file_is_valid(name, variant):
  config = load_config(name, variant)
  config_lib.validate(config, num_devices=1)
  if config.batch_size % 8 == 0 and config.eval.batch_size % 8 == 0:
    config_lib.validate(config, num_devices=8)


def test_default_config_builds_its_generator():
  config = load_config('default')
  size = config.image_size
  g = generators.create_generator(config.model)
  x = jnp.zeros((1, size, size, 3))
  out = jax.eval_shape(lambda: g.apply(g.init(jax.random.key(0), x, train=False), x, train=False))
  assert out.shape == (1, size, size, 3)


# --- The command line, parsed in process (main.py's parser) -------------------


def parse(*args, config=TINY):
  return cli.parse_train_flags(['main.py', f'--config={config}', '--workdir=/tmp/unused', *args])


def parse_error(*args, config=TINY) -> str:
  with pytest.raises(cli.ConfigError) as e:
    parse(*args, config=config)
  message = str(e.value)
  assert '\n' not in message and 'Traceback' not in message
  return message


def test_valid_overrides_are_applied_and_parsing_repeats():
  flags = parse('--config.batch_size=16', '--config.model.width=4', '--noconfig.data.flip')
  assert flags.workdir == '/tmp/unused'
  assert (flags.config.batch_size, flags.config.model.width) == (16, 4)
  assert flags.config.data.flip is False
  assert parse().config.batch_size == 8  # Fresh flags each time: no override left over.


def test_unknown_key_names_it_and_suggests():
  message = parse_error('--config.model.widht=16')
  assert message.startswith(
    'Unknown config key in --config.model.widht=16: config.model has '
    "no field 'widht'. Did you mean config.model.width? Fields of "
    'config.model: depth, disc_layers, '
  )
  assert parse_error('--config.modle.width=3').startswith(
    "Unknown config key in --config.modle.width=3: config has no field 'modle'. Did you "
    'mean config.model?'
  )
  assert parse_error('--noconfig.data.fip').startswith(
    "Unknown config key in --noconfig.data.fip: config.data has no field 'fip'. Did you "
    'mean config.data.flip?'
  )
  assert parse_error('--config.model.width.x=3') == (
    'Unknown config key in --config.model.width.x=3: config.model.width is a value (8), '
    'not a group of fields.'
  )
  message = parse_error('--config.zzz=1')
  assert "config has no field 'zzz'. Fields of config: batch_size, " in message
  assert 'Did you mean' not in message


def test_wrong_type_names_the_flag():
  assert parse_error('--config.batch_size=abc') == (
    "flag --config.batch_size=abc: invalid literal for int() with base 10: 'abc'"
  )


def test_missing_config_file(tmp_path):
  missing = os.path.join(ROOT, 'configs', 'nope.py')
  message = parse_error(config=missing)
  assert message.startswith(
    f'Config file {missing} (from --config={missing}) does not exist. '
    f'{os.path.dirname(missing)}/ holds cartoon.py, '
  )
  assert 'default.py, ' in message and 'sketch.py, ' in message and '__init__' not in message
  typo = os.path.join(ROOT, 'configs', 'skecth.py')
  assert parse_error(config=typo).endswith(
    f'does not exist. Did you mean {os.path.join(ROOT, "configs", "sketch.py")}?'
  )
  # With overrides too (config_flags then fails while applying them).
  assert 'does not exist' in parse_error('--config.batch_size=2', config=missing)
  assert 'does not exist.' in parse_error(config=str(tmp_path / 'x.py'))


def test_config_file_with_a_syntax_error(tmp_path):
  path = tmp_path / 'broken.py'
  path.write_text('import ml_collections\n\ndef get_config(:\n  pass\n')
  assert parse_error(config=str(path)) == (
    f"Config file {path} has a syntax error at line 3: invalid syntax: 'def get_config(:'."
  )


def test_config_file_that_fails_to_load_or_run(tmp_path):
  path = tmp_path / 'imports.py'
  path.write_text('import no_such_module\n')
  assert parse_error(config=str(path)) == (
    f"Config file {path} failed to load: No module named 'no_such_module'"
  )
  path = tmp_path / 'empty.py'
  path.write_text('X = 1\n')
  assert parse_error(config=str(path)) == f'Config file {path} defines no get_config().'
  sketch = os.path.join(ROOT, 'configs', 'sketch.py')
  assert parse_error(config=sketch + ':gpu') == (
    f"Config file {sketch}: get_config('gpu') failed: Unknown variant 'gpu' of "
    "configs/sketch.py; use 'cpu' or 'full'."
  )
  assert parse_error(config=TINY + ':x') == (
    f'Config file {TINY} has no variants (its get_config() takes no argument), but '
    f"--config={TINY}:x asks for 'x'; use --config={TINY}."
  )


def test_missing_required_flags():
  with pytest.raises(cli.ConfigError, match='Flag --config must have a value other than None'):
    cli.parse_train_flags(['main.py', '--workdir=/tmp/unused'])
  with pytest.raises(cli.ConfigError, match='Flag --workdir must have a value other than None'):
    cli.parse_train_flags(['main.py', f'--config={TINY}'])


@pytest.mark.parametrize(
  'override,message',
  [
    (
      '--config.image_size=100',
      'config.image_size=100 must be a multiple of 32 (the unet '
      'generator downsamples by 32); e.g. 96.',
    ),
    (
      '--config.loss.gan=wgan',
      "config.loss.gan='wgan' is not allowed; choose one of ('vanilla', 'lsgan', 'hinge').",
    ),
    (
      '--config.model.generator=vit',
      "config.model.generator='vit' is not allowed; choose one of ('unet', 'resnet').",
    ),
    (
      '--config.model.output_upsample=bilinear',
      "config.model.output_upsample='bilinear' is not allowed; choose one of "
      "('', 'conv_transpose', 'resize_conv', 'bilinear_conv').",
    ),
    (
      '--config.model.generator=resnet --config.model.output_upsample=conv_transpose',
      "config.model.output_upsample='conv_transpose' applies to the U-Net only",
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.model.nce_layers=enc1,enc9',
      "config.model.nce_layers=('enc1', 'enc9'): unknown ['enc9']; the unet generator has "
      "taps ('input', 'enc1', 'enc2', 'enc3', 'enc4', 'enc5')",
    ),
    ('--config.loss.mse_weight=0 --config.loss.adversarial_weight=0', 'All loss weights are 0'),
    ('--config.batch_size=0', 'config.batch_size=0 must be a positive integer.'),
    (
      '--config.optimizer.learning_rate=0',
      'config.optimizer.learning_rate=0.0 must be a number '
      "> 0 (Adam's step size; pix2pix's is 2e-4).",
    ),
    ('--config.optimizer.learning_rate=-1e-4', 'config.optimizer.learning_rate=-0.0001 must be'),
    (
      '--config.optimizer.b1=1.0',
      "config.optimizer.b1=1.0 must be a number in [0, 1) (Adam's "
      "first-moment decay; pix2pix's is 0.5).",
    ),
    ('--config.optimizer.b1=-0.1', 'config.optimizer.b1=-0.1 must be a number in [0, 1)'),
    (
      '--config.optimizer.b2=1',
      "config.optimizer.b2=1.0 must be a number in [0, 1) (Adam's "
      'second-moment decay, e.g. 0.999).',
    ),
    (
      '--config.optimizer.decay_start_fraction=1.5',
      'config.optimizer.decay_start_fraction=1.5 '
      'must be a number in [0, 1] (the share of steps at a constant learning rate before the '
      'linear decay; 1 = none).',
    ),
    ('--config.optimizer.decay_start_fraction=-0.5', 'decay_start_fraction=-0.5 must be'),
    ('--config.optimizer.decay_start_fraction=nan', 'decay_start_fraction=nan must be'),
    (
      '--config.model.noise_channels=-1',
      'config.model.noise_channels=-1 must be an integer >= 0 (0 = no noise input).',
    ),
    (
      '--config.eval.grid_rows=0',
      'config.eval.grid_rows=0 must be an integer from 1 to 8 (the '
      'grid shows rows of the first eval batch: at most eval.batch_size=8 and '
      'eval.num_examples=16).',
    ),
    ('--config.eval.grid_rows=9', 'config.eval.grid_rows=9 must be an integer from 1 to 8'),
    ('--config.eval.num_examples=1', 'config.eval.grid_rows=2 must be an integer from 1 to 1'),
    (
      '--config.method=gan2',
      "config.method='gan2' is not allowed; choose one of ('paired', "
      "'cyclegan', 'cut', 'fastcut', 'neural_style').",
    ),
    (
      '--config.data.unpaired=True',
      'config.method=paired learns from (photo, target) pairs, '
      'but config.data.unpaired gives style images without pairs; pick an unpaired method',
    ),
    (
      '--config.method=cut',
      'config.method=cut learns without pairs, so '
      'config.loss.mse_weight=100.0 has no target to compare with; set it to 0',
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0',
      'config.method=cut needs style images: set config.data.style_folder',
    ),
    (
      '--config.method=cyclegan --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.pool_size=-1',
      'config.loss.pool_size=-1 must be an integer >= 0',
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.nce_temperature=0',
      'config.loss.nce_temperature=0.0 must be > 0',
    ),
    (
      '--config.method=neural_style --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.adversarial_weight=0',
      'All loss weights are 0 for '
      'config.method=neural_style (config.loss.adversarial_weight, content_weight, '
      'style_weight, tv_weight, tone_weight)',
    ),
    ('--config.loss.tv_weight=-1', 'config.loss.tv_weight=-1.0 must be a number >= 0 (0 = off).'),
    (
      '--config.loss.tone_weight=1',
      'config.loss.tone_weight=1.0 is the reconstruction term of the unpaired methods',
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.tone_weight=1 --config.loss.tone_blur=-2',
      'config.loss.tone_blur=-2.0 must be a number >= 0',
    ),
    (
      '--config.loss.disc_blur=1',
      'config.loss.disc_blur=1.0 is built for config.method=cut, fastcut and cyclegan, not paired',
    ),
    (
      '--config.loss.disc_guided_radius=2',
      'config.loss.disc_guided_radius=2 is built for config.method=cut, fastcut and cyclegan, '
      'not paired',
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.disc_guided_radius=-1',
      'config.loss.disc_guided_radius=-1 must be an integer >= 0',
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.disc_guided_radius=2 --config.loss.disc_guided_eps=0',
      'config.loss.disc_guided_eps=0.0 must be a number > 0',
    ),
    (
      '--config.method=cyclegan --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.disc_blur=1 --config.loss.sharp_disc_weight=0.2',
      'config.loss.sharp_disc_weight=0.2 is built for config.method=cut and fastcut, not cyclegan',
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.sharp_disc_weight=0.2',
      'but config.loss.disc_blur and disc_guided_radius are 0, so both would see the same page',
    ),
    (
      '--config.method=cut --config.loss.mse_weight=0 --config.data.unpaired=True '
      '--config.loss.sharp_disc_weight=-1',
      'config.loss.sharp_disc_weight=-1.0 must be a number >= 0',
    ),
    (
      '--config.loss.style_weight=1 --config.loss.style_layers=relu1_1,relu9_9',
      'config.loss.style_layers: Unknown VGG19 layer(s)',
    ),
  ],
)
def test_bad_values_are_refused_naming_the_key(override, message):
  assert message in parse_error(*override.split())


@pytest.mark.parametrize(
  'override',
  [
    '--config.optimizer.decay_start_fraction=0',
    '--config.optimizer.decay_start_fraction=1',
    '--config.optimizer.b1=0',
    '--config.model.noise_channels=2',
    '--config.eval.grid_rows=8',
    '--config.optimizer.learning_rate=1e30',
  ],
)
def test_edge_values_are_accepted(override):
  parse(override)


@pytest.mark.parametrize(
  'group,key,value',
  [
    ('model', 'noise_channels', 1.5),
    ('eval', 'grid_rows', True),
    ('optimizer', 'learning_rate', '2e-4'),
    ('optimizer', 'b2', None),
  ],
)
def test_values_of_the_wrong_type_in_a_config_file_are_refused(group, key, value):
  config = load_config('tiny')
  with config.ignore_type():  # As a config file could set them.
    config[group][key] = value
  with pytest.raises(ValueError, match=f'^config.{group}.{key}={value!r} must be'):
    config_lib.validate(config)


def test_batch_not_divisible_by_devices():
  config = parse('--config.batch_size=3').config  # Valid until the device count is known.
  with pytest.raises(
    ValueError,
    match=r'config.batch_size=3 is not divisible by the number of '
    r'devices \(2\); use a multiple of 2.',
  ):
    config_lib.validate(config, num_devices=2)
