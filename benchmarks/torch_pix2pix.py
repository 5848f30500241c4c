#!/usr/bin/env python3
"""PyTorch reference benchmark: the official pix2pix train step.

A standalone re-statement of the networks and the training step of the
official PyTorch pix2pix code (junyanz/pytorch-CycleGAN-and-pix2pix,
``models/networks.py`` and ``models/pix2pix_model.py``) with the paper's
defaults:

* generator ``unet_256``: ``UnetGenerator(num_downs=8, ngf=64)``,
  BatchNorm (affine, no conv bias), ``use_dropout=True``;
* discriminator ``basic``: 70x70 PatchGAN, ``NLayerDiscriminator(n_layers=3,
  ndf=64)``, BatchNorm, conditioned on (A, B) -> 6 input channels;
* ``init_weights('normal', gain=0.02)``;
* ``GANLoss('vanilla')`` (``BCEWithLogitsLoss`` against 1/0 label maps) plus
  ``100 * L1``;
* Adam(lr=2e-4, betas=(0.5, 0.999)) for both networks;
* one step == ``Pix2PixModel.optimize_parameters``.

The in-place ``LeakyReLU``/``ReLU`` of the official blocks are kept on
purpose: the first op of every inner ``UnetSkipConnectionBlock`` is an
in-place LeakyReLU, so the tensor that the skip connection concatenates is
the *activated* one. Changing that changes the network.

This is a benchmark tool only; it is not imported by ``shopstyle_jax`` and
torch is not a dependency of the package. Run it from its own virtualenv
(see benchmarks/README.md). The last line printed on stdout is one JSON
object with the results; progress goes to stderr. The timing harness and the
options shared with torch_unpaired.py are in torch_common.py.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys

import torch
import torch.nn as nn
from torch.nn import init
from torch_common import add_run_options
from torch_common import add_stylize_options
from torch_common import check_run_args
from torch_common import cpu_utilization
from torch_common import device_name
from torch_common import log
from torch_common import random_batch
from torch_common import set_stylize_defaults
from torch_common import setup_torch
from torch_common import time_stylize
from torch_common import time_train_steps
from torch_common import timing_record

# --------------------------------------------------------------------------
# Networks (official models/networks.py, pix2pix defaults)
# --------------------------------------------------------------------------


def get_norm_layer(norm_type: str = 'batch'):
  if norm_type == 'batch':
    return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
  if norm_type == 'instance':
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
  raise NotImplementedError(f'normalization layer [{norm_type}] is not found')


def _uses_bias(norm_layer) -> bool:
  # Official rule: convs followed by BatchNorm have no bias.
  if isinstance(norm_layer, functools.partial):
    return norm_layer.func == nn.InstanceNorm2d
  return norm_layer == nn.InstanceNorm2d


def init_weights(net: nn.Module, init_type: str = 'normal', init_gain: float = 0.02) -> None:
  def init_func(m):
    classname = m.__class__.__name__
    if hasattr(m, 'weight') and (classname.find('Conv') != -1 or classname.find('Linear') != -1):
      if init_type != 'normal':
        raise NotImplementedError(init_type)
      init.normal_(m.weight.data, 0.0, init_gain)
      if hasattr(m, 'bias') and m.bias is not None:
        init.constant_(m.bias.data, 0.0)
    elif classname.find('BatchNorm2d') != -1:
      init.normal_(m.weight.data, 1.0, init_gain)
      init.constant_(m.bias.data, 0.0)

  net.apply(init_func)


class UnetSkipConnectionBlock(nn.Module):
  """X -------------------identity---------------------- X
  |-- downsampling -- |submodule| -- upsampling --|
  """

  def __init__(
    self,
    outer_nc,
    inner_nc,
    input_nc=None,
    submodule=None,
    outermost=False,
    innermost=False,
    norm_layer=nn.BatchNorm2d,
    use_dropout=False,
  ):
    super().__init__()
    self.outermost = outermost
    use_bias = _uses_bias(norm_layer)
    if input_nc is None:
      input_nc = outer_nc
    downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
    downrelu = nn.LeakyReLU(0.2, True)  # in place, as in the official code
    downnorm = norm_layer(inner_nc)
    uprelu = nn.ReLU(True)  # in place, as in the official code
    upnorm = norm_layer(outer_nc)

    if outermost:
      upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
      down = [downconv]
      up = [uprelu, upconv, nn.Tanh()]
      model = down + [submodule] + up
    elif innermost:
      upconv = nn.ConvTranspose2d(
        inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
      )
      down = [downrelu, downconv]
      up = [uprelu, upconv, upnorm]
      model = down + up
    else:
      upconv = nn.ConvTranspose2d(
        inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
      )
      down = [downrelu, downconv, downnorm]
      up = [uprelu, upconv, upnorm]
      if use_dropout:
        model = down + [submodule] + up + [nn.Dropout(0.5)]
      else:
        model = down + [submodule] + up

    self.model = nn.Sequential(*model)

  def forward(self, x):
    if self.outermost:
      return self.model(x)
    # self.model starts with an in-place LeakyReLU, so `x` below is the
    # activated tensor by the time torch.cat reads it (official behaviour).
    return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
  def __init__(
    self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False
  ):
    super().__init__()
    unet_block = UnetSkipConnectionBlock(
      ngf * 8, ngf * 8, input_nc=None, submodule=None, norm_layer=norm_layer, innermost=True
    )
    for _ in range(num_downs - 5):
      unet_block = UnetSkipConnectionBlock(
        ngf * 8,
        ngf * 8,
        input_nc=None,
        submodule=unet_block,
        norm_layer=norm_layer,
        use_dropout=use_dropout,
      )
    unet_block = UnetSkipConnectionBlock(
      ngf * 4, ngf * 8, input_nc=None, submodule=unet_block, norm_layer=norm_layer
    )
    unet_block = UnetSkipConnectionBlock(
      ngf * 2, ngf * 4, input_nc=None, submodule=unet_block, norm_layer=norm_layer
    )
    unet_block = UnetSkipConnectionBlock(
      ngf, ngf * 2, input_nc=None, submodule=unet_block, norm_layer=norm_layer
    )
    self.model = UnetSkipConnectionBlock(
      output_nc, ngf, input_nc=input_nc, submodule=unet_block, outermost=True, norm_layer=norm_layer
    )

  def forward(self, input):
    return self.model(input)


class NLayerDiscriminator(nn.Module):
  """PatchGAN; n_layers=3 gives the 70x70 receptive field."""

  def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d):
    super().__init__()
    use_bias = _uses_bias(norm_layer)
    kw = 4
    padw = 1
    sequence = [
      nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
      nn.LeakyReLU(0.2, True),
    ]
    nf_mult = 1
    for n in range(1, n_layers):
      nf_mult_prev = nf_mult
      nf_mult = min(2**n, 8)
      sequence += [
        nn.Conv2d(
          ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=use_bias
        ),
        norm_layer(ndf * nf_mult),
        nn.LeakyReLU(0.2, True),
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


class GANLoss(nn.Module):
  """Official GANLoss, gan_mode='vanilla' (logits + BCEWithLogitsLoss)."""

  def __init__(self, gan_mode='vanilla', target_real_label=1.0, target_fake_label=0.0):
    super().__init__()
    self.register_buffer('real_label', torch.tensor(target_real_label))
    self.register_buffer('fake_label', torch.tensor(target_fake_label))
    if gan_mode == 'vanilla':
      self.loss = nn.BCEWithLogitsLoss()
    elif gan_mode == 'lsgan':
      self.loss = nn.MSELoss()
    else:
      raise NotImplementedError(f'gan mode {gan_mode} not implemented')

  def get_target_tensor(self, prediction, target_is_real):
    target_tensor = self.real_label if target_is_real else self.fake_label
    return target_tensor.expand_as(prediction)

  def __call__(self, prediction, target_is_real):
    return self.loss(prediction, self.get_target_tensor(prediction, target_is_real))


def set_requires_grad(nets, requires_grad=False):
  if not isinstance(nets, (list, tuple)):
    nets = [nets]
  for net in nets:
    if net is not None:
      for param in net.parameters():
        param.requires_grad = requires_grad


# --------------------------------------------------------------------------
# The model: Pix2PixModel (training parts only)
# --------------------------------------------------------------------------


class Pix2Pix:
  def __init__(
    self,
    device,
    *,
    input_nc=3,
    output_nc=3,
    ngf=64,
    ndf=64,
    n_layers_D=3,
    lr=2e-4,
    beta1=0.5,
    lambda_L1=100.0,
    autocast_dtype=None,
    channels_last=False,
    compile_nets=False,
  ):
    norm_layer = get_norm_layer('batch')
    self.netG = UnetGenerator(input_nc, output_nc, 8, ngf, norm_layer=norm_layer, use_dropout=True)
    self.netD = NLayerDiscriminator(
      input_nc + output_nc, ndf, n_layers=n_layers_D, norm_layer=norm_layer
    )
    init_weights(self.netG, 'normal', 0.02)
    init_weights(self.netD, 'normal', 0.02)
    self.generator_params = sum(p.numel() for p in self.netG.parameters())
    self.discriminator_params = sum(p.numel() for p in self.netD.parameters())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.netG.to(device=device, memory_format=memory_format)
    self.netD.to(device=device, memory_format=memory_format)
    self.netG.train()
    self.netD.train()

    self.criterionGAN = GANLoss('vanilla').to(device)
    self.criterionL1 = nn.L1Loss()
    self.lambda_L1 = lambda_L1
    self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=lr, betas=(beta1, 0.999))
    self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(beta1, 0.999))

    # Callables used in the step (optionally compiled; parameters are shared).
    self.G = torch.compile(self.netG) if compile_nets else self.netG
    self.D = torch.compile(self.netD) if compile_nets else self.netD

    self.device = device
    self.autocast_dtype = autocast_dtype

  def _autocast(self):
    if self.autocast_dtype is None:
      return contextlib.nullcontext()
    return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

  def set_input(self, real_A, real_B):
    self.real_A = real_A
    self.real_B = real_B

  def forward(self):
    with self._autocast():
      self.fake_B = self.G(self.real_A)

  def backward_D(self):
    with self._autocast():
      # Fake; stop backprop to the generator by detaching fake_B
      fake_AB = torch.cat((self.real_A, self.fake_B), 1)
      pred_fake = self.D(fake_AB.detach())
      self.loss_D_fake = self.criterionGAN(pred_fake, False)
      # Real
      real_AB = torch.cat((self.real_A, self.real_B), 1)
      pred_real = self.D(real_AB)
      self.loss_D_real = self.criterionGAN(pred_real, True)
      self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
    self.loss_D.backward()

  def backward_G(self):
    with self._autocast():
      fake_AB = torch.cat((self.real_A, self.fake_B), 1)
      pred_fake = self.D(fake_AB)
      self.loss_G_GAN = self.criterionGAN(pred_fake, True)
      self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.lambda_L1
      self.loss_G = self.loss_G_GAN + self.loss_G_L1
    self.loss_G.backward()

  def optimize_parameters(self):
    self.forward()  # compute fake images: G(A)
    # update D
    set_requires_grad(self.netD, True)
    self.optimizer_D.zero_grad()
    self.backward_D()
    self.optimizer_D.step()
    # update G
    set_requires_grad(self.netD, False)  # D needs no gradients when optimizing G
    self.optimizer_G.zero_grad()
    self.backward_G()
    self.optimizer_G.step()


# --------------------------------------------------------------------------
# Benchmark driver (harness: torch_common.py)
# --------------------------------------------------------------------------


def parse_args(argv=None):
  p = argparse.ArgumentParser(
    description=__doc__.split('\n\n')[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
  )
  add_run_options(p)
  p.add_argument(
    '--compile', action='store_true', help='torch.compile both nets (the official code does not)'
  )
  add_stylize_options(p)
  args = p.parse_args(argv)
  if args.image_size != 256:
    # unet_256 downsamples 8 times; the official code needs 256 (or a multiple).
    if args.image_size % 256 != 0:
      p.error('--image_size must be a multiple of 256 for unet_256')
  check_run_args(p, args)
  set_stylize_defaults(args)
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  device, autocast_dtype, memory_format = setup_torch(args)

  torch.manual_seed(args.seed)
  model = Pix2Pix(
    device,
    autocast_dtype=autocast_dtype,
    channels_last=args.channels_last,
    compile_nets=args.compile,
  )
  log(
    f'torch {torch.__version__} on {device_name(device)}, threads={torch.get_num_threads()}, '
    f'G params={model.generator_params:,}, D params={model.discriminator_params:,}'
  )

  # Synthetic, seeded (photo, image) pair in [-1, 1]; generated once, outside the timing.
  gen = torch.Generator().manual_seed(args.seed)
  shape = (args.batch_size, 3, args.image_size, args.image_size)
  real_A = random_batch(gen, shape, device, memory_format)
  real_B = random_batch(gen, shape, device, memory_format)
  model.set_input(real_A, real_B)

  # ---- training step ----
  times, cpu_times = time_train_steps(model.optimize_parameters, device, args.warmup, args.steps)
  loss_D = float(model.loss_D.detach())
  loss_G = float(model.loss_G.detach())
  if not (torch.isfinite(torch.tensor(loss_D)) and torch.isfinite(torch.tensor(loss_G))):
    log('WARNING: non-finite loss')

  # ---- inference (stylize) forward of G: eval mode, inference_mode ----
  model.netG.eval()
  s_shape = (args.stylize_batch_size, 3, args.image_size, args.image_size)
  s_input = random_batch(gen, s_shape, device, memory_format)
  out, s_times, s_cpu_times = time_stylize(
    model.G, s_input, model._autocast, device, args.stylize_warmup, args.stylize_steps
  )
  assert out.shape == s_shape, out.shape

  result = {
    'framework': 'pytorch',
    **timing_record(args, device, times, s_times),
    'generator_params': model.generator_params,
    'discriminator_params': model.discriminator_params,
    # extra context
    'steps': args.steps,
    'warmup': args.warmup,
    'stylize_seconds_all': s_times,
    'train_step_cpu_seconds_all': cpu_times,
    'train_step_cpu_utilization': cpu_utilization(cpu_times, times),
    'stylize_cpu_utilization': cpu_utilization(s_cpu_times, s_times),
    'channels_last': args.channels_last,
    'compile': args.compile,
    'tf32': (torch.backends.cudnn.allow_tf32 if device.type == 'cuda' else None),
    'seed': args.seed,
    'loss_D_last': loss_D,
    'loss_G_last': loss_G,
    'cpu_count': os.cpu_count(),
  }
  print(json.dumps(result), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
