"""The training loop: wires data, state, step, checkpoints and metrics.

`train_and_evaluate(config, workdir)` is the whole job. It does no math of its
own: numbers come from the method's step (`methods/`), evaluation.py and the
models. `config.method` picks the method; every method's state keeps the
photo -> style generator where inference and eval look for it.
"""

import contextlib
import json
import signal
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers
from clu import periodic_actions
from etils import epath
from jax.experimental import multihost_utils

from shopstyle_jax import checkpoints
from shopstyle_jax import config_lib
from shopstyle_jax import evaluation
from shopstyle_jax import methods
from shopstyle_jax import parallel
from shopstyle_jax import runtime
from shopstyle_jax import state as state_lib
from shopstyle_jax import stopping
from shopstyle_jax import style_mix
from shopstyle_jax import workdir as workdir_lib
from shopstyle_jax import workdir_lock
from shopstyle_jax.data import pipeline
from shopstyle_jax.methods import common as method_common
from shopstyle_jax.models import layers

# What a fine-tuning run (config.init_from) takes from another run, where the
# method's state has it.
_TRANSFERRED = ('g_params', 'g_batch_stats', 'd_params', 'd_batch_stats')


class NonFiniteError(RuntimeError):
  """Training produced NaN/Inf for too many consecutive steps."""


def _vgg_setup(config, writer) -> tuple[Any, Any, Optional[str]]:
  """The frozen VGG19 and its params when a loss term reads VGG features
  (perceptual, content, style), up to the deepest layer they read."""
  vgg_layers = method_common.vgg_layers(config)
  if not vgg_layers:
    return None, None, None
  from shopstyle_jax import weights  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top

  params, description = weights.load_vgg19_params(
    config.loss.vgg_weights, vgg_layers, seed=config.seed
  )
  logging.info('VGG19 weights for the loss terms: %s', description)
  writer.write_texts(0, {'vgg19_weights': description})
  vgg = vgg_lib.VGG19(layers=vgg_layers, dtype=layers.precision_dtype(config.precision))
  return vgg, params, description


def _is_style_table(path) -> bool:
  """Whether a parameter path ends in one of the per-style tables ([S, ...])."""
  last = path[-1] if path else None
  return getattr(last, 'key', None) in layers.STYLE_TABLES


def _check_init_styles(config, source: str) -> None:
  """A multi-style run fine-tuned from another keeps its styles' rows: its styles
  must start with the source run's (a single-style source has no rows to keep)."""
  if not workdir_lib.is_workdir(source):
    return
  theirs = style_mix.config_styles(workdir_lib.load_config(source))
  ours = style_mix.config_styles(config)
  if len(theirs) > 1 and ours[: len(theirs)] != theirs:
    raise ValueError(
      f'config.init_from={config.init_from} holds the styles {theirs}; config.data.styles='
      f'{ours} must start with them, in that order (their rows are kept; styles added '
      f'after them get new rows), e.g. --config.data.styles="{theirs + ("<new style>",)}".'
    )


