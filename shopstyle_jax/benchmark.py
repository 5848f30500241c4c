"""Times the real jitted train step and stylizer on synthetic batches.

  python -m shopstyle_jax.benchmark --config=configs/pix2pix.py \
      --config.loss.perceptual_weight=0 --config.batch_size=4 --steps 10

Prints progress to stderr and, as its last stdout line, one JSON object
(see README, "Benchmarks"). Imports only what the step needs (no TFDS, grain
or clu), so it runs on a bare JAX machine with ml_collections added.
"""

import json
import os
import platform
import sys
import time
from typing import Any, Optional

import jax
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from shopstyle_jax import cli
from shopstyle_jax import methods
from shopstyle_jax import parallel
from shopstyle_jax import runtime
from shopstyle_jax import state as state_lib
from shopstyle_jax.inference import stylize_fn
from shopstyle_jax.methods import common as method_common
from shopstyle_jax.models import layers

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_integer('steps', 10, 'Timed train steps (after the warm-up).')
flags.DEFINE_integer('warmup', 2, 'Untimed train steps after compiling.')
flags.DEFINE_integer('stylize_batch_size', None, 'Stylizer batch (default: config.batch_size).')
flags.DEFINE_integer('stylize_steps', None, 'Timed stylizer calls (default: --steps).')
flags.DEFINE_string('output', None, 'Also write the JSON to this file.')

# Dense peak FLOP/s per chip by device kind and precision, from the vendors'
# data sheets. float32 on NVIDIA means TF32 tensor cores (XLA's default for
# float32 convolutions and matmuls there).
PEAK_FLOPS = {
  'NVIDIA H100 80GB HBM3': {'bfloat16': 989e12, 'float32': 494e12},
  'NVIDIA H100': {'bfloat16': 989e12, 'float32': 494e12},
  'NVIDIA H200': {'bfloat16': 989e12, 'float32': 494e12},
  'NVIDIA A100-SXM4-80GB': {'bfloat16': 312e12, 'float32': 156e12},
  'NVIDIA A100-SXM4-40GB': {'bfloat16': 312e12, 'float32': 156e12},
  'TPU v4': {'bfloat16': 275e12, 'float32': 275e12},
  'TPU v5 lite': {'bfloat16': 197e12, 'float32': 197e12},
  'TPU v5': {'bfloat16': 459e12, 'float32': 459e12},
  'TPU v6 lite': {'bfloat16': 918e12, 'float32': 918e12},
}


def device_name() -> str:
  """The accelerator's kind, or the CPU's model name."""
  kind = jax.devices()[0].device_kind
  if jax.default_backend() != 'cpu':
    return kind
  try:
    with open('/proc/cpuinfo') as f:
      model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    model = platform.processor() or 'cpu'
  return f'{model} ({os.cpu_count()} cores)'


def peak_flops(precision: str) -> Optional[float]:
  kind = jax.devices()[0].device_kind
  table = PEAK_FLOPS.get(kind) or next(
    (v for k, v in PEAK_FLOPS.items() if kind.startswith(k)), None
  )
  return None if table is None else table[precision] * jax.device_count()


def _median_seconds(fn, n: int) -> tuple[float, list[float]]:
  times = []
  for _ in range(n):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return float(np.median(times)), times


def run(
  config,
  steps: int,
  warmup: int,
  stylize_batch_size: Optional[int] = None,
  stylize_steps: Optional[int] = None,
) -> dict[str, Any]:
  """Benchmarks the train step and the stylizer of `config`; returns the record."""
  dtype = layers.precision_dtype(config.precision)
  mesh = parallel.create_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  method = methods.get(config.method)
  models = method.build_models(config, dtype)
  generator = models.G
  vgg = vgg_params = None
  vgg_layers = method_common.vgg_layers(config)
  if vgg_layers:
    from shopstyle_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top

    vgg = vgg_lib.VGG19(layers=vgg_layers, dtype=dtype)  # Random weights: same cost.
    vgg_params = jax.device_put(vgg_lib.init_random_params(vgg_layers), parallel.replicated(mesh))
  state = jax.jit(
    lambda k: method.create_state(config, models, k), out_shardings=parallel.replicated(mesh)
  )(state_lib.prng_key(config.seed))
  step = parallel.jit_data_parallel(method.make_step(config, models, vgg), mesh)

  rng = np.random.default_rng(0)
  shape = (config.batch_size, config.image_size, config.image_size, 3)
  # Paired methods train on (photo, target), the others on (photo, style image).
  second = 'target' if config.method == 'paired' else 'style'
  batch = parallel.global_batch(
    {
      'photo': rng.uniform(-1, 1, shape).astype(np.float32),
      second: rng.uniform(-1, 1, shape).astype(np.float32),
    },
    mesh,
  )

  t0 = time.perf_counter()
  lowered = step.lower(state, batch, vgg_params)
  compiled = lowered.compile()
  compile_seconds = time.perf_counter() - t0
  # XLA's cost analysis of the step's HLO before backend rewrites: the model's
  # FLOPs. (After compiling for GPU, cuDNN convolutions are custom calls that
  # the analysis no longer counts.)
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get('flops', 0.0)) if cost else None

  holder = {'state': state}

  def train_once():
    holder['state'], metrics = compiled(holder['state'], batch, vgg_params)
    return metrics

  for _ in range(warmup):
    jax.block_until_ready(train_once())
  step_seconds, all_times = _median_seconds(train_once, steps)
  print(f'train step: {step_seconds * 1e3:.1f} ms median of {steps}', file=sys.stderr)

  # The stylizer: the same generator, inference mode, over local devices.
  sb = stylize_batch_size or config.batch_size
  variables = holder['state'].generator_variables()
  photos = jax.device_put(
    rng.uniform(-1, 1, (sb,) + shape[1:]).astype(np.float32),
    parallel.batch_sharded(mesh) if sb % mesh.devices.size == 0 else parallel.replicated(mesh),
  )
  t0 = time.perf_counter()
  jax.block_until_ready(stylize_fn(generator, variables, photos))
  stylize_compile = time.perf_counter() - t0
  stylize_seconds, _ = _median_seconds(
    lambda: stylize_fn(generator, variables, photos), stylize_steps or steps
  )

  peak = peak_flops(config.precision)
  return {
    'device': device_name(),
    'num_devices': jax.device_count(),
    'backend': jax.default_backend(),
    'jax_version': jax.__version__,
    'batch_size': config.batch_size,
    'image_size': config.image_size,
    'precision': config.precision,
    'method': config.method,
    'generator': config.model.generator,
    'perceptual_weight': config.loss.perceptual_weight,
    'train_step_seconds': step_seconds,
    'train_step_seconds_all': all_times,
    'train_images_per_second': config.batch_size / step_seconds,
    'compile_seconds': compile_seconds,
    'stylize_batch_size': sb,
    'stylize_seconds': stylize_seconds,
    'stylize_compile_seconds': stylize_compile,
    'stylize_images_per_second': sb / stylize_seconds,
    'flops_per_train_step': flops,
    'mfu': (flops / step_seconds / peak) if (peak and flops) else None,
  }


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  record = run(
    FLAGS.config, FLAGS.steps, FLAGS.warmup, FLAGS.stylize_batch_size, FLAGS.stylize_steps
  )
  line = json.dumps(record)
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      f.write(line + '\n')
  print(line)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=cli.parse_or_exit)  # Config mistakes: one FATAL line, exit 2.
