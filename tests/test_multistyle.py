"""One generator, many styles: style-conditioned networks, multi-style data and
training, style arguments at inference, export, evaluation and fine-tuning."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_same_training
from conftest import load_config
from conftest import run_steps as run_data_parallel
from conftest import train_in_process
from shopstyle_jax import config_lib
from shopstyle_jax import inference
from shopstyle_jax import losses
from shopstyle_jax import state as state_lib
from shopstyle_jax import style_mix
from shopstyle_jax.data import pipeline
from shopstyle_jax.methods import paired
from shopstyle_jax.models import discriminators
from shopstyle_jax.models import generators

STYLES = ('sketch', 'watercolor', 'identity')


def count(variables):
  return sum(x.size for x in jax.tree.leaves(variables['params']))


def small_config(styles=STYLES, batch_size=6):
  """test_train_step's small model with several styles: MSE for the sketch, L1 else."""
  config = load_config('tiny')
  config.image_size = 16
  config.batch_size = batch_size
  config.model.update(width=4, depth=3, disc_width=4, disc_layers=1)
  config.data.styles = styles
  config.loss.update(mse_weight=0.0, l1_weight=10.0)
  config.loss.per_style = {'sketch': {'mse_weight': 10.0, 'l1_weight': 0.0}}
  return config


def style_batch(config, seed=0):
  rng = np.random.RandomState(seed)
  shape = (config.batch_size, config.image_size, config.image_size, 3)
  return {
    'photo': rng.uniform(-1, 1, shape).astype(np.float32),
    'target': rng.uniform(-1, 1, shape).astype(np.float32),
    'style_id': (np.arange(config.batch_size) % len(config.data.styles)).astype(np.int32),
  }


# --- Networks ------------------------------------------------------------------------


@pytest.mark.parametrize('generator', ['unet', 'resnet'])
def test_one_style_is_todays_network_and_several_add_under_2_percent(generator):
  config = load_config('multistyle')
  config.model.generator = generator
  x = jnp.zeros((1, 64, 64, 3))
  one = generators.create_generator(config.model)
  many = generators.create_generator(config.model, num_styles=5)
  v1 = jax.eval_shape(lambda: one.init(jax.random.key(0), x, train=False))
  v5 = jax.eval_shape(lambda: many.init(jax.random.key(0), x, jnp.ones((1, 5)) / 5, train=False))
  flat1 = jax.tree_util.tree_flatten_with_path(v1)[0]
  assert not any('style' in jax.tree_util.keystr(p) for p, _ in flat1)
  assert 0 < count(v5) / count(v1) - 1 < 0.02
  # Only the per-style tables ([5, C]) are new.
  new = count(v5) - count(v1)
  tables = [x for p, x in jax.tree_util.tree_flatten_with_path(v5)[0] if 'style_' in str(p)]
  assert sum(t.size for t in tables) == new and all(t.shape[0] == 5 for t in tables)


def test_style_weights_pick_and_blend_styles_inside_the_network():
  g = generators.UNetGenerator(width=4, depth=3, norm='instance', dropout=0.0, num_styles=3)
  x = jax.random.uniform(jax.random.key(1), (1, 16, 16, 3), minval=-1, maxval=1)
  v = g.init(jax.random.key(0), x, jnp.eye(3)[:1], train=False)
  # Give each style its own rows, then: one-hot picks, a mix is not a pixel blend.
  v = jax.tree_util.tree_map_with_path(
    lambda p, a: a + jax.random.normal(jax.random.key(len(str(p))), a.shape) * 0.5
    if 'style_' in str(p)
    else a,
    v,
  )
  rows = jnp.concatenate([jnp.eye(3), jnp.array([[0.5, 0.5, 0.0]])])
  out = jax.jit(lambda v, x, s: g.apply(v, x, s, train=False))(v, jnp.repeat(x, 4, 0), rows)
  assert float(jnp.abs(out[0] - out[1]).max()) > 1e-3
  assert float(jnp.abs(out[3] - (out[0] + out[1]) / 2).max()) > 1e-4
  with pytest.raises(ValueError, match=r'holds 3 styles: pass style weights \[N, 3\]'):
    jax.eval_shape(lambda: g.apply(v, x, train=False))
  with pytest.raises(ValueError, match=r'shape \(1, 2\); this network needs \[1, 3\]'):
    jax.eval_shape(lambda: g.apply(v, x, jnp.ones((1, 2)) / 2, train=False))


