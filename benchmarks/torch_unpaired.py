#!/usr/bin/env python3
"""PyTorch reference benchmark: the official CycleGAN and CUT/FastCUT train steps.

A standalone re-statement of the networks and the training steps of the
official PyTorch code, with the papers' defaults, beside torch_pix2pix.py
(whose timing harness, JSON record and shared pieces it imports):

* ``--method cyclegan``: junyanz/pytorch-CycleGAN-and-pix2pix,
  ``models/cycle_gan_model.py`` (``CycleGANModel.optimize_parameters``),
  ``models/networks.py`` and ``util/image_pool.py``. G_A, G_B: ``resnet_9blocks``
  (ngf 64, instance norm, no dropout, reflect padding); D_A, D_B: the 70x70
  PatchGAN (``basic``, ndf 64, instance norm); LSGAN; lambda_A = lambda_B = 10,
  lambda_identity 0.5; ImagePool(50) per D; Adam(2e-4, (0.5, 0.999)) on
  chain(G_A, G_B) and on chain(D_A, D_B); ``init_type normal``, gain 0.02.
* ``--method cut`` / ``--method fastcut``: taesungp/contrastive-unpaired-translation,
  ``models/cut_model.py`` (``CUTModel.optimize_parameters``,
  ``data_dependent_initialize``, ``calculate_NCE_loss``), ``models/networks.py``
  (``ResnetGenerator`` with the anti-aliased ``Downsample``/``Upsample``,
  ``NLayerDiscriminator``, ``PatchSampleF``) and ``models/patchnce.py``.
  ``--CUT_mode CUT``: nce_idt, lambda_NCE 1; ``FastCUT``: no nce_idt,
  lambda_NCE 10, flip_equivariance. Both: netF ``mlp_sample`` (netF_nc 256),
  nce_layers 0,4,8,12,16, num_patches 256, nce_T 0.07, LSGAN, lambda_GAN 1, no
  image pool, ``init_type xavier`` gain 0.02 (CUT's default), Adam(2e-4,
  (0.5, 0.999)) for G, D and F (F's optimizer made after the data-dependent
  initialisation that creates the MLPs, as the official code does).

The official code's in-place ReLU/LeakyReLU are kept: with ``--no_antialias``,
CUT's nce layer 8 is an InstanceNorm output that the next (in-place) ReLU
rewrites, so that feature is the activated one, as in the official code.

``--jax_layout`` (not an official option) builds the networks as
shopstyle_jax's ``ResnetGenerator`` / ``UnconditionalPatchDiscriminator``
(configs/cyclegan.py, cut.py, fastcut.py): plain stride-2 convs (CUT's
``--no_antialias --no_antialias_up``), 4x4 stride-2 transposed convs in place
of the official 3x3 ones, no conv bias before the instance norms, and for CUT
``--nce_layers 0,4,7,10,14`` (the reflection-padded input, both strided convs'
outputs, residual blocks 1 and 5: our ``nce_taps``).

Left out, as they do not change a step's work: data loading and augmentation,
the learning-rate schedulers (stepped per epoch), DataParallel, logging and
visualisation, CUT's unreachable ``-1 in layers`` branch. bfloat16 autocast and
channels_last are benchmark options; the official code has neither. CUT's
data-dependent initialisation runs once, on the benchmark batch, before the
warm-up (untimed), as train.py runs it before the first step.

This is a benchmark tool only; torch is not a dependency of ``shopstyle_jax``.
Run it from its own virtualenv (see benchmarks/README.md). The last line printed
on stdout is one JSON object with the results; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import random
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init
from torch_pix2pix import GANLoss
from torch_pix2pix import NLayerDiscriminator
from torch_pix2pix import device_name
from torch_pix2pix import get_norm_layer
from torch_pix2pix import init_weights
from torch_pix2pix import log
from torch_pix2pix import set_requires_grad
from torch_pix2pix import synchronize

# --------------------------------------------------------------------------
# Networks (official models/networks.py; CUT's version where it differs)
# --------------------------------------------------------------------------


def init_weights_typed(net: nn.Module, init_type: str, init_gain: float = 0.02) -> None:
  """networks.init_weights for init_type 'normal' (CycleGAN's default; it is
  torch_pix2pix.init_weights) and 'xavier' (CUT's default): xavier_normal_ with
  gain init_gain on Conv*/Linear weights, zero biases."""
  if init_type == 'normal':
    init_weights(net, 'normal', init_gain)
    return
  if init_type != 'xavier':
    raise NotImplementedError(init_type)

  def init_func(m):
    classname = m.__class__.__name__
    if hasattr(m, 'weight') and (classname.find('Conv') != -1 or classname.find('Linear') != -1):
      init.xavier_normal_(m.weight.data, gain=init_gain)
      if hasattr(m, 'bias') and m.bias is not None:
        init.constant_(m.bias.data, 0.0)
    elif classname.find('BatchNorm2d') != -1:  # (unused here: instance norm has no affine)
      init.normal_(m.weight.data, 1.0, init_gain)
      init.constant_(m.bias.data, 0.0)

  net.apply(init_func)


def _official_uses_bias(norm_layer) -> bool:
  # Official rule: convs followed by InstanceNorm (no affine) have a bias, by BatchNorm not.
  if isinstance(norm_layer, functools.partial):
    return norm_layer.func == nn.InstanceNorm2d
  return norm_layer == nn.InstanceNorm2d


def get_filter(filt_size: int = 3) -> torch.Tensor:
  """CUT networks.get_filter: the normalised binomial blur kernel, [k, k]."""
  a = {
    1: [1.0],
    2: [1.0, 1.0],
    3: [1.0, 2.0, 1.0],
    4: [1.0, 3.0, 3.0, 1.0],
    5: [1.0, 4.0, 6.0, 4.0, 1.0],
    6: [1.0, 5.0, 10.0, 10.0, 5.0, 1.0],
    7: [1.0, 6.0, 15.0, 20.0, 15.0, 6.0, 1.0],
  }[filt_size]
  a = np.array(a)
  filt = torch.Tensor(a[:, None] * a[None, :])
  return filt / torch.sum(filt)


def get_pad_layer(pad_type: str):
  """CUT networks.get_pad_layer."""
  if pad_type in ['refl', 'reflect']:
    return nn.ReflectionPad2d
  if pad_type in ['repl', 'replicate']:
    return nn.ReplicationPad2d
  if pad_type == 'zero':
    return nn.ZeroPad2d
  raise NotImplementedError(f'Pad type [{pad_type}] not recognized')


class Downsample(nn.Module):
  """CUT networks.Downsample: reflect pad, fixed [1,2,1]^2 blur, stride 2 (depthwise)."""

  def __init__(self, channels, pad_type='reflect', filt_size=3, stride=2, pad_off=0):
    super().__init__()
    self.filt_size = filt_size
    self.pad_off = pad_off
    self.pad_sizes = [
      int(1.0 * (filt_size - 1) / 2),
      int(np.ceil(1.0 * (filt_size - 1) / 2)),
      int(1.0 * (filt_size - 1) / 2),
      int(np.ceil(1.0 * (filt_size - 1) / 2)),
    ]
    self.pad_sizes = [pad_size + pad_off for pad_size in self.pad_sizes]
    self.stride = stride
    self.off = int((self.stride - 1) / 2.0)
    self.channels = channels
    filt = get_filter(filt_size=self.filt_size)
    self.register_buffer('filt', filt[None, None, :, :].repeat((self.channels, 1, 1, 1)))
    self.pad = get_pad_layer(pad_type)(self.pad_sizes)

  def forward(self, inp):
    if self.filt_size == 1:
      if self.pad_off == 0:
        return inp[:, :, :: self.stride, :: self.stride]
      return self.pad(inp)[:, :, :: self.stride, :: self.stride]
    return F.conv2d(self.pad(inp), self.filt, stride=self.stride, groups=inp.shape[1])


class Upsample(nn.Module):
  """CUT networks.Upsample: replicate pad 1, fixed [1,3,3,1]^2 (x4) transposed conv, stride 2."""

  def __init__(self, channels, pad_type='repl', filt_size=4, stride=2):
    super().__init__()
    self.filt_size = filt_size
    self.filt_odd = np.mod(filt_size, 2) == 1
    self.pad_size = int((filt_size - 1) / 2)
    self.stride = stride
    self.off = int((self.stride - 1) / 2.0)
    self.channels = channels
    filt = get_filter(filt_size=self.filt_size) * (stride**2)
    self.register_buffer('filt', filt[None, None, :, :].repeat((self.channels, 1, 1, 1)))
    self.pad = get_pad_layer(pad_type)([1, 1, 1, 1])

  def forward(self, inp):
    ret_val = F.conv_transpose2d(
      self.pad(inp),
      self.filt,
      stride=self.stride,
      padding=1 + self.pad_size,
      groups=inp.shape[1],
    )[:, :, 1:, 1:]
    if self.filt_odd:
      return ret_val
    return ret_val[:, :, :-1, :-1]


class ResnetBlock(nn.Module):
  """networks.ResnetBlock: x + [pad 1, conv3, norm, ReLU, (dropout), pad 1, conv3, norm]."""

  def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
    super().__init__()
    self.conv_block = self.build_conv_block(dim, padding_type, norm_layer, use_dropout, use_bias)

  def build_conv_block(self, dim, padding_type, norm_layer, use_dropout, use_bias):
    conv_block = []
    for second in (False, True):
      p = 0
      if padding_type == 'reflect':
        conv_block += [nn.ReflectionPad2d(1)]
      elif padding_type == 'replicate':
        conv_block += [nn.ReplicationPad2d(1)]
      elif padding_type == 'zero':
        p = 1
      else:
        raise NotImplementedError(f'padding [{padding_type}] is not implemented')
      conv_block += [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(dim)]
      if not second:
        conv_block += [nn.ReLU(True)]
        if use_dropout:
          conv_block += [nn.Dropout(0.5)]
    return nn.Sequential(*conv_block)

  def forward(self, x):
    return x + self.conv_block(x)  # add skip connections


class ResnetGenerator(nn.Module):
  """CUT networks.ResnetGenerator (resnet_{n}blocks).

  With no_antialias=True and no_antialias_up=True it is, module for module,
  CycleGAN's networks.ResnetGenerator: reflect-pad 3, conv7, norm, ReLU; two
  [conv3 stride 2, norm, ReLU]; n ResnetBlocks; two [ConvTranspose2d(3, stride 2,
  padding 1, output_padding 1), norm, ReLU]; reflect-pad 3, conv7 (bias), tanh.
  CUT's default (anti-aliased) replaces each strided conv by [conv3 stride 1,
  norm, ReLU, Downsample] and each transposed conv by [Upsample, conv3].

  Not official (for --jax_layout): up_kernel_size=4 uses ConvTranspose2d(4,
  stride 2, padding 1) for the upsampling, and conv_bias=False drops the conv
  biases before the norms (None: the official rule).

  forward(input, layers, encode_only) is CUT's: with `layers`, the outputs of
  those indices of self.model are collected (encode_only: stop after the last).
  """

  def __init__(
    self,
    input_nc,
    output_nc,
    ngf=64,
    norm_layer=nn.BatchNorm2d,
    use_dropout=False,
    n_blocks=6,
    padding_type='reflect',
    no_antialias=False,
    no_antialias_up=False,
    up_kernel_size=3,
    conv_bias=None,
  ):
    assert n_blocks >= 0
    super().__init__()
    use_bias = _official_uses_bias(norm_layer) if conv_bias is None else conv_bias
    model = [
      nn.ReflectionPad2d(3),
      nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
      norm_layer(ngf),
      nn.ReLU(True),
    ]
    n_downsampling = 2
    for i in range(n_downsampling):  # add downsampling layers
      mult = 2**i
      if no_antialias:
        model += [
          nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
          norm_layer(ngf * mult * 2),
          nn.ReLU(True),
        ]
      else:
        model += [
          nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=1, padding=1, bias=use_bias),
          norm_layer(ngf * mult * 2),
          nn.ReLU(True),
          Downsample(ngf * mult * 2),
        ]
    mult = 2**n_downsampling
    for i in range(n_blocks):  # add ResNet blocks
      model += [
        ResnetBlock(
          ngf * mult,
          padding_type=padding_type,
          norm_layer=norm_layer,
          use_dropout=use_dropout,
          use_bias=use_bias,
        )
      ]
    for i in range(n_downsampling):  # add upsampling layers
      mult = 2 ** (n_downsampling - i)
      if no_antialias_up:
        if up_kernel_size == 3:  # official
          up = nn.ConvTranspose2d(
            ngf * mult,
            int(ngf * mult / 2),
            kernel_size=3,
            stride=2,
            padding=1,
            output_padding=1,
            bias=use_bias,
          )
        elif up_kernel_size == 4:  # shopstyle_jax's layers.ConvTranspose4x4
          up = nn.ConvTranspose2d(
            ngf * mult, int(ngf * mult / 2), kernel_size=4, stride=2, padding=1, bias=use_bias
          )
        else:
          raise ValueError(f'up_kernel_size must be 3 or 4, got {up_kernel_size}')
        model += [up, norm_layer(int(ngf * mult / 2)), nn.ReLU(True)]
      else:
        model += [
          Upsample(ngf * mult),
          nn.Conv2d(
            ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=1, padding=1, bias=use_bias
          ),
          norm_layer(int(ngf * mult / 2)),
          nn.ReLU(True),
        ]
    model += [nn.ReflectionPad2d(3)]
    model += [nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
    model += [nn.Tanh()]
    self.model = nn.Sequential(*model)

  def forward(self, input, layers=(), encode_only=False):
    # (The official `if -1 in layers: layers.append(len(self.model))` is not
    # reachable with CUT's nce_layers and is left out.)
    if len(layers) > 0:
      feat = input
      feats = []
      for layer_id, layer in enumerate(self.model):
        feat = layer(feat)
        if layer_id in layers:
          feats.append(feat)
        if layer_id == layers[-1] and encode_only:
          return feats  # return intermediate features alone; stop in the last layers
      return feat, feats  # return both output and intermediate features
    return self.model(input)


class CUTNLayerDiscriminator(nn.Module):
  """CUT networks.NLayerDiscriminator (70x70 PatchGAN for n_layers=3).

  no_antialias=True is CycleGAN's NLayerDiscriminator (torch_pix2pix's);
  CUT's default replaces each stride-2 conv by a stride-1 conv, LeakyReLU and a
  Downsample blur. Not official: conv_bias=False drops the biases of the convs
  before the norms (--jax_layout); None keeps the official rule.
  """

  def __init__(
    self,
    input_nc,
    ndf=64,
    n_layers=3,
    norm_layer=nn.BatchNorm2d,
    no_antialias=False,
    conv_bias=None,
  ):
    super().__init__()
    use_bias = _official_uses_bias(norm_layer) if conv_bias is None else conv_bias
    kw = 4
    padw = 1
    if no_antialias:
      sequence = [
        nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
        nn.LeakyReLU(0.2, True),
      ]
    else:
      sequence = [
        nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=1, padding=padw),
        nn.LeakyReLU(0.2, True),
        Downsample(ndf),
      ]
    nf_mult = 1
    for n in range(1, n_layers):  # gradually increase the number of filters
      nf_mult_prev = nf_mult
      nf_mult = min(2**n, 8)
      if no_antialias:
        sequence += [
          nn.Conv2d(
            ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=use_bias
          ),
          norm_layer(ndf * nf_mult),
          nn.LeakyReLU(0.2, True),
        ]
      else:
        sequence += [
          nn.Conv2d(
            ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias
          ),
          norm_layer(ndf * nf_mult),
          nn.LeakyReLU(0.2, True),
          Downsample(ndf * nf_mult),
        ]
    nf_mult_prev = nf_mult
    nf_mult = min(2**n_layers, 8)
    sequence += [
      nn.Conv2d(
        ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias
      ),
      norm_layer(ndf * nf_mult),
      nn.LeakyReLU(0.2, True),
    ]
    sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
    self.model = nn.Sequential(*sequence)

  def forward(self, input):
    return self.model(input)


class Normalize(nn.Module):
  """CUT networks.Normalize: x / (||x||_p + 1e-7) over dim 1."""

  def __init__(self, power=2):
    super().__init__()
    self.power = power

  def forward(self, x):
    norm = x.pow(self.power).sum(1, keepdim=True).pow(1.0 / self.power)
    return x.div(norm + 1e-7)


class PatchSampleF(nn.Module):
  """CUT networks.PatchSampleF (netF 'mlp_sample' with use_mlp=True).

  The per-layer MLPs (Linear(C_l, nc), ReLU, Linear(nc, nc)) are created on
  the first forward, from the features' channel counts, and initialised then
  (create_mlp -> init_net); hence CUT's data_dependent_initialize. Patch
  positions: numpy permutation per layer (as the official code, which avoids
  torch.randperm on CUDA), the same positions for every image of the batch.
  """

  def __init__(self, use_mlp=False, init_type='normal', init_gain=0.02, nc=256):
    super().__init__()
    self.l2norm = Normalize(2)
    self.use_mlp = use_mlp
    self.nc = nc
    self.mlp_init = False
    self.init_type = init_type
    self.init_gain = init_gain

  def create_mlp(self, feats):
    for mlp_id, feat in enumerate(feats):
      input_nc = feat.shape[1]
      mlp = nn.Sequential(*[nn.Linear(input_nc, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)])
      mlp.to(feat.device)  # official: mlp.cuda() when gpu_ids
      setattr(self, 'mlp_%d' % mlp_id, mlp)
    init_weights_typed(self, self.init_type, self.init_gain)  # official: init_net(self, ...)
    self.mlp_init = True

  def forward(self, feats, num_patches=64, patch_ids=None):
    return_ids = []
    return_feats = []
    if self.use_mlp and not self.mlp_init:
      self.create_mlp(feats)
    for feat_id, feat in enumerate(feats):
      B, H, W = feat.shape[0], feat.shape[2], feat.shape[3]
      feat_reshape = feat.permute(0, 2, 3, 1).flatten(1, 2)
      if num_patches > 0:
        if patch_ids is not None:
          # official: torch.tensor(patch_ids[feat_id], ...), i.e. a copy of the tensor
          patch_id = patch_ids[feat_id].clone().detach()
        else:
          patch_id = np.random.permutation(feat_reshape.shape[1])
          patch_id = patch_id[: int(min(num_patches, patch_id.shape[0]))]
          patch_id = torch.tensor(patch_id, dtype=torch.long, device=feat.device)
        x_sample = feat_reshape[:, patch_id, :].flatten(0, 1)  # reshape(-1, x.shape[1])
      else:
        x_sample = feat_reshape
        patch_id = []
      if self.use_mlp:
        mlp = getattr(self, 'mlp_%d' % feat_id)
        x_sample = mlp(x_sample)
      return_ids.append(patch_id)
      x_sample = self.l2norm(x_sample)
      if num_patches == 0:
        x_sample = x_sample.permute(0, 2, 1).reshape([B, x_sample.shape[-1], H, W])
      return_feats.append(x_sample)
    return return_feats, return_ids


class PatchNCELoss(nn.Module):
  """CUT models/patchnce.PatchNCELoss with nce_includes_all_negatives_from_minibatch=False:
  per query patch, cross-entropy over [positive, the other patches of the same image] / nce_T."""

  def __init__(self, batch_size, nce_T=0.07, nce_includes_all_negatives_from_minibatch=False):
    super().__init__()
    self.batch_size = batch_size
    self.nce_T = nce_T
    self.all_negatives = nce_includes_all_negatives_from_minibatch
    self.cross_entropy_loss = torch.nn.CrossEntropyLoss(reduction='none')
    self.mask_dtype = torch.bool

  def forward(self, feat_q, feat_k):
    num_patches = feat_q.shape[0]
    dim = feat_q.shape[1]
    feat_k = feat_k.detach()
    # pos logit
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1))
    l_pos = l_pos.view(num_patches, 1)
    # neg logit: only the patches of the same image
    batch_dim_for_bmm = 1 if self.all_negatives else self.batch_size
    feat_q = feat_q.view(batch_dim_for_bmm, -1, dim)
    feat_k = feat_k.view(batch_dim_for_bmm, -1, dim)
    npatches = feat_q.size(1)
    l_neg_curbatch = torch.bmm(feat_q, feat_k.transpose(2, 1))
    # diagonal entries are the positives: fill with -10 (exp(-10) ~ 0)
    diagonal = torch.eye(npatches, device=feat_q.device, dtype=self.mask_dtype)[None, :, :]
    l_neg_curbatch.masked_fill_(diagonal, -10.0)
    l_neg = l_neg_curbatch.view(-1, npatches)
    out = torch.cat((l_pos, l_neg), dim=1) / self.nce_T
    return self.cross_entropy_loss(
      out, torch.zeros(out.size(0), dtype=torch.long, device=feat_q.device)
    )


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


def count_params(net: nn.Module) -> int:
  return sum(p.numel() for p in net.parameters())


# --------------------------------------------------------------------------
# The models (training parts only)
# --------------------------------------------------------------------------


class _Model:
  def _setup_common(self, device, autocast_dtype, channels_last):
    self.device = device
    self.autocast_dtype = autocast_dtype
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

  def _place(self, net: nn.Module) -> nn.Module:
    net.to(device=self.device, memory_format=self.memory_format)
    net.train()
    return net

  def _autocast(self):
    if self.autocast_dtype is None:
      return contextlib.nullcontext()
    return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


class CycleGAN(_Model):
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


class CUT(_Model):
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


# --------------------------------------------------------------------------
# Benchmark driver (torch_pix2pix.py's)
# --------------------------------------------------------------------------


def parse_args(argv=None):
  p = argparse.ArgumentParser(
    description=__doc__.split('\n\n')[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
  )
  p.add_argument('--method', choices=['cyclegan', 'cut', 'fastcut'], required=True)
  p.add_argument('--batch_size', type=int, default=1)
  p.add_argument('--image_size', type=int, default=256)
  p.add_argument('--steps', type=int, default=10, help='timed training steps')
  p.add_argument('--warmup', type=int, default=3, help='untimed training steps first')
  p.add_argument(
    '--threads',
    type=int,
    default=None,
    help="torch.set_num_threads (default: leave torch's default)",
  )
  p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
  p.add_argument(
    '--precision',
    choices=['float32', 'bfloat16'],
    default='float32',
    help='bfloat16 = torch.autocast (cuda only); params/optimizer stay float32',
  )
  p.add_argument(
    '--channels_last', action='store_true', help='NHWC memory format for nets and inputs'
  )
  p.add_argument(
    '--no_antialias',
    action='store_true',
    help='cut/fastcut: stride-2 convs instead of conv + blur Downsample, in G and D (official flag)',
  )
  p.add_argument(
    '--no_antialias_up',
    action='store_true',
    help='cut/fastcut: 3x3 transposed convs instead of Upsample + conv in G (official flag)',
  )
  p.add_argument(
    '--nce_layers',
    default=None,
    help='cut/fastcut: indices of G.model whose outputs PatchNCE compares '
    '(default: 0,4,8,12,16; 0,4,7,10,14 with --jax_layout)',
  )
  p.add_argument(
    '--jax_layout',
    action='store_true',
    help='not official: the networks as shopstyle_jax builds them (4x4 transposed convs, '
    'no conv bias before instance norm; cut: --no_antialias --no_antialias_up and '
    'nce_layers 0,4,7,10,14)',
  )
  p.add_argument('--stylize_batch_size', type=int, default=4)
  p.add_argument(
    '--stylize_steps', type=int, default=None, help='timed G forwards (default: --steps)'
  )
  p.add_argument(
    '--stylize_warmup', type=int, default=None, help='untimed G forwards (default: --warmup)'
  )
  p.add_argument(
    '--no_tf32',
    action='store_true',
    help='cuda: disable TF32 for convs/matmuls (torch enables it for cuDNN convs by default)',
  )
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args(argv)
  if args.image_size % 4 != 0 or args.image_size < 32:
    # Two downsamplings in G; the 70x70 PatchGAN needs at least 32 px.
    p.error('--image_size must be a multiple of 4 and >= 32')
  if args.steps < 1 or args.warmup < 0:
    p.error('--steps must be >= 1 and --warmup >= 0')
  if args.device == 'cuda' and not torch.cuda.is_available():
    p.error('--device cuda requested but torch.cuda.is_available() is False')
  if args.precision == 'bfloat16' and args.device != 'cuda':
    p.error('--precision bfloat16 is only supported with --device cuda')
  if args.method == 'cyclegan' and (args.no_antialias or args.no_antialias_up or args.nce_layers):
    p.error('--no_antialias, --no_antialias_up and --nce_layers are cut/fastcut options')
  if args.jax_layout and args.method != 'cyclegan':
    args.no_antialias = args.no_antialias_up = True
  if args.nce_layers is None:
    args.nce_layers = '0,4,7,10,14' if args.jax_layout else '0,4,8,12,16'
  args.nce_layers = [int(i) for i in args.nce_layers.split(',')]
  if args.stylize_steps is None:
    args.stylize_steps = args.steps
  if args.stylize_warmup is None:
    args.stylize_warmup = args.warmup
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.threads is not None:
    torch.set_num_threads(args.threads)
  device = torch.device(args.device)
  if device.type == 'cuda':
    tf32 = not args.no_tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
  autocast_dtype = torch.bfloat16 if args.precision == 'bfloat16' else None
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

  # torch for the weights, numpy for CUT's patch ids and flips, random for the ImagePool.
  torch.manual_seed(args.seed)
  np.random.seed(args.seed)
  random.seed(args.seed)

  # Synthetic, seeded (photo, style image) batches in [-1, 1], unpaired; generated
  # once, outside the timing.
  gen = torch.Generator().manual_seed(args.seed)
  shape = (args.batch_size, 3, args.image_size, args.image_size)
  real_A = (
    (torch.rand(shape, generator=gen) * 2 - 1).to(device).contiguous(memory_format=memory_format)
  )
  real_B = (
    (torch.rand(shape, generator=gen) * 2 - 1).to(device).contiguous(memory_format=memory_format)
  )

  common = dict(autocast_dtype=autocast_dtype, channels_last=args.channels_last)
  if args.method == 'cyclegan':
    model = CycleGAN(device, jax_layout=args.jax_layout, **common)
  else:
    model = CUT(
      device,
      mode=args.method,
      batch_size=args.batch_size,
      nce_layers=args.nce_layers,
      no_antialias=args.no_antialias,
      no_antialias_up=args.no_antialias_up,
      jax_layout=args.jax_layout,
      **common,
    )
    # Official train.py: on the first batch, before the first optimize_parameters
    # (untimed here: it only creates netF's MLPs and optimizer).
    model.data_dependent_initialize(real_A, real_B)
  model.set_input(real_A, real_B)
  log(
    f'torch {torch.__version__} on {device_name(device)}, threads={torch.get_num_threads()}, '
    f'{args.method} params: ' + ', '.join(f'{k}={v:,}' for k, v in model.params.items())
  )

  # ---- training step ----
  times, cpu_times = [], []
  for i in range(args.warmup + args.steps):
    synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    model.optimize_parameters()
    synchronize(device)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    tag = 'warmup' if i < args.warmup else 'step'
    if i >= args.warmup:
      times.append(dt)
      cpu_times.append(dc)
    log(f'{tag} {i + 1}/{args.warmup + args.steps}: {dt:.4f} s (cpu {dc:.2f} s)')
  losses = model.losses()
  if not all(np.isfinite(v) for v in losses.values()):
    log(f'WARNING: non-finite loss: {losses}')
  train_median = statistics.median(times)

  # ---- inference (stylize) forward of the photo -> style G (G_A for CycleGAN) ----
  # Instance norm without running statistics: eval mode computes the same thing.
  netG = model.stylize_net
  netG.eval()
  s_shape = (args.stylize_batch_size, 3, args.image_size, args.image_size)
  s_input = (
    (torch.rand(s_shape, generator=gen) * 2 - 1).to(device).contiguous(memory_format=memory_format)
  )
  s_times, s_cpu_times = [], []
  with torch.inference_mode():
    for i in range(args.stylize_warmup + args.stylize_steps):
      synchronize(device)
      t0, c0 = time.perf_counter(), time.process_time()
      with model._autocast():
        out = netG(s_input)
      synchronize(device)
      dt, dc = time.perf_counter() - t0, time.process_time() - c0
      if i >= args.stylize_warmup:
        s_times.append(dt)
        s_cpu_times.append(dc)
      log(
        f'stylize {i + 1}/{args.stylize_warmup + args.stylize_steps}: {dt:.4f} s (cpu {dc:.2f} s)'
      )
  assert out.shape == s_shape, out.shape
  stylize_median = statistics.median(s_times)

  p = model.params
  if args.method == 'cyclegan':
    generator_params, discriminator_params, mlp_params = p['G_A'], p['D_A'], None
  else:
    generator_params, discriminator_params, mlp_params = p['G'], p['D'], p['F']
  result = {
    'framework': 'pytorch',
    'method': args.method,
    'torch_version': torch.__version__,
    'device': device_name(device),
    'threads': torch.get_num_threads(),
    'batch_size': args.batch_size,
    'image_size': args.image_size,
    'precision': args.precision,
    'train_step_seconds': train_median,
    'train_step_seconds_all': times,
    'train_images_per_second': args.batch_size / train_median,
    'stylize_batch_size': args.stylize_batch_size,
    'stylize_seconds': stylize_median,
    'stylize_images_per_second': args.stylize_batch_size / stylize_median,
    # One network of each kind (CycleGAN has two of each, same counts).
    'generator_params': generator_params,
    'discriminator_params': discriminator_params,
    'mlp_params': mlp_params,
    'network_params': p,
    'total_params': sum(p.values()),
    # extra context
    'steps': args.steps,
    'warmup': args.warmup,
    'stylize_seconds_all': s_times,
    'train_step_cpu_seconds_all': cpu_times,
    'train_step_cpu_utilization': statistics.median(c / w for c, w in zip(cpu_times, times)),
    'stylize_cpu_utilization': statistics.median(c / w for c, w in zip(s_cpu_times, s_times)),
    'channels_last': args.channels_last,
    'jax_layout': args.jax_layout,
    'tf32': (torch.backends.cudnn.allow_tf32 if device.type == 'cuda' else None),
    'seed': args.seed,
    'cpu_count': os.cpu_count(),
  }
  if args.method != 'cyclegan':
    result.update(
      no_antialias=args.no_antialias,
      no_antialias_up=args.no_antialias_up,
      nce_layers=args.nce_layers,
      nce_idt=model.nce_idt,
      lambda_NCE=model.lambda_NCE,
      flip_equivariance=model.flip_equivariance,
      num_patches=model.num_patches,
    )
  result.update(losses)
  print(json.dumps(result), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
