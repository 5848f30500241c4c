"""train_and_evaluate in process, on the tiny config (Flax examples' train_test.py): every
method trains, checkpoints and gives a stylizer; a resumed run equals an uninterrupted one
bit for bit; what a run writes; fine-tuning; a folder of the user's photos.

The fast lane's end-to-end training tests: tests/test_main.py repeats the essentials
through real `main.py` processes (marked `slow`).
"""

import json
import logging
import os

import jax
import numpy as np
import pytest

from conftest import tensorboard_tags
from conftest import train_in_process
from conftest import trained_config
from shopstyle_jax import checkpoints
from shopstyle_jax import load_stylizer
from shopstyle_jax import methods
from shopstyle_jax import state as state_lib
from shopstyle_jax import train

# Each method's own terms; a few steps each (paired: conftest's trained_workdir).
METHODS = {
  'paired': {},
  'cyclegan': {'cycle_weight': 10.0, 'identity_weight': 5.0, 'pool_size': 4, 'gan': 'lsgan'},
  'cut': {'nce_weight': 1.0, 'nce_patches': 16, 'gan': 'lsgan'},
  'fastcut': {
    'nce_weight': 10.0,
    'nce_patches': 16,
    'nce_identity': False,
    'flip_equivariance': True,
    'gan': 'lsgan',
  },
  'neural_style': {
    'adversarial_weight': 0.0,
    'content_weight': 1.0,
    'style_weight': 5.0,
    'tv_weight': 1.0,
    'vgg_weights': 'random',
    'content_layers': ('relu1_2',),
    'style_layers': ('relu1_1', 'relu1_2'),
    'style_layer_weights': (1.0, 1.0),
  },
}

# Everything a checkpoint holds that training changes.
STATE_KEYS = ('step', 'g_params', 'g_opt_state', 'd_params', 'd_opt_state')


class _Killed(Exception):
  """Stands for the process dying."""


def saved(workdir, step, keys=STATE_KEYS):
  tree, _ = checkpoints.restore_subtree(workdir, keys, step)
  return tree


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


# CUT and CycleGAN compile the heaviest steps: in the slow lane (FastCUT runs CUT's).
_SLOW_METHODS = ('cut', 'cyclegan')


@pytest.mark.parametrize(
  'method',
  [pytest.param(m, marks=pytest.mark.slow) if m in _SLOW_METHODS else m for m in sorted(METHODS)],
)
def test_every_method_trains_checkpoints_and_stylizes(
  method, tiny_config, trained_workdir, tmp_path
):
  if method == 'paired':
    workdir, steps = trained_workdir, 4  # conftest trains it in process.
  else:
    config = tiny_config
    config.method = method
    config.num_train_steps, config.checkpoint_every_steps, config.eval_every_steps = 2, 2, 2
    config.loss.mse_weight = 0.0
    config.data.unpaired = True
    config.loss.update(METHODS[method])
    # Smaller networks than the tiny config's: the step compiles in half the time.
    config.model.update(depth=3, width=4, disc_layers=1, disc_width=4)
    workdir, steps = str(tmp_path / method), 2
    state = train_in_process(config, workdir)
    assert int(state.step) == 2
    # The eval grid: photo | target | output (the catalogue's test pairs), and for
    # CycleGAN the photo rebuilt from the output, F(G(photo)).
    grids = [t for t in tensorboard_tags(workdir) if t.startswith('eval/input')]
    assert grids == [
      'eval/input_target_output' + ('_reconstruction' if method == 'cyclegan' else '')
    ]
  assert checkpoints.available_steps(workdir)[-1] == steps
  photo = np.random.RandomState(0).randint(0, 256, (40, 50, 3), np.uint8)
  out = load_stylizer(workdir)(photo)
  assert out.shape == photo.shape and out.dtype == np.uint8