def test_projection_discriminator_judges_each_style():
  d = discriminators.PatchDiscriminator(width=4, num_layers=2, norm='instance', num_styles=2)
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  v = d.init(jax.random.key(0), x, x, jnp.eye(2), train=False)
  assert v['params']['style_projection'].shape == (2, 16)
  apply = jax.jit(lambda s: d.apply(v, x, x, s, train=False))
  a, b = apply(jnp.eye(2)), apply(jnp.eye(2)[::-1])
  assert a.shape == (2, 6, 6, 1) and float(jnp.abs(a - b).max()) > 0
  plain = discriminators.PatchDiscriminator(width=4, num_layers=2, norm='instance')
  params = jax.eval_shape(lambda: plain.init(jax.random.key(0), x, x, train=False))['params']
  assert 'style_projection' not in params


def test_per_style_reconstruction():
  fake = jnp.zeros((4, 2, 2, 3))
  target = jnp.array([1.0, 2.0, 1.0, 2.0])[:, None, None, None] * jnp.ones((4, 2, 2, 3))
  style = jnp.array([0, 1, 0, 2])
  total, per_style = losses.per_style_reconstruction(
    fake, target, style, jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 10.0, 10.0])
  )
  # Style 0: MSE 1; style 1: 10 * L1 2; style 2: 10 * L1 2.
  np.testing.assert_allclose(per_style, [1.0, 20.0, 20.0])
  assert float(total) == pytest.approx((1 + 20 + 1 + 20) / 4)
  _, empty = losses.per_style_reconstruction(
    fake, target, jnp.zeros(4, int), jnp.ones(2), jnp.ones(2)
  )
  assert float(empty[1]) == 0.0  # A style with no example: 0, not NaN.


# --- Config and style names ----------------------------------------------------------


def test_config_styles_and_their_errors():
  config = load_config('tiny')
  assert style_mix.config_styles(config) == ('sketch',)
  config.data.styles = ('watercolor', 'oil')
  with pytest.raises(ValueError, match="config.data.style='sketch' is not one of"):
    config_lib.validate(config)
  config.data.style = 'oil'
  config_lib.validate(config)
  config.data.styles = ('oil', 'pastel')
  with pytest.raises(ValueError, match="names 'pastel', which is not a style"):
    config_lib.validate(config)
  config.data.styles = ('oil', 'sketch')
  config.loss.per_style = {'cartoon': {'l1_weight': 1.0}}  # A style this run does not train.
  config_lib.validate(config)
  config.loss.per_style = {'pastel': {'l1_weight': 1.0}}
  with pytest.raises(ValueError, match=r"per_style.pastel is neither one of the run's styles"):
    config_lib.validate(config)
  config.loss.per_style = {}
  config.method, config.data.unpaired, config.loss.mse_weight = 'cut', True, 0.0
  with pytest.raises(ValueError, match='several styles learn from one folder of style images'):
    config_lib.validate(config)


def test_style_argument_as_weights():
  styles = ('sketch', 'oil', 'identity')
  np.testing.assert_array_equal(style_mix.style_vector('oil', styles, 'sketch'), [0, 1, 0])
  np.testing.assert_array_equal(style_mix.style_vector(None, styles, 'sketch'), [1, 0, 0])
  mix = style_mix.style_weights({'identity': 0.25, 'oil': 0.75}, styles, 'sketch', 2)
  np.testing.assert_allclose(mix, [[0, 0.75, 0.25]] * 2)
  with pytest.raises(ValueError, match="Unknown style 'pastel'; this model has the styles sketch"):
    style_mix.style_vector('pastel', styles, 'sketch')
  with pytest.raises(ValueError, match='sum to 0.9; they must sum to 1'):
    style_mix.style_vector({'oil': 0.5, 'sketch': 0.4}, styles, 'sketch')
  with pytest.raises(ValueError, match='must be a finite number >= 0'):
    style_mix.style_vector({'oil': 1.5, 'sketch': -0.5}, styles, 'sketch')
  assert style_mix.parse('oil:0.5, sketch:0.5') == {'oil': 0.5, 'sketch': 0.5}
  assert style_mix.parse('oil') == 'oil' and style_mix.parse('') is None


