"""Test set-up: 8 simulated CPU devices, one compilation cache and one tiny
catalogue per session (shared with the subprocesses the `slow` tests start)."""

import glob
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time

# Must precede the first `import jax` anywhere in the test session. The suite is
# compile-bound (tiny networks, a few steps each): LLVM's cheaper optimisation
# levels and XLA:CPU's older elemental fusion emitters compile a train step about
# 5x faster (4.7 s -> 1.0 s for test_train_step's); test programs run in
# milliseconds either way.
COMPILE_FAST = (
  '--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'
  ' --xla_cpu_use_fusion_emitters=false'
)


def xla_flags(devices: int = 1) -> str:
  """XLA_FLAGS for a test process with this many simulated CPU devices."""
  return f'--xla_force_host_platform_device_count={devices} {COMPILE_FAST}'


os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + xla_flags(8)).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import pytest  # noqa: E402  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_collection_modifyitems(items):
  """The `slow` tests first: the long ones start early and the short ones fill the
  gaps, so the two xdist workers finish together."""
  items.sort(key=lambda item: item.get_closest_marker('slow') is None)


def load_config(name: str = 'tiny', arg: str = ''):
  """configs/<name>.py's get_config(arg), loaded by path as config_flags does."""
  spec = importlib.util.spec_from_file_location(
    f'configs.{name}', os.path.join(ROOT, 'configs', f'{name}.py')
  )
  module = importlib.util.module_from_spec(spec)
  if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _run_root(tmp_path_factory):
  """This test run's temporary folder, shared by its pytest-xdist workers."""
  root = tmp_path_factory.getbasetemp()
  return root.parent if os.environ.get('PYTEST_XDIST_WORKER') else root


