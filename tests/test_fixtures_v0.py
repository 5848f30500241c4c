"""Users' files from before the restructure still load and give the same pixels.

tests/fixtures/v0/ was made once with the code of 0a2b46a (see its README); it
is never regenerated. The fixture came from another compiled program (another
machine, perhaps another CPU), so the comparison is the pixel rule's tolerant one.
"""

import logging
import os
import shutil

import jax
import numpy as np
import pytest

import shopstyle_jax
from conftest import assert_pixel_rule
from shopstyle_jax import checkpoints
from shopstyle_jax.images import read_image

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'v0')


@pytest.fixture(scope='module')
def photo():
  return read_image(os.path.join(FIXTURES, 'photo.png'))


@pytest.fixture(scope='module')
def expected():
  return read_image(os.path.join(FIXTURES, 'expected.png'))


def test_v0_workdir_gives_v0_pixels(photo, expected):
  stylizer = shopstyle_jax.load_stylizer(os.path.join(FIXTURES, 'workdir'))
  assert stylizer.step == 30
  assert_pixel_rule(stylizer(photo), expected)


def test_v0_export_gives_v0_pixels(photo, expected):
  stylizer = shopstyle_jax.load_exported(os.path.join(FIXTURES, 'stylizer.bin'))
  assert stylizer.step == 30
  assert_pixel_rule(stylizer(photo), expected)


@pytest.mark.slow  # Compile-bound: kept out of the fast lane.
def test_v0_checkpoint_resumes_training(tmp_path, tiny_config, caplog):
  """The v0 TrainState had a `nonfinite_count` field: restored in its layout, migrated."""
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path / 'workdir')
  shutil.copytree(os.path.join(FIXTURES, 'workdir'), workdir)
  config = tiny_config  # With the fixture's settings (its README).
  config.model.width = config.model.disc_width = 4
  config.optimizer.learning_rate = 0.002
  config.num_train_steps = 31
  config.checkpoint_every_steps = config.eval_every_steps = 1000
  with caplog.at_level(logging.INFO):
    state = train.train_and_evaluate(config, workdir)
  assert 'Checkpoint 30 has an older layout; migrated (dropped nonfinite_count)' in caplog.text
  assert int(state.step) == 31 and not hasattr(state, 'nonfinite_count')
  assert checkpoints.available_steps(workdir) == [30, 31]
  # Adam's step count went on from the fixture's: the optimizer state was restored.
  tree, _ = checkpoints.restore_subtree(workdir, ('g_opt_state', 'g_params'), 31)
  assert int(tree['g_opt_state'][0]['count']) == 31
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(tree['g_params']))