def test_multistyle_config_files():
  for variant in ('cpu', 'full'):
    config = load_config('multistyle', variant)
    config_lib.validate(config, num_devices=1)
    assert style_mix.config_styles(config) == ('sketch', 'watercolor', 'oil', 'cartoon', 'identity')
    per_style = config.loss.per_style
    assert per_style.sketch.mse_weight == 100.0 and per_style.sketch.l1_weight == 0.0
    for name in ('watercolor', 'oil', 'cartoon', 'identity'):
      assert per_style[name].l1_weight == 100.0 and per_style[name].mse_weight == 0.0
    assert config.batch_size % 5 == 0
    # A style a fine-tune adds learns from its reconstruction alone.
    assert per_style.linocut.adversarial_weight == 0.0 and per_style.linocut.mse_weight == 100.0
    config.data.styles = (*config.data.styles, 'linocut')
    config_lib.validate(config, num_devices=1)
    assert [
      paired.style_loss_weights(config, k)[-1]
      for k in ('mse_weight', 'l1_weight', 'adversarial_weight')
    ] == [100.0, 0.0, 0.0]
  assert (
    load_config('multistyle', 'cpu').num_train_steps
    == 4 * load_config('sketch', 'cpu').num_train_steps
  )


# --- Data ----------------------------------------------------------------------------


def test_train_batches_balance_styles_with_their_targets(data_dir):
  config = load_config('tiny')
  config.data.data_dir = data_dir
  config.data.styles = ('sketch', 'oil', 'identity')
  config.batch_size = 6
  config.data.load_size = config.image_size  # No crop: compare with the catalogue.
  config.data.flip = False
  batches = pipeline.create_train_iterator(config, 0, 1)
  first, second = next(batches), next(batches)
  for batch in (first, second):
    np.testing.assert_array_equal(batch['style_id'], [0, 1, 2, 0, 1, 2])
    # Identity targets are the photos; the others are not.
    np.testing.assert_array_equal(batch['target'][2], batch['photo'][2])
    assert np.abs(batch['target'][0] - batch['photo'][0]).max() > 0.1
  # Each target is its photo's rendering in that style.
  source = pipeline._styles_source(config, 'train')  # pylint: disable=protected-access
  from shopstyle_jax import images as image_lib  # pylint: disable=g-import-not-at-top

  def to_model(x):
    return image_lib.uint8_to_model(image_lib.resize(x, config.image_size, config.image_size))

  photos = {i: to_model(source[i]['photo']) for i in range(len(source))}
  for row, name in ((0, 'sketch'), (1, 'oil')):
    i = min(photos, key=lambda i: np.abs(photos[i] - first['photo'][row]).max())
    np.testing.assert_allclose(first['target'][row], to_model(source[i][name]), atol=1e-6)
  # Two processes' shares concatenate to the one-process batch.
  halves = [next(pipeline.create_train_iterator(config, p, 2)) for p in (0, 1)]
  for key in first:
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), first[key])


# --- Training ------------------------------------------------------------------------


def run_steps(config, models, state, data, devices):
  return run_data_parallel(paired.make_step(config, models), state, data, devices)


@pytest.mark.slow  # Compile-bound (two compiled steps): kept out of the fast lane.
def test_conditioned_step_on_one_and_eight_devices_agrees():
  assert jax.device_count() == 8
  config = small_config(styles=('sketch', 'watercolor', 'oil', 'identity'), batch_size=8)
  config_lib.validate(config, num_devices=8)
  models = paired.build_models(config)
  state = jax.jit(lambda k: paired.create_state(config, models, k))(state_lib.prng_key(0))
  data = [style_batch(config, seed) for seed in (0, 1)]
  s1, h1 = run_steps(config, models, state, data, jax.devices()[:1])
  s8, h8 = run_steps(config, models, state, data, jax.devices())
  for m1, m8 in zip(h1, h8):
    assert m1.keys() == m8.keys()
    for k in m1:
      assert m8[k] == pytest.approx(m1[k], rel=1e-5, abs=1e-5), k
  assert {'g_reconstruction_sketch', 'g_reconstruction_identity'} <= set(h1[0])
  assert float(h1[0]['finite']) == 1.0
  for name in ('g_params', 'd_params'):
    assert_same_training(getattr(s8, name), getattr(s1, name), getattr(state, name))


