"""Each loss against values computed by hand."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from shopstyle_jax import losses


def bce(logit, label):
  return math.log(1 + math.exp(-logit)) if label == 1 else math.log(1 + math.exp(logit))


@pytest.mark.parametrize('real,fake', [(0.0, 0.0), (2.0, -1.0), (-0.5, 3.0)])
def test_vanilla_discriminator_is_half_bce_sum(real, fake):
  got = losses.discriminator_loss('vanilla', jnp.full((2, 3, 3, 1), real),
                                  jnp.full((2, 3, 3, 1), fake))
  assert float(got) == pytest.approx(0.5 * (bce(real, 1) + bce(fake, 0)), rel=1e-6)


def test_vanilla_at_zero_logits_is_log2():
  got = losses.discriminator_loss('vanilla', jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 4, 1)))
  assert float(got) == pytest.approx(math.log(2), rel=1e-6)


def test_vanilla_generator_is_non_saturating():
  # -log D(G(x)), not log(1 - D(G(x))): large when D confidently rejects.
  assert float(losses.generator_adversarial_loss('vanilla', jnp.array([-1.0]))) == pytest.approx(
      math.log(1 + math.e), rel=1e-6)
  assert float(losses.generator_adversarial_loss('vanilla', jnp.array([-20.0]))) == pytest.approx(
      20.0, rel=1e-4)


def test_lsgan():
  real, fake = jnp.array([2.0, 0.0]), jnp.array([-1.0, 1.0])
  # 0.5 * (mean([1, 1]) + mean([1, 1]))
  assert float(losses.discriminator_loss('lsgan', real, fake)) == pytest.approx(1.0)
  # mean([(−1−1)^2, 0]) = 2
  assert float(losses.generator_adversarial_loss('lsgan', fake)) == pytest.approx(2.0)


def test_hinge():
  real, fake = jnp.array([2.0, 0.5]), jnp.array([-1.0, 0.5])
  # mean(relu(1 - [2, .5])) + mean(relu(1 + [-1, .5])) = 0.25 + 0.75
  assert float(losses.discriminator_loss('hinge', real, fake)) == pytest.approx(1.0)
  assert float(losses.generator_adversarial_loss('hinge', fake)) == pytest.approx(0.25)


def test_unknown_gan_loss_names_allowed():
  with pytest.raises(ValueError, match='vanilla'):
    losses.discriminator_loss('wgan', jnp.zeros(1), jnp.zeros(1))


def test_mse_and_l1():
  a = jnp.array([[0.0, 1.0], [-1.0, 0.5]])
  b = jnp.array([[1.0, 1.0], [1.0, 0.0]])
  assert float(losses.mse(a, b)) == pytest.approx((1 + 0 + 4 + 0.25) / 4)
  assert float(losses.l1(a, b)) == pytest.approx((1 + 0 + 2 + 0.5) / 4)


def test_perceptual_weights_layers_and_stops_target_gradient():
  features = lambda x: {'a': x, 'b': 2.0 * x}
  a = jnp.array(np.random.RandomState(0).uniform(-1, 1, (2, 4, 4, 3)), jnp.float32)
  b = jnp.zeros_like(a)
  got = losses.perceptual(features, a, b, ('a', 'b'), (1.0, 0.5))
  assert float(got) == pytest.approx(2.0 * float(jnp.mean(jnp.abs(a))), rel=1e-6)
  import jax  # pylint: disable=g-import-not-at-top
  grad_b = jax.grad(lambda t: losses.perceptual(features, a, t, ('a',), (1.0,)))(b)
  assert float(jnp.abs(grad_b).max()) == 0.0