def test_resumed_run_equals_an_uninterrupted_run(
  data_dir, trained_workdir, tmp_path, monkeypatch, caplog
):
  """A run killed right after its checkpoint at step 2, rerun in the same workdir: at
  step 4 the same state, bit for bit, as the uninterrupted run (trained_workdir): the
  optimizer state, the step and the input iterator's position are all restored."""
  save = checkpoints.Saver.save

  def save_then_die(saver, step, *args, **kwargs):
    failed = save(saver, step, *args, **kwargs)
    if step == 2:
      saver.wait()
      raise _Killed
    return failed

  workdir = str(tmp_path / 'resumed')
  config = trained_config(data_dir)
  monkeypatch.setattr(checkpoints.Saver, 'save', save_then_die)
  with pytest.raises(_Killed):
    train_in_process(config, workdir)
  monkeypatch.undo()
  assert checkpoints.available_steps(workdir) == [2]
  with caplog.at_level(logging.INFO):
    train_in_process(config, workdir)
  assert 'Resumed from the checkpoint at step 2.' in caplog.text
  assert 'other data' not in caplog.text  # The same data: no warning.
  assert checkpoints.available_steps(workdir) == [2, 4]
  assert_trees_equal(saved(workdir, 4), saved(trained_workdir, 4))
  assert_trees_equal(saved(workdir, 2), saved(trained_workdir, 2))

  # A changed network is refused before anything is written.
  config.num_train_steps, config.model.width = 6, 16
  with pytest.raises(ValueError, match=r'config.model.width: 8 -> 16'):
    train_in_process(config, workdir)
  assert checkpoints.available_steps(workdir) == [2, 4]
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['model']['width'] == 8


def test_a_run_writes_its_config_events_and_checkpoints(trained_workdir):
  with open(os.path.join(trained_workdir, 'config.json')) as f:
    config = json.load(f)
  assert config['image_size'] == 32 and config['model']['generator'] == 'unet'
  assert config['run']['devices'] == jax.device_count()
  assert config['run']['processes'] == 1
  tags = tensorboard_tags(trained_workdir)
  for tag in (
    'train/g_loss',
    'train/d_loss',
    'train/g_mse',
    'train/learning_rate',
    'train/steps_per_second',
  ):
    assert sorted(tags.get(tag, [])) == [2, 4], (tag, sorted(tags))
  for tag in ('eval/psnr', 'eval/ssim', 'eval/input_target_output'):
    assert tags.get(tag) == [4], (tag, sorted(tags))
  # tiny: checkpoints every 2 steps, the last 3 kept.
  assert checkpoints.available_steps(trained_workdir) == [2, 4]
  assert int(saved(trained_workdir, 4, ('step',))['step']) == 4


def test_init_from_starts_from_another_runs_weights(data_dir, trained_workdir, tmp_path, caplog):
  config = trained_config(data_dir)  # The same compiled step as trained_workdir's.
  config.init_from = trained_workdir
  workdir = str(tmp_path / 'finetune')
  with caplog.at_level(logging.INFO):
    train_in_process(config, workdir)
  assert f'Initialised both networks from {trained_workdir} (step 4).' in caplog.text
  # Four Adam steps from the source's weights. By Cauchy-Schwarz, step t moves a weight
  # by at most lr * sqrt(sum_i a_i^2 / c_i) (a_i, c_i: the bias-corrected weights of
  # gradient i in the first and second moments): 1, 1.05, 1.13 and 1.23 lr with b1=0.5
  # and b2=0.999, 4.42 lr in all. A fresh initialisation is orders of magnitude off.
  bound = 4.42 * config.optimizer.learning_rate
  src = saved(trained_workdir, 4, ('g_params', 'd_params'))
  dst = saved(workdir, 4, ('g_params', 'd_params'))
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), src, dst))
  assert 0 < max(moved) <= bound, (max(moved), bound)


def test_init_from_refuses_other_networks_naming_the_arrays(tiny_config, trained_workdir):
  config = tiny_config
  config.init_from = os.path.join(trained_workdir, 'checkpoints', '2')  # A step folder.
  config.model.width = 16
  method = methods.get(config.method)
  state = jax.eval_shape(
    lambda: method.create_state(
      config, method.build_models(config), state_lib.prng_key(config.seed)
    )
  )
  with pytest.raises(
    ValueError,
    match=(
      r'config.init_from=.*/checkpoints/2: the networks do not match this config \(\d+ '
      r'differences, e.g. g_params\[.*\]: ours \(.*16,?\), theirs \(.*8,?\)'
    ),
  ):
    train._init_from(config, state)  # pylint: disable=protected-access
