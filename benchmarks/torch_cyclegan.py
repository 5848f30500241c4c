"""The official CycleGAN train step: CycleGANModel and its ImagePool.

Restates junyanz/pytorch-CycleGAN-and-pix2pix ``models/cycle_gan_model.py``
(``CycleGANModel``, training parts: ``forward``, ``backward_D_basic``,
``backward_D_A``/``backward_D_B``, ``backward_G``, ``optimize_parameters``) and
``util/image_pool.py`` (``ImagePool``), with the paper's defaults. The networks
come from torch_resnet.py and torch_pix2pix.py; torch_unpaired.py
(``--method cyclegan``) times it.
"""

from __future__ import annotations

import itertools
import random

import torch
from torch_common import BenchModel
from torch_common import count_params
from torch_pix2pix import GANLoss
from torch_pix2pix import NLayerDiscriminator
from torch_pix2pix import get_norm_layer
from torch_pix2pix import set_requires_grad
from torch_resnet import CUTNLayerDiscriminator
from torch_resnet import ResnetGenerator
from torch_resnet import init_weights_typed


class ImagePool:
  """util/image_pool.ImagePool: a buffer of up to pool_size past fakes; once full,
  each image is swapped with a random stored one with probability 0.5."""

  def __init__(self, pool_size):
    self.pool_size = pool_size
    if self.pool_size > 0:
      self.num_imgs = 0
      self.images = []

  def query(self, images):
    if self.pool_size == 0:
      return images
    return_images = []
    for image in images:
      image = torch.unsqueeze(image.data, 0)
      if self.num_imgs < self.pool_size:  # the buffer is not full: keep inserting
        self.num_imgs = self.num_imgs + 1
        self.images.append(image)
        return_images.append(image)
      else:
        p = random.uniform(0, 1)
        if p > 0.5:  # return a stored image and put the current one in its place
          random_id = random.randint(0, self.pool_size - 1)  # randint is inclusive
          tmp = self.images[random_id].clone()
          self.images[random_id] = image
          return_images.append(tmp)
        else:  # return the current image
          return_images.append(image)
    return torch.cat(return_images, 0)


class CycleGAN(BenchModel):
  """CycleGANModel (models/cycle_gan_model.py), training parts, paper defaults."""

  def __init__(
    self,
    device,
    *,
    ngf=64,
    ndf=64,
    n_blocks=9,
    lr=2e-4,
    beta1=0.5,
    lambda_A=10.0,
    lambda_B=10.0,
    lambda_identity=0.5,
    pool_size=50,
    jax_layout=False,
    autocast_dtype=None,
    channels_last=False,
  ):
    self._setup_common(device, autocast_dtype, channels_last)
    norm_layer = get_norm_layer('instance')
    g_kwargs = dict(
      ngf=ngf,
      norm_layer=norm_layer,
      use_dropout=False,  # CycleGAN sets no_dropout=True
      n_blocks=n_blocks,
      no_antialias=True,  # CycleGAN's ResnetGenerator has plain strided convs
      no_antialias_up=True,
    )
    if jax_layout:
      g_kwargs.update(up_kernel_size=4, conv_bias=False)
    # define_G(..., init_type='normal', init_gain=0.02)
    self.netG_A = ResnetGenerator(3, 3, **g_kwargs)
    self.netG_B = ResnetGenerator(3, 3, **g_kwargs)
    # define_D(output_nc / input_nc, ndf, 'basic', norm='instance')
    if jax_layout:
      make_d = lambda: CUTNLayerDiscriminator(
        3, ndf, n_layers=3, norm_layer=norm_layer, no_antialias=True, conv_bias=False
      )
    else:
      make_d = lambda: NLayerDiscriminator(3, ndf, n_layers=3, norm_layer=norm_layer)
    self.netD_A = make_d()
    self.netD_B = make_d()
    self.nets = {'G_A': self.netG_A, 'G_B': self.netG_B, 'D_A': self.netD_A, 'D_B': self.netD_B}
    for net in self.nets.values():
      init_weights_typed(net, 'normal', 0.02)
      self._place(net)
    self.params = {k: count_params(v) for k, v in self.nets.items()}

    self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
    self.fake_A_pool = ImagePool(pool_size)
    self.fake_B_pool = ImagePool(pool_size)
    self.criterionGAN = GANLoss('lsgan').to(device)
    self.criterionCycle = torch.nn.L1Loss()
    self.criterionIdt = torch.nn.L1Loss()
    self.optimizer_G = torch.optim.Adam(
      itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()),
      lr=lr,
      betas=(beta1, 0.999),
    )
    self.optimizer_D = torch.optim.Adam(
      itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()),
      lr=lr,
      betas=(beta1, 0.999),
    )

  @property
  def stylize_net(self):
    return self.netG_A

  def set_input(self, real_A, real_B):
    self.real_A = real_A
    self.real_B = real_B

  def forward(self):
    with self._autocast():
      self.fake_B = self.netG_A(self.real_A)  # G_A(A)
      self.rec_A = self.netG_B(self.fake_B)  # G_B(G_A(A))
      self.fake_A = self.netG_B(self.real_B)  # G_B(B)
      self.rec_B = self.netG_A(self.fake_A)  # G_A(G_B(B))

  def backward_D_basic(self, netD, real, fake):
    with self._autocast():
      pred_real = netD(real)
      loss_D_real = self.criterionGAN(pred_real, True)
      pred_fake = netD(fake.detach())
      loss_D_fake = self.criterionGAN(pred_fake, False)
      loss_D = (loss_D_real + loss_D_fake) * 0.5
    loss_D.backward()
    return loss_D

  def backward_D_A(self):
    fake_B = self.fake_B_pool.query(self.fake_B)
    self.loss_D_A = self.backward_D_basic(self.netD_A, self.real_B, fake_B)

  def backward_D_B(self):
    fake_A = self.fake_A_pool.query(self.fake_A)
    self.loss_D_B = self.backward_D_basic(self.netD_B, self.real_A, fake_A)

  def backward_G(self):
    lambda_idt, lambda_A, lambda_B = self.lambda_identity, self.lambda_A, self.lambda_B
    with self._autocast():
      if lambda_idt > 0:
        # G_A should be identity if real_B is fed: ||G_A(B) - B||
        self.idt_A = self.netG_A(self.real_B)
        self.loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
        # G_B should be identity if real_A is fed: ||G_B(A) - A||
        self.idt_B = self.netG_B(self.real_A)
        self.loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
      else:
        self.loss_idt_A = 0
        self.loss_idt_B = 0
      self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)  # D_A(G_A(A))
      self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)  # D_B(G_B(B))
      self.loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
      self.loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
      self.loss_G = (
        self.loss_G_A
        + self.loss_G_B
        + self.loss_cycle_A
        + self.loss_cycle_B
        + self.loss_idt_A
        + self.loss_idt_B
      )
    self.loss_G.backward()

  def optimize_parameters(self):
    self.forward()  # compute fake images and reconstruction images
    # G_A and G_B
    set_requires_grad([self.netD_A, self.netD_B], False)  # Ds need no gradients when optimizing Gs
    self.optimizer_G.zero_grad()
    self.backward_G()
    self.optimizer_G.step()
    # D_A and D_B
    set_requires_grad([self.netD_A, self.netD_B], True)
    self.optimizer_D.zero_grad()
    self.backward_D_A()
    self.backward_D_B()
    self.optimizer_D.step()

  def losses(self):
    return {
      'loss_G_last': float(self.loss_G.detach()),
      'loss_D_A_last': float(self.loss_D_A.detach()),
      'loss_D_B_last': float(self.loss_D_B.detach()),
    }
