"""The ResNet generator and PatchGAN of the official unpaired PyTorch code.

Restates, from junyanz/pytorch-CycleGAN-and-pix2pix and
taesungp/contrastive-unpaired-translation ``models/networks.py`` (CUT's version
where it differs): ``init_weights`` for 'normal' and 'xavier', ``get_filter``,
``get_pad_layer``, the anti-aliased ``Downsample``/``Upsample``, ``ResnetBlock``,
``ResnetGenerator`` (resnet_{n}blocks) and CUT's ``NLayerDiscriminator``, plus
the not-official ``--jax_layout`` variants (4x4 transposed convs, no conv bias
before the norms). Used by torch_cyclegan.py, torch_cut.py and
torch_patchnce.py; a benchmark tool only, torch is not a dependency of
``shopstyle_jax``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init
from torch_pix2pix import init_weights

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