def _once_per_run(tmp_path_factory, name: str, build) -> str:
  """<run root>/<name>, filled by `build(path)` once per test run: the first worker to
  need it builds it while the others wait on a file lock, then all share it."""
  import filelock  # pylint: disable=g-import-not-at-top

  path = _run_root(tmp_path_factory) / name
  with filelock.FileLock(f'{path}.lock'):
    done = path.parent / f'{name}.done'
    if not done.exists():
      shutil.rmtree(path, ignore_errors=True)  # What a failed build left.
      build(str(path))
      done.touch()
  return str(path)


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """One persistent compilation cache for the session and its subprocesses."""
  path = os.environ.get('JAX_COMPILATION_CACHE_DIR')
  if not path:
    # Shared by pytest-xdist workers (JAX writes cache entries atomically).
    path = str(_run_root(tmp_path_factory) / 'jax_cache')
    os.makedirs(path, exist_ok=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = path
  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top

  runtime.enable_compilation_cache()
  return path


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """A TFDS data dir holding the tiny synthetic catalogue, built once per run."""

  def build(path):
    from shopstyle_jax.data import pipeline  # pylint: disable=g-import-not-at-top

    config = load_config('tiny')
    config.data.data_dir = path
    pipeline.prepare(config)

  return _once_per_run(tmp_path_factory, 'tfds', build)


@pytest.fixture
def tiny_config(data_dir):
  config = load_config('tiny')
  config.data.data_dir = data_dir
  return config


def main_command(workdir, data_dir, *overrides, config: str = 'configs/tiny.py') -> list[str]:
  """The `python main.py` command line of every test that starts one: `config`
  (relative to the repository), the workdir, the data dir, a constant learning rate
  (a step program that does not depend on the run's length, so that the runs share
  one compiled step through the compilation cache), then `overrides`
  (`--config.KEY=VALUE` or any other flag)."""
  return [
    sys.executable,
    os.path.join(ROOT, 'main.py'),
    f'--config={os.path.join(ROOT, config)}',
    f'--workdir={workdir}',
    f'--config.data.data_dir={data_dir}',
    '--config.optimizer.decay_start_fraction=1.0',
    *overrides,
  ]


def run_main(
  workdir, data_dir, *overrides, config='configs/tiny.py', env=None, timeout=600, check=True
):
  """Runs `main_command(...)` in a real subprocess; returns the CompletedProcess."""
  full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'XLA_FLAGS': xla_flags(1), **(env or {})}
  proc = subprocess.run(
    main_command(workdir, data_dir, *overrides, config=config),
    cwd=ROOT,
    env=full_env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  if check and proc.returncode != 0:
    raise AssertionError(f'main.py failed ({proc.returncode}):\n{proc.stderr[-5000:]}')
  return proc


def train_in_process(config, workdir):
  """`train.train_and_evaluate` in this process, with the test process's SIGINT and
  SIGTERM handlers put back afterwards (training installs its own)."""
  from shopstyle_jax import train  # pylint: disable=g-import-not-at-top

  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    return train.train_and_evaluate(config, str(workdir))
  finally:
    for s, handler in handlers.items():
      signal.signal(s, handler)


# Overrides for a run that only a signal or a kill ends, logging every step.
LONG = (
  '--config.num_train_steps=100000',
  '--config.checkpoint_every_steps=100000',
  '--config.eval_every_steps=100000',
  '--config.log_every_steps=1',
)


def wait_for(log_path, pattern, *procs, timeout=180):
  """Waits until `pattern` appears in the log; fails if any of `procs` exits first."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    with open(log_path) as f:
      if re.search(pattern, f.read()):
        return
    for proc in procs:
      if proc.poll() is not None:
        raise AssertionError(
          f'exited {proc.returncode} before {pattern!r}:\n' + open(log_path).read()[-3000:]
        )
    time.sleep(0.05)
  raise AssertionError(f'timed out waiting for {pattern!r}')


def trained_config(data_dir):
  """conftest.trained_workdir's config: configs/tiny.py (4 steps) at a constant learning
  rate, so that a run stopped at step 2 and resumed must equal it (pix2pix's decay
  depends on the run's length). Tests that train it again compile nothing new."""
  config = load_config('tiny')
  config.data.data_dir = data_dir
  config.optimizer.decay_start_fraction = 1.0
  return config


@pytest.fixture(scope='session')
def trained_workdir(tmp_path_factory, data_dir):
  """A workdir trained in process with trained_config, once per run (shared, read-only)."""
  return _once_per_run(
    tmp_path_factory, 'trained', lambda path: train_in_process(trained_config(data_dir), path)
  )


def tensorboard_tags(workdir) -> dict[str, list[int]]:
  """{tag: [steps]} from the TensorBoard event files in workdir."""
  from tensorboard.backend.event_processing import (
    event_accumulator,  # pylint: disable=g-import-not-at-top
  )

  tags = {}
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents.*')):
    acc = event_accumulator.EventAccumulator(path, size_guidance={'tensors': 0, 'images': 0})
    acc.Reload()
    for kind, read in (('tensors', acc.Tensors), ('images', acc.Images), ('scalars', acc.Scalars)):
      for tag in acc.Tags().get(kind, []):
        tags.setdefault(tag, []).extend(e.step for e in read(tag))
  return tags


def assert_pixel_rule(got, want, *, same_program: bool = False):
  """README's pixel rule: identical where the same program runs on the same backend with
  the same shapes; otherwise at most one level on at most 0.1% of the pixels.

  `got` and `want` are uint8 images or equal-length lists of them (a catalogue); the
  0.1% counts over all of them.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top

  pairs = list(zip(got, want)) if isinstance(got, (list, tuple)) else [(got, want)]
  changed = total = worst = 0
  for g, w in pairs:
    g, w = np.asarray(g), np.asarray(w)
    assert g.shape == w.shape and g.dtype == w.dtype == np.uint8, (g.shape, w.shape, g.dtype)
    if same_program:
      np.testing.assert_array_equal(g, w)
      continue
    diff = np.abs(g.astype(np.int16) - w.astype(np.int16))
    per_pixel = diff.max(axis=-1) if diff.ndim >= 3 else diff
    changed += int(np.count_nonzero(per_pixel))
    total += per_pixel.size
    worst = max(worst, int(diff.max(initial=0)))
  assert worst <= 1 and changed <= 0.001 * total, (
    f'{changed} of {total} pixels differ, by up to {worst} levels (the rule allows one '
    'level on 0.1%)'
  )


def assert_same_training(a, b, start, *, rtol: float = 1e-3):
  """Two runs of the same training on different topologies agree: the parameter
  trees `a` and `b` differ by under `rtol` of how far training moved them from
  `start` (relative L2 norms over the whole tree).

  Not an absolute tolerance: Adam divides by the gradient's running RMS, so a
  weight whose gradient is rounding noise can move by a whole learning rate on
  one CPU and not on another. A real fault (a device's share of the batch lost,
  gradients not averaged) differs by the size of the updates themselves.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  def norm(tree):
    return float(
      np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree)))
    )

  as_f64 = lambda t: jax.tree.map(lambda x: np.asarray(x, np.float64), t)
  a, b, start = as_f64(a), as_f64(b), as_f64(start)
  moved = norm(jax.tree.map(np.subtract, b, start))
  differ = norm(jax.tree.map(np.subtract, a, b))
  assert moved > 0, 'training did not move the parameters: nothing is compared'
  assert differ <= rtol * moved, (
    f'the runs differ by {differ:.3g} (L2), {differ / moved:.2%} of the {moved:.3g} '
    f'training moved the parameters (allowed {rtol:.1%})'
  )


def run_steps(step_fn, state, batches, devices, extra=None):
  """Runs a method's pure train step (`make_step(...)`'s function) over
  `batches` (host numpy global batches) data-parallel on `devices`, as
  train.py does: jitted over a mesh of them, state (and `extra`, e.g. VGG
  weights) replicated. Returns (the final state on the host, each step's
  metrics) for 1-vs-8-device comparisons."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from shopstyle_jax import parallel  # pylint: disable=g-import-not-at-top

  mesh = parallel.create_mesh(devices)
  step = parallel.jit_data_parallel(step_fn, mesh)
  replicated = parallel.replicated(mesh)
  state = jax.device_put(jax.tree.map(np.asarray, state), replicated)
  if extra is not None:
    extra = jax.device_put(extra, replicated)
  history = []
  for batch in batches:
    state, metrics = step(state, parallel.global_batch(batch, mesh), extra)
    history.append(jax.device_get(metrics))
  return jax.tree.map(np.asarray, jax.device_get(state)), history


def product_photo(seed: int, height: int = 48, width: int = 64):
  """A smooth 'product' on a light backdrop (JPEG-friendly): the tests' folder photos,
  uint8 [height, width, 3]."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  image = np.full((height, width, 3), 235, np.uint8)
  cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
  inside = ((yy - cy) / (0.3 * height)) ** 2 + ((xx - cx) / (0.3 * width)) ** 2 < 1
  image[inside] = rng.integers(20, 200, 3)
  return image