def test_adversarial_weight_per_style():
  # Example n's adversarial loss counts with its style's weight: identity 0, oil 3.
  logits = jnp.stack([jnp.full((2, 2, 1), v) for v in (0.0, 1.0, 3.0)])  # LSGAN: 1, 0, 4.
  assert float(losses.generator_adversarial_loss('lsgan', logits)) == pytest.approx(5 / 3)
  weights = jnp.array([2.0, 7.0, 0.5])
  assert float(losses.generator_adversarial_loss('lsgan', logits, weights)) == pytest.approx(4 / 3)
  assert float(losses.generator_adversarial_loss('hinge', logits, weights)) == pytest.approx(
    -(0 + 7 + 1.5) / 3
  )
  # D's loss with weights 0/1 leaves the 0 rows out: LSGAN real (l-1)^2 = 1, 0, 4.
  mask = jnp.array([0.0, 1.0, 1.0])
  fake = jnp.zeros_like(logits)
  assert float(losses.discriminator_loss('lsgan', logits, fake, mask)) == pytest.approx(
    0.5 * (0 + 4) / 3
  )
  assert float(losses.discriminator_loss('lsgan', logits, fake)) == pytest.approx(0.5 * 5 / 3)


@pytest.mark.slow  # Compile-bound; the loss itself is checked above.
def test_adversarial_weight_per_style_in_the_step():
  # The one D call on G's outputs, each row weighted by its style; D's own loss
  # leaves out the identity rows (weight 0).
  config = small_config(styles=('sketch', 'oil', 'identity'))
  config.model.dropout = 0.0
  config.loss.gan = 'lsgan'
  config.loss.per_style = {
    'identity': {'adversarial_weight': 0.0},
    'oil': {'adversarial_weight': 3.0},
  }
  config_lib.validate(config)
  models = paired.build_models(config)
  state = jax.jit(lambda k: paired.create_state(config, models, k))(state_lib.prng_key(0))
  batch = style_batch(config)
  new, metrics = jax.jit(paired.make_step(config, models))(state, batch, None)
  style = jax.nn.one_hot(batch['style_id'], 3)
  fake = models.G.apply({'params': state.g_params}, batch['photo'], style, train=True)
  logits = models.D.apply({'params': new.d_params}, batch['photo'], fake, style, train=True)
  rows = jnp.mean((logits - 1.0) ** 2, axis=(1, 2, 3))
  want = jnp.mean(jnp.array([1.0, 3.0, 0.0])[batch['style_id']] * rows)
  assert float(metrics['g_adversarial']) == pytest.approx(float(want), rel=1e-4)
  assert float(want) != pytest.approx(float(jnp.mean(rows)), rel=1e-2)
  d_fake = models.D.apply({'params': state.d_params}, batch['photo'], fake, style, train=True)
  d_real = models.D.apply(
    {'params': state.d_params}, batch['photo'], batch['target'], style, train=True
  )
  judged = (batch['style_id'] != 2).astype(jnp.float32)
  per_row = lambda x: jnp.mean(x, axis=(1, 2, 3))
  want_d = 0.5 * jnp.mean(judged * (per_row((d_real - 1.0) ** 2) + per_row(d_fake**2)))
  assert float(metrics['d_loss']) == pytest.approx(float(want_d), rel=1e-4)


# --- A trained multi-style workdir: inference, export, evaluation, fine-tuning --------


def multistyle_config(data_dir, styles=STYLES):
  config = load_config('tiny')
  config.data.data_dir = data_dir
  config.data.styles = styles
  config.batch_size = 8  # Styles 3, 3, 2 times: balanced within one.
  config.num_train_steps = 2
  config.eval_every_steps = 2
  config.optimizer.decay_start_fraction = 1.0
  config.loss.per_style = {'sketch': {'mse_weight': 100.0, 'l1_weight': 0.0}}
  config.loss.l1_weight = 100.0
  config.loss.mse_weight = 0.0
  config.ema_decay = 0.5  # Kept, so that fine-tuning from it starts from its EMA.
  return config


