"""The official CUT/FastCUT train step: CUTModel.

Restates taesungp/contrastive-unpaired-translation ``models/cut_model.py``
(``CUTModel``, training parts: ``data_dependent_initialize``,
``optimize_parameters``, ``forward``, ``compute_D_loss``, ``compute_G_loss``,
``calculate_NCE_loss``) with ``--CUT_mode CUT`` or ``FastCUT`` defaults. The
networks come from torch_resnet.py and torch_patchnce.py; torch_unpaired.py
(``--method cut|fastcut``) times it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_common import BenchModel
from torch_common import count_params
from torch_patchnce import PatchNCELoss
from torch_patchnce import PatchSampleF
from torch_pix2pix import GANLoss
from torch_pix2pix import get_norm_layer
from torch_pix2pix import set_requires_grad
from torch_resnet import CUTNLayerDiscriminator
from torch_resnet import ResnetGenerator
from torch_resnet import init_weights_typed


class CUT(BenchModel):
  """CUTModel (models/cut_model.py), training parts; mode 'cut' or 'fastcut' sets
  the --CUT_mode defaults (nce_idt, lambda_NCE, flip_equivariance)."""

  def __init__(
    self,
    device,
    *,
    mode='cut',
    batch_size=1,
    ngf=64,
    ndf=64,
    n_blocks=9,
    lr=2e-4,
    beta1=0.5,
    beta2=0.999,
    lambda_GAN=1.0,
    nce_layers=(0, 4, 8, 12, 16),
    netF_nc=256,
    nce_T=0.07,
    num_patches=256,
    no_antialias=False,
    no_antialias_up=False,
    jax_layout=False,
    init_type='xavier',
    init_gain=0.02,
    autocast_dtype=None,
    channels_last=False,
  ):
    self._setup_common(device, autocast_dtype, channels_last)
    if mode == 'cut':
      self.nce_idt, self.lambda_NCE, self.flip_equivariance = True, 1.0, False
    elif mode == 'fastcut':
      self.nce_idt, self.lambda_NCE, self.flip_equivariance = False, 10.0, True
    else:
      raise ValueError(mode)
    self.lambda_GAN = lambda_GAN
    self.nce_layers = list(nce_layers)
    self.num_patches = num_patches
    norm_layer = get_norm_layer('instance')  # normG = normD = 'instance'
    g_kwargs = {}
    if jax_layout:
      no_antialias = no_antialias_up = True
      g_kwargs = dict(up_kernel_size=4, conv_bias=False)
    # define_G(..., 'resnet_9blocks', normG, not no_dropout (= False), init_type, init_gain,
    #          no_antialias, no_antialias_up)
    self.netG = ResnetGenerator(
      3,
      3,
      ngf,
      norm_layer=norm_layer,
      use_dropout=False,
      n_blocks=n_blocks,
      no_antialias=no_antialias,
      no_antialias_up=no_antialias_up,
      **g_kwargs,
    )
    # define_F(..., 'mlp_sample'): its MLPs are created on the first forward
    self.netF = PatchSampleF(use_mlp=True, init_type=init_type, init_gain=init_gain, nc=netF_nc)
    # define_D(output_nc, ndf, 'basic', 3, normD, init_type, init_gain, no_antialias)
    self.netD = CUTNLayerDiscriminator(
      3,
      ndf,
      n_layers=3,
      norm_layer=norm_layer,
      no_antialias=no_antialias,
      conv_bias=False if jax_layout else None,
    )
    for net in (self.netG, self.netF, self.netD):
      init_weights_typed(net, init_type, init_gain)  # init_net
      self._place(net)

    self.criterionGAN = GANLoss('lsgan').to(device)
    self.criterionNCE = [PatchNCELoss(batch_size, nce_T).to(device) for _ in self.nce_layers]
    self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=lr, betas=(beta1, beta2))
    self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(beta1, beta2))
    self.optimizer_F = None
    self._lr, self._betas = lr, (beta1, beta2)

  @property
  def stylize_net(self):
    return self.netG

  def data_dependent_initialize(self, real_A, real_B):
    """CUTModel.data_dependent_initialize: one forward and both backward passes
    (which creates netF's MLPs), then netF's optimizer. Single device: the
    whole batch is bs_per_gpu."""
    self.set_input(real_A, real_B)
    self.forward()
    self.compute_D_loss().backward()  # calculate gradients for D
    self.compute_G_loss().backward()  # calculate gradients for G (creates netF's MLPs)
    if self.lambda_NCE > 0.0:
      self.optimizer_F = torch.optim.Adam(self.netF.parameters(), lr=self._lr, betas=self._betas)
    self.params = {
      'G': count_params(self.netG),
      'D': count_params(self.netD),
      'F': count_params(self.netF),
    }

  def optimize_parameters(self):
    # forward
    self.forward()
    # update D
    set_requires_grad(self.netD, True)
    self.optimizer_D.zero_grad()
    self.loss_D = self.compute_D_loss()
    self.loss_D.backward()
    self.optimizer_D.step()
    # update G (and F)
    set_requires_grad(self.netD, False)
    self.optimizer_G.zero_grad()
    self.optimizer_F.zero_grad()  # netF == 'mlp_sample'
    self.loss_G = self.compute_G_loss()
    self.loss_G.backward()
    self.optimizer_G.step()
    self.optimizer_F.step()

  def set_input(self, real_A, real_B):
    self.real_A = real_A
    self.real_B = real_B

  def forward(self):
    self.real = torch.cat((self.real_A, self.real_B), dim=0) if self.nce_idt else self.real_A
    if self.flip_equivariance:
      self.flipped_for_equivariance = np.random.random() < 0.5
      if self.flipped_for_equivariance:
        self.real = torch.flip(self.real, [3])
    with self._autocast():
      self.fake = self.netG(self.real)
    self.fake_B = self.fake[: self.real_A.size(0)]
    if self.nce_idt:
      self.idt_B = self.fake[self.real_A.size(0) :]

  def compute_D_loss(self):
    with self._autocast():
      fake = self.fake_B.detach()
      pred_fake = self.netD(fake)
      self.loss_D_fake = self.criterionGAN(pred_fake, False).mean()
      self.pred_real = self.netD(self.real_B)
      self.loss_D_real = self.criterionGAN(self.pred_real, True).mean()
      self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
    return self.loss_D

  def compute_G_loss(self):
    with self._autocast():
      fake = self.fake_B
      if self.lambda_GAN > 0.0:
        pred_fake = self.netD(fake)
        self.loss_G_GAN = self.criterionGAN(pred_fake, True).mean() * self.lambda_GAN
      else:
        self.loss_G_GAN = 0.0
      if self.lambda_NCE > 0.0:
        self.loss_NCE = self.calculate_NCE_loss(self.real_A, self.fake_B)
      else:
        self.loss_NCE = 0.0
      if self.nce_idt and self.lambda_NCE > 0.0:
        self.loss_NCE_Y = self.calculate_NCE_loss(self.real_B, self.idt_B)
        loss_NCE_both = (self.loss_NCE + self.loss_NCE_Y) * 0.5
      else:
        loss_NCE_both = self.loss_NCE
      self.loss_G = self.loss_G_GAN + loss_NCE_both
    return self.loss_G

  def calculate_NCE_loss(self, src, tgt):
    n_layers = len(self.nce_layers)
    feat_q = self.netG(tgt, self.nce_layers, encode_only=True)
    if self.flip_equivariance and self.flipped_for_equivariance:
      feat_q = [torch.flip(fq, [3]) for fq in feat_q]
    feat_k = self.netG(src, self.nce_layers, encode_only=True)
    feat_k_pool, sample_ids = self.netF(feat_k, self.num_patches, None)
    feat_q_pool, _ = self.netF(feat_q, self.num_patches, sample_ids)
    total_nce_loss = 0.0
    for f_q, f_k, crit in zip(feat_q_pool, feat_k_pool, self.criterionNCE):
      loss = crit(f_q, f_k) * self.lambda_NCE
      total_nce_loss += loss.mean()
    return total_nce_loss / n_layers

  def losses(self):
    out = {
      'loss_G_last': float(self.loss_G.detach()),
      'loss_D_last': float(self.loss_D.detach()),
      'loss_NCE_last': float(self.loss_NCE.detach()),
    }
    if self.nce_idt:
      out['loss_NCE_Y_last'] = float(self.loss_NCE_Y.detach())
    return out