def _init_from(config, state: Any) -> Any:
  """Replaces the generator's and discriminator's weights with another run's
  (fine-tuning). Per-style tables grow when this run has more styles
  (`state_lib.grow_style_table`): old rows kept, new rows initialised. The
  generator starts from the source's EMA weights where it kept them."""
  source, step = checkpoints.resolve(config.init_from)
  _check_init_styles(config, source)
  keys = tuple(k for k in _TRANSFERRED if hasattr(state, k))
  # The generator starts from the weights the source's stylizer uses
  # (`state_lib.generator_variables`): its EMA when it kept one (empty when not),
  # since the figures its old styles are held to are the EMA's.
  with_ema = 'g_params' in keys
  tree, step = checkpoints.restore_subtree(source, keys + ('ema_params',) * with_ema, step)
  if with_ema:
    tree['g_params'] = tree.pop('ema_params') or tree['g_params']
  mismatches = []
  for key in keys:
    ours = jax.tree_util.tree_flatten_with_path(getattr(state, key))[0]
    theirs = dict(jax.tree_util.tree_flatten_with_path(tree[key])[0])
    for path, leaf in ours:
      other = theirs.get(path)
      if _is_style_table(path) and (
        other is None or (other.shape[1:] == leaf.shape[1:] and other.shape[0] <= leaf.shape[0])
      ):
        continue  # Grown or initialised below.
      if other is None or other.shape != leaf.shape:
        mismatches.append(
          f'{key}{jax.tree_util.keystr(path)}: ours {leaf.shape}, '
          f'theirs {None if other is None else other.shape}'
        )
    extra = set(theirs) - {path for path, _ in ours}
    if extra:
      mismatches.append(f'{key}: {len(extra)} arrays in {source} that this config lacks')
  if mismatches:
    raise ValueError(
      f'config.init_from={config.init_from}: the networks do not match this config '
      f'({len(mismatches)} differences, e.g. {"; ".join(mismatches[:3])}). Use the same '
      'config.model.* as the run you start from.'
    )

  def load(key):
    theirs = dict(jax.tree_util.tree_flatten_with_path(tree[key])[0])

    def leaf(path, ours):
      other = theirs.get(path)
      if _is_style_table(path):
        return state_lib.grow_style_table(ours, other)
      return jnp.asarray(other, ours.dtype)

    return jax.tree_util.tree_map_with_path(leaf, getattr(state, key))

  loaded = {k: load(k) for k in keys}
  state = state.replace(**loaded)
  if config.ema_decay > 0:
    # Copies: the step donates its state, and one buffer cannot be donated twice.
    state = state.replace(ema_params=jax.tree.map(jnp.copy, loaded['g_params']))
  logging.info('Initialised both networks from %s (step %d).', source, step)
  return state


class InsufficientMemoryError(MemoryError):
  """A compiled program would need more memory than is available."""


def _compile_within_memory(jitted: Any, args: tuple, what: str, advice: str) -> Any:
  """`jitted` compiled for `args`, refused before it runs when XLA's estimate of
  the memory it needs (temporaries and outputs, less the donated inputs they
  reuse) exceeds what is available (`runtime.available_memory`: the host's,
  container limits included, for CPU devices, which all share it; else each
  device's): an InsufficientMemoryError saying so, rather than the kernel's OOM
  kill with nothing logged. Every process agrees, so all stop."""
  compiled = jitted.lower(*args).compile()
  analysis = compiled.memory_analysis()
  device = jax.local_devices()[0]
  on_host = device.platform == 'cpu'
  available = runtime.available_memory(None if on_host else device)
  need = 0
  if analysis is not None:
    need = (
      analysis.temp_size_in_bytes + analysis.output_size_in_bytes - analysis.alias_size_in_bytes
    ) * (jax.local_device_count() if on_host else 1)
  short = bool(available and need > available[0])
  if jax.process_count() > 1:
    anyone = np.ravel(multihost_utils.process_allgather(np.int32(short)))
    if not short and anyone.any():
      raise InsufficientMemoryError(
        f'{what}: process(es) {", ".join(str(i) for i in np.flatnonzero(anyone))} have too '
        f'little memory for it (see their logs). {advice}'
      )
  if short:
    where = 'on the host, for all its CPU devices' if on_host else 'per device'
    raise InsufficientMemoryError(
      f"{what} needs about {runtime.size_text(need)} {where} (XLA's estimate of the "
      f"compiled program's buffers), more than the {runtime.size_text(available[0])} "
      f'available ({available[1]}). {advice}'
    )
  return compiled


def _lock_workdir(workdir: str) -> Optional[workdir_lock.WorkdirLock]:
  """Process 0 takes the workdir's lock (returned); every process learns whether
  it could, so that all stop when it could not."""
  lock, error = None, None
  if jax.process_index() == 0:
    lock = workdir_lock.WorkdirLock(workdir)
    try:
      lock.acquire()
    except workdir_lock.WorkdirInUseError as e:
      lock, error = None, e
  if jax.process_count() > 1:
    locked = multihost_utils.process_allgather(np.int32(error is None))
    if error is None and not np.all(locked):
      error = workdir_lock.WorkdirInUseError(
        f'Process 0 could not lock workdir {workdir} (see its log): another run uses it.'
      )
  if error is not None:
    raise error
  return lock


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> Any:
  """Trains (or resumes) in `workdir` until `config.num_train_steps`; returns the state."""
  config_lib.validate(config, num_devices=jax.device_count())
  config_lib.check_same_on_all_processes(config)
  runtime.enable_compilation_cache()
  workdir = str(epath.Path(workdir).resolve())
  with contextlib.ExitStack() as cleanup:  # Undone however the run ends.
    return _train(config, workdir, cleanup)


