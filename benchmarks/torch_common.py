"""The harness shared by the PyTorch reference benchmarks.

torch_pix2pix.py and torch_unpaired.py both use it: the device name, CUDA
synchronisation and stderr logging; the command-line options they share (and
their checks); the torch set-up (threads, TF32, autocast dtype, memory format);
the seeded synthetic input batches; the timed loops over training steps and
over the generator's inference forward; and, for the unpaired models, the base
class that applies the benchmark options (device, channels_last, autocast) to
the networks. None of it restates official code. A benchmark tool only; torch is
not a dependency of ``shopstyle_jax``.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn


def device_name(device: torch.device) -> str:
  if device.type == 'cuda':
    return torch.cuda.get_device_name(device)
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
  if device.type == 'cuda':
    torch.cuda.synchronize(device)


def log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Command line: the options both scripts share
# --------------------------------------------------------------------------


def add_run_options(p) -> None:
  """--batch_size ... --channels_last (in this order in --help)."""
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


def add_stylize_options(p) -> None:
  """--stylize_batch_size ... --seed (in this order in --help)."""
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


def check_run_args(p, args) -> None:
  """The checks of add_run_options' values (p.error on a bad one)."""
  if args.steps < 1 or args.warmup < 0:
    p.error('--steps must be >= 1 and --warmup >= 0')
  if args.device == 'cuda' and not torch.cuda.is_available():
    p.error('--device cuda requested but torch.cuda.is_available() is False')
  if args.precision == 'bfloat16' and args.device != 'cuda':
    p.error('--precision bfloat16 is only supported with --device cuda')


def set_stylize_defaults(args) -> None:
  if args.stylize_steps is None:
    args.stylize_steps = args.steps
  if args.stylize_warmup is None:
    args.stylize_warmup = args.warmup


# --------------------------------------------------------------------------
# Set-up, inputs, timing
# --------------------------------------------------------------------------


def setup_torch(args):
  """Threads and TF32 from args; returns (device, autocast_dtype, memory_format)."""
  if args.threads is not None:
    torch.set_num_threads(args.threads)
  device = torch.device(args.device)
  if device.type == 'cuda':
    tf32 = not args.no_tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
  autocast_dtype = torch.bfloat16 if args.precision == 'bfloat16' else None
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  return device, autocast_dtype, memory_format


def random_batch(gen, shape, device, memory_format):
  """A seeded synthetic batch in [-1, 1] (drawn from `gen` on the CPU), on `device`."""
  return (
    (torch.rand(shape, generator=gen) * 2 - 1).to(device).contiguous(memory_format=memory_format)
  )


def time_train_steps(step, device, warmup, steps):
  """Runs step() warmup + steps times; returns the timed steps' (wall, cpu) seconds.

  Process CPU time is recorded too: on an uncontended CPU run,
  cpu/wall is close to the thread count; much lower means other load.
  """
  times, cpu_times = [], []
  for i in range(warmup + steps):
    synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    synchronize(device)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    tag = 'warmup' if i < warmup else 'step'
    if i >= warmup:
      times.append(dt)
      cpu_times.append(dc)
    log(f'{tag} {i + 1}/{warmup + steps}: {dt:.4f} s (cpu {dc:.2f} s)')
  return times, cpu_times


def time_stylize(net, s_input, autocast, device, warmup, steps):
  """Times net(s_input) under torch.inference_mode and autocast() (the caller
  sets eval mode); returns (the last output, wall seconds, cpu seconds)."""
  s_times, s_cpu_times = [], []
  with torch.inference_mode():
    for i in range(warmup + steps):
      synchronize(device)
      t0, c0 = time.perf_counter(), time.process_time()
      with autocast():
        out = net(s_input)
      synchronize(device)
      dt, dc = time.perf_counter() - t0, time.process_time() - c0
      if i >= warmup:
        s_times.append(dt)
        s_cpu_times.append(dc)
      log(f'stylize {i + 1}/{warmup + steps}: {dt:.4f} s (cpu {dc:.2f} s)')
  return out, s_times, s_cpu_times


def cpu_utilization(cpu_times, times) -> float:
  """Median process-CPU-time / wall-time per call."""
  return statistics.median(c / w for c, w in zip(cpu_times, times))


# --------------------------------------------------------------------------
# The unpaired models' shared base (torch_cyclegan.py, torch_cut.py)
# --------------------------------------------------------------------------


def count_params(net: nn.Module) -> int:
  return sum(p.numel() for p in net.parameters())


class BenchModel:
  """Applies the benchmark options to a model's networks: device, memory format
  (channels_last), train mode and the optional autocast dtype."""

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


def timing_record(args, device: torch.device, times, s_times) -> dict:
  """The fields every PyTorch benchmark record shares: the machine, the run's
  shape, and the medians of the timed train steps and stylizer calls."""
  train_median, stylize_median = statistics.median(times), statistics.median(s_times)
  return {
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
  }