@pytest.fixture(scope='module')
def multistyle_workdir(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('multistyle')
  train_in_process(multistyle_config(data_dir), workdir)
  return str(workdir)


def test_stylizer_styles_mixes_and_one_compilation(multistyle_workdir):
  stylizer = inference.load_stylizer(multistyle_workdir)
  assert stylizer.styles == STYLES
  photo = np.random.RandomState(0).randint(0, 256, (32, 32, 3), np.uint8)
  before = inference.stylize_fn._cache_size()  # pylint: disable=protected-access
  default = stylizer(photo)
  outputs = {s: stylizer(photo, style=s) for s in STYLES}
  np.testing.assert_array_equal(default, outputs['sketch'])
  mixed = stylizer(photo, style={'sketch': 0.5, 'watercolor': 0.5})
  stylizer(photo, style={'identity': 0.3, 'watercolor': 0.7})
  # Every style and mix ran one compiled program.
  assert inference.stylize_fn._cache_size() == before + 1  # pylint: disable=protected-access
  assert mixed.shape == photo.shape
  with pytest.raises(ValueError, match='Unknown style .oil.; this model has the styles sketch'):
    stylizer(photo, style='oil')
  with pytest.raises(ValueError, match='must sum to 1'):
    stylizer(photo, style={'sketch': 0.5, 'watercolor': 0.6})


def test_single_style_stylizer_lists_its_style(trained_workdir):
  stylizer = inference.load_stylizer(trained_workdir)
  assert stylizer.styles == ('sketch',)
  photo = np.zeros((32, 32, 3), np.uint8)
  np.testing.assert_array_equal(stylizer(photo, style='sketch'), stylizer(photo))
  with pytest.raises(ValueError, match="Unknown style 'oil'; this model has the styles sketch"):
    stylizer(photo, style='oil')


def test_export_holds_every_style(tmp_path, multistyle_workdir):
  from shopstyle_jax import exporting  # pylint: disable=g-import-not-at-top

  stylizer = inference.load_stylizer(multistyle_workdir)
  exported, weights = exporting.export_stylizer(stylizer, ('cpu',))
  path = str(tmp_path / 'multi.bin')
  exporting.save_exported(
    path, exported, weights, exporting.stylizer_metadata(stylizer, multistyle_workdir, 'float32')
  )
  assert exporting.verify(path, stylizer) == 0  # Every style: load_stylizer's pixels.
  loaded = exporting.load_exported(path)
  assert loaded.styles == STYLES and loaded.metadata['version'] == 2
  photo = np.random.RandomState(1).randint(0, 256, (20, 36, 3), np.uint8)
  mix = {'watercolor': 0.5, 'identity': 0.5}
  np.testing.assert_array_equal(loaded(photo, style=mix), stylizer(photo, style=mix))
  with pytest.raises(ValueError, match='Unknown style'):
    loaded(photo, style='oil')


def test_evaluate_writes_one_json_per_style(tmp_path, multistyle_workdir, capsys):
  from absl import flags  # pylint: disable=g-import-not-at-top

  from shopstyle_jax import evaluate  # pylint: disable=g-import-not-at-top

  argv = ['evaluate', f'--workdir={multistyle_workdir}', '--num_examples=8']
  flag_values = flags.FlagValues()
  evaluate.define_flags(argv, flag_values)
  flag_values(argv)
  assert evaluate.run(flag_values) == 0
  out = capsys.readouterr().out
  assert 'per style' in out
  folder = os.path.join(multistyle_workdir, 'evaluation')
  names = sorted(os.listdir(folder))
  assert names == sorted(f'step_2_tiny_{s}.json' for s in STYLES)
  results = json.load(open(os.path.join(folder, names[0])))
  assert results['num_examples'] == 8 and 'psnr' in results
  identity = json.load(open(os.path.join(folder, 'step_2_tiny_identity.json')))
  assert identity['identity_ssim'] == pytest.approx(1.0)  # Its targets are the photos.


def test_training_writes_per_style_eval_scalars(multistyle_workdir):
  from conftest import tensorboard_tags  # pylint: disable=g-import-not-at-top

  tags = tensorboard_tags(multistyle_workdir)
  for style in STYLES:
    assert f'eval/{style}/psnr' in tags and f'eval/{style}/input_target_output' in tags
  assert 'eval/psnr' in tags and 'train/g_reconstruction_watercolor' in tags


def test_fine_tuning_grows_the_style_tables(tmp_path, data_dir, multistyle_workdir):
  from shopstyle_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  config = multistyle_config(data_dir, styles=STYLES + ('oil',))
  config.init_from = multistyle_workdir
  config.ema_decay = 0.9
  models = paired.build_models(config)
  state = jax.jit(lambda k: paired.create_state(config, models, k))(state_lib.prng_key(1))
  grown = train._init_from(config, state)  # pylint: disable=protected-access
  # The EMA starts as the weights, in buffers of its own (the step donates both).
  for g, ema in zip(jax.tree.leaves(grown.g_params), jax.tree.leaves(grown.ema_params)):
    np.testing.assert_array_equal(g, ema)
    assert g.unsafe_buffer_pointer() != ema.unsafe_buffer_pointer()
  old, _ = checkpoints.restore_subtree(multistyle_workdir, ('g_params', 'ema_params'), None)
  # The generator starts from the source's EMA (what its stylizer used), not its raw weights.
  assert any(
    np.abs(a - b).max() > 0
    for a, b in zip(jax.tree.leaves(old['g_params']), jax.tree.leaves(old['ema_params']))
  )
  flat = dict(jax.tree_util.tree_flatten_with_path(grown.g_params)[0])
  for path, leaf in jax.tree_util.tree_flatten_with_path(old['ema_params'])[0]:
    if 'style_' in str(path):
      assert flat[path].shape[0] == 4
      np.testing.assert_array_equal(flat[path][:3], leaf)  # Old rows kept.
      np.testing.assert_allclose(flat[path][3], np.mean(leaf, 0), rtol=1e-6)
    else:
      np.testing.assert_array_equal(flat[path], leaf)
  assert grown.d_params['style_projection'].shape[0] == 4
  config.data.styles = ('oil',) + STYLES
  config.data.style = 'oil'
  with pytest.raises(ValueError, match='must start with them, in that order'):
    train._init_from(config, state)  # pylint: disable=protected-access


def test_stylize_cli_style_flag(tmp_path, multistyle_workdir, capsys):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from shopstyle_jax import images as image_lib  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import stylize  # pylint: disable=g-import-not-at-top

  photos = tmp_path / 'photos'
  photos.mkdir()
  photo = np.random.RandomState(2).randint(0, 256, (24, 40, 3), np.uint8)
  Image.fromarray(photo).save(photos / 'a.png')

  def cli(*args):
    flag_values = flags.FlagValues()
    stylize.define_flags(flag_values)
    flag_values(['stylize', f'--workdir={multistyle_workdir}', f'--input={photos}', *args])
    return stylize.run(flag_values)

  stylizer = inference.load_stylizer(multistyle_workdir)
  for style, arg in (
    ('watercolor', 'watercolor'),
    ({'sketch': 0.5, 'identity': 0.5}, 'sketch:0.5,identity:0.5'),
  ):
    out = tmp_path / f'out_{len(arg)}'
    assert cli(f'--output={out}', f'--style={arg}') == 0
    np.testing.assert_array_equal(
      image_lib.read_image(str(out / 'a.png')), stylizer(photo, style=style)
    )
  assert cli(f'--output={tmp_path / "bad"}', '--style=pastel') == 2
  assert "Error: Unknown style 'pastel'" in capsys.readouterr().err


def test_tiles_are_stylized_in_the_style_asked(tmp_path, multistyle_workdir):
  from shopstyle_jax import exporting  # pylint: disable=g-import-not-at-top

  trained = inference.load_stylizer(multistyle_workdir)
  # Styles far apart (the tiny run barely separates them): random per-style shifts.
  rng = np.random.RandomState(3)
  variables = jax.tree_util.tree_map_with_path(
    lambda path, x: x + rng.normal(0, 0.5, x.shape).astype(x.dtype)
    if 'style_shift' in jax.tree_util.keystr(path)
    else x,
    jax.device_get(trained.variables),
  )
  stylizer = inference.Stylizer(trained.generator, variables, trained.step, trained.config)
  photo = np.random.RandomState(2).randint(0, 256, (320, 320, 3), np.uint8)
  tiled_options = dict(tile=160, tile_threshold=128 * 128)
  whole = {s: stylizer(photo, style=s, tile_threshold=None).astype(np.float32) for s in STYLES}
  between = np.abs(whole['sketch'] - whole['watercolor']).mean()
  for s in ('sketch', 'watercolor'):
    tiled = stylizer(photo, style=s, **tiled_options).astype(np.float32)
    # Tiles differ from the whole frame only near their seams, far less than the styles do.
    assert np.abs(tiled - whole[s]).mean() < 0.25 * between, s
  exported, weights = exporting.export_stylizer(stylizer, ('cpu',))
  path = str(tmp_path / 'multi.bin')
  exporting.save_exported(
    path, exported, weights, exporting.stylizer_metadata(stylizer, multistyle_workdir, 'float32')
  )
  with pytest.raises(ValueError, match='holds several styles'):
    exporting.load_exported(path)(photo, style='sketch', **tiled_options)