def _train(config: ml_collections.ConfigDict, workdir: str, cleanup: contextlib.ExitStack) -> Any:
  """`train_and_evaluate` in a resolved `workdir`; `cleanup` releases what it holds."""
  is_main = jax.process_index() == 0
  mesh = parallel.create_mesh()

  method = methods.get(config.method)
  models = method.build_models(config, layers.precision_dtype(config.precision))
  generator = models.G
  replicated = parallel.replicated(mesh)
  init = jax.jit(lambda rng: method.create_state(config, models, rng), out_shardings=replicated)
  abstract_state = jax.eval_shape(init, state_lib.prng_key(config.seed))
  checkpoints.check_workdir(
    workdir, checkpoints.state_bytes(abstract_state), keep=config.keep_checkpoints
  )
  lock = _lock_workdir(workdir)  # Before anything in it is changed.
  if lock is not None:
    cleanup.callback(lock.release)
  # From here a signal stops the run at the next step (a second Ctrl-C at once).
  stop = stopping.StopRequest(before_hard_exit=lock.release if lock is not None else lambda: None)
  cleanup.callback(stop.close)
  workdir_lib.check_model_shapes(config, workdir)  # Every process, before anything is written.
  if is_main:
    unfinished = checkpoints.remove_unfinished(workdir)
    if unfinished:
      logging.warning(
        'Removed %d unfinished checkpoint(s) an interrupted run left in %s: %s.',
        len(unfinished),
        checkpoints.checkpoint_dir(workdir),
        ', '.join(unfinished),
      )

  # What the run was, if it has run (before config.json is rewritten).
  saved_config = (
    workdir_lib.read_config(workdir).to_dict() if workdir_lib.is_workdir(workdir) else None
  )
  abstract_state = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract_state
  )
  manager = checkpoints.create_manager(workdir, keep=config.keep_checkpoints)
  restored = None
  if manager.latest_step() is not None:
    # Before config.json is written (a config that does not fit the checkpoints
    # never replaces the run's own) and before the data, which may take long to build.
    restored = checkpoints.restore_newest_intact(
      manager, abstract_state, retired=state_lib.RETIRED_FIELDS
    )

  # Data next: a missing dataset or folder fails before anything compiles.
  pipeline.prepare(config)
  train_iter = pipeline.create_train_iterator(config, jax.process_index(), jax.process_count())
  # Eval batches per style: {None: batches} for a single-style run.
  styles = style_mix.config_styles(config)
  eval_sets = {
    style: pipeline.create_eval_batches(
      config, jax.process_index(), jax.process_count(), style=style
    )
    for style in (styles if len(styles) > 1 else (None,))
  }

  # Only process 0 writes events and console progress; the others write nothing.
  writer = (
    metric_writers.create_default_writer(workdir) if is_main else metric_writers.MultiWriter([])
  )
  vgg, vgg_params, vgg_description = _vgg_setup(config, writer)

  if restored is not None:
    state, data_state, step = restored
    if data_state is not None:
      train_iter.set_state(data_state)
    logging.info('Resumed from the checkpoint at step %d.', step)
    changed = workdir_lib.data_source_differences(saved_config, config) if saved_config else []
    if changed:
      logging.warning(
        'Resuming the run in %s on other data than it trained on so far (%s): '
        'from step %d it trains on the new data.',
        workdir,
        '; '.join(changed),
        step,
      )
  else:
    rng = state_lib.prng_key(config.seed)
    state = _compile_within_memory(
      init,
      (rng,),
      f'Initialising the networks (config.image_size={config.image_size})',
      'Lower config.image_size, or use a machine with more memory.',
    )(rng)
    if config.init_from:
      state = jax.device_put(_init_from(config, state), replicated)
    logging.info(
      'Initialised a new run; generator has %d parameters.',
      sum(x.size for x in jax.tree.leaves(state.g_params)),
    )
  saver = checkpoints.Saver(manager)
  if is_main:
    workdir_lib.write_config(
      config,
      workdir,
      {
        'run': {
          'vgg19_weights': vgg_description,
          'jax_version': jax.__version__,
          'devices': jax.device_count(),
          'processes': jax.process_count(),
          'platform': jax.default_backend(),
        }
      },
    )
    writer.write_hparams(
      {
        k: v
        for k, v in workdir_lib.flatten(json.loads(config.to_json_best_effort())).items()
        if not isinstance(v, list)
      }
    )
  start_step = int(jax.device_get(state.step))
  if vgg_params is not None:
    vgg_params = jax.device_put(vgg_params, replicated)

  step_fn = parallel.jit_data_parallel(method.make_step(config, models, vgg), mesh)
  compiled_step = None
  ground_truth = pipeline.has_ground_truth(config)

  def run_eval(step, state):
    per_style = {}
    for style, batches in eval_sets.items():
      per_style[style] = eval_one(step, state, style, batches)
    if len(per_style) > 1 and ground_truth:
      # eval/psnr and eval/ssim: the mean over the styles (the identity style aside).
      real = [s for name, s in per_style.items() if name != style_mix.IDENTITY] or list(
        per_style.values()
      )
      writer.write_scalars(
        step, {f'eval/{k}': float(np.mean([s[k] for s in real])) for k in ('psnr', 'ssim')}
      )

  def eval_one(step, state, style, batches):
    """Evaluates one style (None: the single-style run); returns its scores."""
    t0 = time.time()
    # CycleGAN's style -> photo generator F: the grid shows F(G(photo)) too.
    back = (models.F, state.back_variables()) if hasattr(state, 'back_variables') else None
    measured = evaluation.evaluate(
      generator,
      state.generator_variables(),
      batches,
      mesh,
      grid_rows=config.eval.grid_rows,
      ground_truth=ground_truth,
      back=back,
      style=None if style is None else style_mix.style_vector(style, styles, style),
    )
    scores = measured.scores
    prefix = 'eval/' if style is None else f'eval/{style}/'
    if scores:
      writer.write_scalars(step, {f'{prefix}{k}': v for k, v in scores.items()})
    if measured.grid is not None:
      name = f'{prefix}input_target_output' if ground_truth else f'{prefix}input_output'
      name += '_reconstruction' if back else ''
      writer.write_images(step, {name: measured.grid[None]})
    if not scores:
      logging.info(
        'Eval%s at step %d (%.1fs): no ground truth (photos and style images '
        'only); see the photo | output grid.',
        '' if style is None else f' of {style}',
        step,
        time.time() - t0,
      )
    elif is_main:
      logging.info(
        'Eval%s at step %d (%.1fs): psnr %.2f ssim %.4f (identity %.2f/%.4f, blank %.2f/%.4f)',
        '' if style is None else f' of {style}',
        step,
        time.time() - t0,
        scores['psnr'],
        scores['ssim'],
        scores['identity_psnr'],
        scores['identity_ssim'],
        scores['blank_psnr'],
        scores['blank_ssim'],
      )
    return scores

  report = (
    periodic_actions.ReportProgress(
      num_train_steps=config.num_train_steps, writer=writer, every_steps=config.log_every_steps
    )
    if is_main
    else lambda step: None
  )
  history, nonfinite, pending = [], 0, None
  step, last_log, last_saved = start_step, time.time(), None

  def consume():
    """Handles the finished step's metrics (fetched one step late, so the
    device never waits for the host)."""
    nonlocal nonfinite, pending
    if pending is None:
      return
    step_done, metrics = pending
    pending = None
    metrics = jax.device_get(metrics)
    if metrics['finite'] < 1:
      nonfinite += 1
      bad = [k for k, v in metrics.items() if not np.isfinite(v)] or ['gradients']
      logging.warning(
        'Step %d: non-finite %s; D and G updates skipped (%d in a row).',
        step_done,
        ', '.join(bad),
        nonfinite,
      )
      if nonfinite >= config.max_nonfinite_steps:
        raise NonFiniteError(
          f'{nonfinite} consecutive non-finite steps, the last at step {step_done} '
          f'(non-finite: {", ".join(bad)}). The checkpoints in {workdir} hold only finite '
          'states. Lower config.optimizer.learning_rate, use config.precision=float32 or '
          'check the data; config.max_nonfinite_steps sets this limit.'
        )
    else:
      nonfinite = 0
      history.append(metrics)

  logging.info('Training from step %d to %d.', start_step, config.num_train_steps)
  try:
    while step < config.num_train_steps:
      batch = parallel.global_batch(next(train_iter), mesh)
      if compiled_step is None:  # Compiled for the first batch, and checked.
        compiled_step = _compile_within_memory(
          step_fn,
          (state, batch, vgg_params),
          f'A train step (config.image_size={config.image_size}, config.batch_size='
          f'{config.batch_size} over {jax.device_count()} device(s))',
          'Lower config.batch_size or config.image_size (or use config.precision=bfloat16, '
          'or a machine with more memory).',
        )
      state, metrics = compiled_step(state, batch, vgg_params)
      consume()
      pending, step = (step + 1, metrics), step + 1
      report(step)
      is_last = step == config.num_train_steps
      signum, (save_failed, lock_lost) = stop.agreed(saver.poll(), bool(lock and lock.lost))
      if save_failed:
        raise saver.error(step)
      if lock_lost:
        raise workdir_lock.WorkdirInUseError(
          f'Stopped at step {step} without saving: another run took over the lock of '
          f"{workdir} (see the log), and two runs would delete each other's checkpoints."
        )
      stop_now = signum is not None
      if step % config.log_every_steps == 0 or is_last or stop_now:
        consume()
        if history and is_main:
          means = {f'train/{k}': float(np.mean([h[k] for h in history])) for k in history[0]}
          means['train/steps_per_second'] = len(history) / max(time.time() - last_log, 1e-9)
          writer.write_scalars(step, means)
        history, last_log = [], time.time()
      if step % config.eval_every_steps == 0 or is_last:
        run_eval(step, state)
      if step % config.checkpoint_every_steps == 0 or is_last or stop_now:
        consume()
        if nonfinite:
          logging.warning('Not checkpointing step %d: it was skipped as non-finite.', step)
        else:
          failed = saver.save(step, state, train_iter.get_state())
          if is_last or stop_now:  # Written before exiting, or reported now.
            failed = saver.wait()
          if stop.agreed(failed)[1][0]:
            raise saver.error(step)
          last_saved = step
      if stop_now:
        break
    consume()
  finally:
    saver.close()
    writer.flush()
  logging.info(
    'Process %d of %d finished at step %d.', jax.process_index(), jax.process_count(), step
  )
  if step > start_step and last_saved != step:
    # The last steps were non-finite (fewer in a row than config.max_nonfinite_steps).
    saved = checkpoints.available_steps(workdir)
    kept = f'the latest checkpoint is step {saved[-1]}' if saved else 'there is no checkpoint'
    if last_saved is None:
      raise NonFiniteError(
        f'Training ended at step {step} without saving any step of this run (steps '
        f'{start_step + 1} to {step}): every step it would have checkpointed was '
        f'non-finite, the last {nonfinite} in a row (config.max_nonfinite_steps='
        f'{config.max_nonfinite_steps}); {kept}. Lower config.optimizer.learning_rate, use '
        'config.precision=float32 or check the data.'
      )
    logging.warning(
      'Training ended at step %d, but the last %d step(s) were non-finite and skipped: %s.',
      step,
      nonfinite,
      kept,
    )
  if stop.signum is not None:
    logging.warning(
      'Stopped at step %d by %s; %s.',
      step,
      signal.Signals(stop.signum).name,
      'checkpoint saved' if last_saved == step else 'no checkpoint at this step',
    )
    raise SystemExit(stop.exit_code(stop.signum))
  return state
