"""train_and_evaluate in process, on the tiny config (Flax examples' train_test.py):
every method trains, checkpoints and gives a stylizer."""

import numpy as np
import pytest

from shopstyle_jax import checkpoints
from shopstyle_jax import load_stylizer
from shopstyle_jax import train

# The tiny config's U-Net with each method's own terms; a few steps each.
METHODS = {
    'paired': {},
    'cyclegan': {'cycle_weight': 10.0, 'identity_weight': 5.0, 'pool_size': 4, 'gan': 'lsgan'},
    'cut': {'nce_weight': 1.0, 'nce_patches': 16, 'gan': 'lsgan'},
    'fastcut': {'nce_weight': 10.0, 'nce_patches': 16, 'nce_identity': False,
                'flip_equivariance': True, 'gan': 'lsgan'},
    'neural_style': {'adversarial_weight': 0.0, 'content_weight': 1.0, 'style_weight': 5.0,
                     'tv_weight': 1.0, 'vgg_weights': 'random', 'content_layers': ('relu1_2',),
                     'style_layers': ('relu1_1', 'relu1_2'), 'style_layer_weights': (1.0, 1.0)},
}


@pytest.mark.parametrize('method', sorted(METHODS))
def test_every_method_trains_checkpoints_and_stylizes(method, tiny_config, tmp_path):
  config = tiny_config
  config.method = method
  config.num_train_steps, config.checkpoint_every_steps, config.eval_every_steps = 2, 2, 2
  if method != 'paired':
    config.loss.mse_weight = 0.0
    config.data.unpaired = True
    config.loss.update(METHODS[method])
  workdir = str(tmp_path / method)
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 2 and checkpoints.available_steps(workdir) == [2]
  photo = np.random.RandomState(0).randint(0, 256, (40, 50, 3), np.uint8)
  out = load_stylizer(workdir)(photo)
  assert out.shape == photo.shape and out.dtype == np.uint8
