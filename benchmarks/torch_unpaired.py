#!/usr/bin/env python3
"""PyTorch reference benchmark: the official CycleGAN and CUT/FastCUT train steps.

A standalone re-statement of the networks and the training steps of the
official PyTorch code, with the papers' defaults, beside torch_pix2pix.py
(whose JSON record it writes, and whose GANLoss, PatchGAN and helpers the
models use). This file is the command line, the timing and the JSON; the pieces
are torch_resnet.py (ResnetGenerator, CUT's PatchGAN, Downsample/Upsample),
torch_patchnce.py (PatchSampleF, PatchNCELoss), torch_cyclegan.py (CycleGANModel,
ImagePool), torch_cut.py (CUTModel) and torch_common.py (the harness):

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
import json
import os
import random
import sys

import numpy as np
import torch
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
from torch_cut import CUT
from torch_cyclegan import CycleGAN

# --------------------------------------------------------------------------
# Benchmark driver (harness: torch_common.py, as torch_pix2pix.py)
# --------------------------------------------------------------------------


def parse_args(argv=None):
  p = argparse.ArgumentParser(
    description=__doc__.split('\n\n')[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
  )
  p.add_argument('--method', choices=['cyclegan', 'cut', 'fastcut'], required=True)
  add_run_options(p)
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
  add_stylize_options(p)
  args = p.parse_args(argv)
  if args.image_size % 4 != 0 or args.image_size < 32:
    # Two downsamplings in G; the 70x70 PatchGAN needs at least 32 px.
    p.error('--image_size must be a multiple of 4 and >= 32')
  check_run_args(p, args)
  if args.method == 'cyclegan' and (args.no_antialias or args.no_antialias_up or args.nce_layers):
    p.error('--no_antialias, --no_antialias_up and --nce_layers are cut/fastcut options')
  if args.jax_layout and args.method != 'cyclegan':
    args.no_antialias = args.no_antialias_up = True
  if args.nce_layers is None:
    args.nce_layers = '0,4,7,10,14' if args.jax_layout else '0,4,8,12,16'
  args.nce_layers = [int(i) for i in args.nce_layers.split(',')]
  set_stylize_defaults(args)
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  device, autocast_dtype, memory_format = setup_torch(args)

  # torch for the weights, numpy for CUT's patch ids and flips, random for the ImagePool.
  torch.manual_seed(args.seed)
  np.random.seed(args.seed)
  random.seed(args.seed)

  # Synthetic, seeded (photo, style image) batches in [-1, 1], unpaired; generated
  # once, outside the timing.
  gen = torch.Generator().manual_seed(args.seed)
  shape = (args.batch_size, 3, args.image_size, args.image_size)
  real_A = random_batch(gen, shape, device, memory_format)
  real_B = random_batch(gen, shape, device, memory_format)

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
  times, cpu_times = time_train_steps(model.optimize_parameters, device, args.warmup, args.steps)
  losses = model.losses()
  if not all(np.isfinite(v) for v in losses.values()):
    log(f'WARNING: non-finite loss: {losses}')

  # ---- inference (stylize) forward of the photo -> style G (G_A for CycleGAN) ----
  # Instance norm without running statistics: eval mode computes the same thing.
  netG = model.stylize_net
  netG.eval()
  s_shape = (args.stylize_batch_size, 3, args.image_size, args.image_size)
  s_input = random_batch(gen, s_shape, device, memory_format)
  out, s_times, s_cpu_times = time_stylize(
    netG, s_input, model._autocast, device, args.stylize_warmup, args.stylize_steps
  )
  assert out.shape == s_shape, out.shape

  p = model.params
  if args.method == 'cyclegan':
    generator_params, discriminator_params, mlp_params = p['G_A'], p['D_A'], None
  else:
    generator_params, discriminator_params, mlp_params = p['G'], p['D'], p['F']
  result = {
    'framework': 'pytorch',
    'method': args.method,
    **timing_record(args, device, times, s_times),
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
    'train_step_cpu_utilization': cpu_utilization(cpu_times, times),
    'stylize_cpu_utilization': cpu_utilization(s_cpu_times, s_times),
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
