"""Times the pieces of the pix2pix train step, in JAX or in the PyTorch reference.

  python benchmarks/components.py --framework=jax --batch_size=4
  /path/to/venv-torch/bin/python benchmarks/components.py --framework=torch --batch_size=4

Pieces (pix2pix U-Net 256 + 70x70 PatchGAN, batch norm, train mode, float32):
  g_forward         G(photo)
  g_forward_backward  G(photo) and the gradient of a fixed linear loss w.r.t.
                    G's parameters (input gradient not needed)
  d_forward_backward  D(photo, image) and the gradients w.r.t. D's parameters
                    and the image (the G update needs the latter)
  d_forward         D(photo, image)

One train step costs about g_forward_backward + 3 * d_forward_backward
(D on fake and on real, then D again for G's loss) plus the two Adam updates.
Used by BENCHMARKS.md to say where the JAX step loses time on CPU. The last
stdout line is one JSON object {piece: median seconds}.
"""

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_seconds(fn, steps, warmup):
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def jax_pieces(batch, size):
  sys.path.insert(0, ROOT)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from configs import pix2pix  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.models import discriminators  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.models import generators  # pylint: disable=g-import-not-at-top

  config = pix2pix.get_config()
  g = generators.create_generator(config.model)
  d = discriminators.create_discriminator(config.model)
  k = jax.random.key(0)
  x = jax.random.uniform(k, (batch, size, size, 3), minval=-1.0, maxval=1.0)
  w = jax.random.normal(jax.random.key(1), x.shape)
  gv = jax.jit(lambda: g.init({'params': k, 'dropout': k}, x, train=False))()
  dv = jax.jit(lambda: d.init(k, x, x, train=False))()
  rngs = {'dropout': k}

  # Inputs are arguments, not closed-over constants, as in the train step.
  def g_fwd(p, x):
    y, _ = g.apply({**gv, 'params': p}, x, train=True, rngs=rngs, mutable=['batch_stats'])
    return y

  def d_fwd(p, x, image):
    y, _ = d.apply({**dv, 'params': p}, x, image, train=True, mutable=['batch_stats'])
    return y

  fns = {
    'g_forward': (jax.jit(g_fwd), (gv['params'], x)),
    'g_forward_backward': (
      jax.jit(jax.grad(lambda p, x, w: jnp.sum(g_fwd(p, x) * w))),
      (gv['params'], x, w),
    ),
    'd_forward': (jax.jit(d_fwd), (dv['params'], x, w)),
    'd_forward_backward': (
      jax.jit(jax.grad(lambda p, x, im: jnp.sum(d_fwd(p, x, im)), (0, 2))),
      (dv['params'], x, w),
    ),
  }
  return {name: (lambda f=f, a=a: jax.block_until_ready(f(*a))) for name, (f, a) in fns.items()}


def torch_pieces(batch, size, threads):
  sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
  import torch  # pylint: disable=g-import-not-at-top
  import torch_pix2pix  # pylint: disable=g-import-not-at-top

  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(0)
  model = torch_pix2pix.Pix2Pix(torch.device('cpu'))
  g, d = model.netG, model.netD
  x = torch.rand(batch, 3, size, size) * 2 - 1
  w = torch.randn_like(x)

  def g_fwd_bwd():
    g.zero_grad(set_to_none=True)
    (g(x) * w).sum().backward()

  def d_fwd_bwd():
    d.zero_grad(set_to_none=True)
    image = w.clone().requires_grad_(True)
    d(torch.cat((x, image), 1)).sum().backward()

  def no_grad(fn):
    def run():
      with torch.no_grad():
        fn()

    return run

  return {
    'g_forward': no_grad(lambda: g(x)),
    'g_forward_backward': g_fwd_bwd,
    'd_forward': no_grad(lambda: d(torch.cat((x, w), 1))),
    'd_forward_backward': d_fwd_bwd,
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--framework', required=True, choices=['jax', 'torch'])
  p.add_argument('--batch_size', type=int, default=1)
  p.add_argument('--image_size', type=int, default=256)
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--warmup', type=int, default=3)
  p.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (torch only).')
  args = p.parse_args()
  pieces = (
    jax_pieces(args.batch_size, args.image_size)
    if args.framework == 'jax'
    else torch_pieces(args.batch_size, args.image_size, args.threads)
  )
  record = {
    'framework': args.framework,
    'batch_size': args.batch_size,
    'image_size': args.image_size,
  }
  for name, fn in pieces.items():
    record[name] = median_seconds(fn, args.steps, args.warmup)
    print(f'{name}: {record[name] * 1e3:.1f} ms', file=sys.stderr, flush=True)
  print(json.dumps(record))


if __name__ == '__main__':
  main()
