"""Orbax checkpoints of the train state and the input iterator's position.

Each step folder `<workdir>/checkpoints/<step>/` holds two items: `state`
(the TrainState pytree, written by every process for its shards) and `data`
(the grain iterator state as JSON). Orbax writes into a temporary folder and
renames it when complete, so a crash mid-write never leaves a half checkpoint
that a resume would pick; the temporary folders of saves that never
completed are removed at the next start (`remove_unfinished`).

Saves run in the background (`Saver`): a failed one (a full disk) stops
training at the next step, naming the last good checkpoint, rather than one
checkpoint interval later.
"""

import contextlib
import dataclasses
import errno
import logging as std_logging  # Filters on the handlers of the standard library.
import os
import shutil
from typing import Any, Optional, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

CHECKPOINT_DIR = 'checkpoints'
# Old steps are renamed into this subfolder (atomic) before they are deleted,
# so a kill during a deletion never leaves a half-deleted step that looks
# complete. Its contents are removed before each save.
TRASH_DIR = '.deleted'
# Orbax writes step N into `N.orbax-checkpoint-tmp` (older versions add a
# timestamp) and renames it to `N` when complete.
TMP_MARKER = '.orbax-checkpoint-tmp'
# Unreadable steps a resume skipped are moved into this subfolder.
CORRUPT_DIR = '.corrupt'


class SaveError(RuntimeError):
  """A checkpoint could not be written; the message names the last good step."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


def create_manager(
  workdir: str, keep: int = 3, async_save: bool = True, create: bool = True
) -> ocp.CheckpointManager:
  """An Orbax manager for `<workdir>/checkpoints` keeping the `keep` latest steps."""
  options = ocp.CheckpointManagerOptions(
    max_to_keep=keep,
    create=create,
    enable_async_checkpointing=async_save,
    todelete_subdir=TRASH_DIR,
  )
  return ocp.CheckpointManager(
    checkpoint_dir(workdir), options=options, item_names=('state', 'data')
  )


def _empty_trash(manager: ocp.CheckpointManager) -> None:
  if jax.process_index() == 0:
    shutil.rmtree(os.path.join(str(manager.directory), TRASH_DIR), ignore_errors=True)


def _reason(error: BaseException) -> str:
  """Why a save failed, in a few words (Orbax's messages run to several lines)."""
  if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
    'No space left on device' in str(error)
  ):
    return 'no space left on the device'
  return _one_line(error)


class Saver:
  """Checkpoints written in the background, with a failed write noticed at once.

  Orbax writes asynchronously and reports a failure only when the next save
  waits for the previous one: training would go on for a whole checkpoint
  interval without a checkpoint. `poll()` looks, without waiting, each step;
  `wait()` waits (the last step, a stop). A failure becomes a `SaveError`
  naming the failed step and the last good one (`error(stopped_at)`).
  """

  def __init__(self, manager: ocp.CheckpointManager):
    self.manager = manager
    self.last_good = manager.latest_step()  # The newest complete checkpoint.
    self.pending: Optional[int] = None  # The step being written.
    self.failed: Optional[tuple[int, str]] = None  # (step, reason) of a failed save.

  def save(self, step: int, state: Any, data_state: Optional[dict] = None) -> bool:
    """Starts writing `step` once the previous save has finished; whether a save
    (the previous one, or starting this one) has failed."""
    self._collect()
    if self.failed:
      return True
    _empty_trash(self.manager)
    items = {'state': ocp.args.StandardSave(state)}
    if data_state is not None:
      items['data'] = ocp.args.JsonSave(data_state)
    try:
      self.manager.save(step, args=ocp.args.Composite(**items), force=True)
    except Exception as e:  # pylint: disable=broad-except
      self.failed = (step, _reason(e))
      return True
    self.pending = step
    return False

  def poll(self) -> bool:
    """Whether a save has failed, looking at a finished one without waiting."""
    if self.pending is not None and not self.manager.is_saving_in_progress():
      self._collect()
    return self.failed is not None

  def wait(self) -> bool:
    """Waits for the save in progress; whether a save has failed."""
    self._collect()
    return self.failed is not None

  def _collect(self) -> None:
    if self.pending is None:
      return
    step, self.pending = self.pending, None
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self.failed = (step, _reason(e))
    else:
      self.last_good = step

  def error(self, stopped_at: int) -> SaveError:
    """The `SaveError` to stop with at step `stopped_at` (when this process's save
    did not fail, another process's did)."""
    if self.failed:
      step, reason = self.failed
      what = f'Saving the checkpoint of step {step} in {self.manager.directory} failed ({reason})'
    else:
      reason = ''
      what = 'Another process failed to save its part of the checkpoint (see its log)'
    good = (
      f'the last good checkpoint is step {self.last_good}'
      if self.last_good is not None
      else 'there is no good checkpoint yet'
    )
    hint = (
      'Free some space (or lower config.keep_checkpoints), then rerun the same command to resume'
      if 'no space' in reason
      else 'Rerun the same command to resume once the cause is fixed'
    )
    return SaveError(f'{what}. Training stopped at step {stopped_at}; {good}. {hint}.')

  def close(self) -> None:
    """Waits for the save in progress, deletes the replaced steps and closes; after
    a failure, only closes (quietly: the failure is being reported)."""
    if self.failed is None:
      self._collect()
    if self.failed is None:
      _empty_trash(self.manager)
    try:
      self.manager.close()
    except Exception as e:  # pylint: disable=broad-except
      if self.failed is None:
        raise
      logging.debug('Closing the checkpoint manager after a failed save: %s', e)


def remove_unfinished(workdir: str) -> list[str]:
  """Deletes the temporary folders of saves that never completed (a kill, a full
  disk, a second Ctrl-C): Orbax never completes them later. Returns their names."""
  directory = checkpoint_dir(workdir)
  try:
    names = sorted(n for n in os.listdir(directory) if TMP_MARKER in n)
  except (FileNotFoundError, NotADirectoryError):
    return []
  for name in names:
    path = os.path.join(directory, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)
  return names


def restore(
  manager: ocp.CheckpointManager,
  abstract_state: Any,
  step: Optional[int] = None,
  retired: Sequence[str] = (),
) -> tuple[Any, Optional[dict], int]:
  """Restores (state, data_state, step); latest step by default.

  `abstract_state` (a dataclass of jax.ShapeDtypeStruct leaves with
  shardings) gives the tree structure and where each array goes, so every
  process restores its shards of a multi-host checkpoint. `retired` names
  fields that older layouts of the state had: a checkpoint holding them is
  restored in its own layout, then they are dropped.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'No checkpoint in {manager.directory}.')
  target, old = abstract_state, []
  if retired:
    saved = _tree_metadata(os.path.join(str(manager.directory), str(step), 'state'))
    old = [k for k in retired if k in saved]
  if old:
    target = {f.name: getattr(abstract_state, f.name) for f in dataclasses.fields(abstract_state)}
    for key in old:  # Read as host arrays, then dropped.
      target[key] = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), saved[key])
  items = {'state': ocp.args.StandardRestore(target)}
  has_data = 'data' in _item_names(manager, step)
  if has_data:
    items['data'] = ocp.args.JsonRestore()
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  state = restored['state']
  if old:
    state = type(abstract_state)(**{k: v for k, v in state.items() if k not in old})
    logging.info('Checkpoint %d has an older layout; migrated (dropped %s).', step, ', '.join(old))
  return state, (restored['data'] if has_data else None), step


def restore_newest_intact(
  manager: ocp.CheckpointManager, abstract_state: Any, retired: Sequence[str] = ()
) -> tuple[Any, Optional[dict], int]:
  """`restore` of the newest checkpoint that can be read.

  A newer one that cannot (damaged or missing files) is named in the log,
  skipped, and moved (by process 0) into `checkpoints/.corrupt/`, so that the
  step can be saved again. Raises ValueError, before reading any array, when
  the checkpoints' arrays do not fit `abstract_state` (other model settings),
  and when no checkpoint can be read.
  """
  directory = str(manager.directory)
  corrupt = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      saved = _tree_metadata(os.path.join(directory, str(step), 'state'))
    except Exception as e:  # pylint: disable=broad-except
      corrupt.append((step, _one_line(e)))
      logging.warning(
        'Checkpoint step %d in %s is corrupt or incomplete (%s); trying the next older one.',
        step,
        directory,
        corrupt[-1][1],
      )
      continue
    diffs = shape_differences(abstract_state, saved, ignore=retired)
    if diffs:
      raise ValueError(
        f"The checkpoints in {directory} do not fit this config's networks ({len(diffs)} "
        f'arrays differ, e.g. {"; ".join(diffs[:3])}): they were trained with other '
        'config.model.* settings. Resume with the settings of the run that wrote them, or '
        'use a new --workdir. Its config.json is left as it was.'
      )
    try:
      restored = restore(manager, abstract_state, step, retired)
    except Exception as e:  # pylint: disable=broad-except
      corrupt.append((step, _one_line(e)))
      logging.warning(
        'Checkpoint step %d in %s is corrupt or incomplete (%s); trying the next older one.',
        step,
        directory,
        corrupt[-1][1],
      )
      continue
    break
  else:
    raise ValueError(
      f'No checkpoint in {directory} can be read ('
      + '; '.join(f'step {s}: {r}' for s, r in corrupt)
      + '). Move that folder away, or use a '
      'new --workdir, to start afresh.'
    )
  if corrupt:
    multihost_utils.sync_global_devices('shopstyle_jax.checkpoints.corrupt')  # All have read.
    aside = os.path.join(directory, CORRUPT_DIR)
    if jax.process_index() == 0:
      os.makedirs(aside, exist_ok=True)
      for bad, _ in corrupt:
        target = os.path.join(aside, str(bad))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(os.path.join(directory, str(bad)), target)
    multihost_utils.sync_global_devices('shopstyle_jax.checkpoints.corrupt_moved')
    manager.reload()
    logging.warning(
      'Resuming from step %d, the newest intact checkpoint; the unreadable '
      'step(s) %s were moved to %s (delete them when no longer needed).',
      restored[2],
      ', '.join(str(s) for s, _ in corrupt),
      aside,
    )
  return restored


def _one_line(error: BaseException, limit: int = 300) -> str:
  text = ' '.join(str(error).split())
  text = f'{type(error).__name__}: {text}' if text else type(error).__name__
  return text if len(text) <= limit else text[:limit] + '...'


def _path_name(key: Any) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _shapes(tree: Any, ignore: Sequence[str] = ()) -> dict[str, tuple]:
  """{'g_params/Conv_0/kernel': shape} of a tree of arrays, ShapeDtypeStructs or
  Orbax array metadata (a dataclass state and its saved dicts name leaves alike)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name = '/'.join(_path_name(k) for k in path)
    if name.split('/')[0] not in ignore:
      out[name] = tuple(getattr(leaf, 'shape', np.shape(leaf)))
  return out


def shape_differences(expected: Any, saved: Any, ignore: Sequence[str] = ()) -> list[str]:
  """'path: checkpoint SHAPE, config SHAPE' for each array whose shape differs
  between `saved` and `expected`, or that only one of them has; top-level keys
  in `ignore` are left out."""
  ours, theirs = _shapes(expected, ignore), _shapes(saved, ignore)
  paths = sorted(set(ours) | set(theirs), key=lambda p: ('opt_state' in p, p))  # Weights first.
  return [
    f'{p}: checkpoint {theirs.get(p, "none")}, config {ours.get(p, "none")}'
    for p in paths
    if ours.get(p) != theirs.get(p)
  ]


def _item_names(manager: ocp.CheckpointManager, step: int) -> set:
  path = os.path.join(str(manager.directory), str(step))
  return {n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))}


class _DropMessage(std_logging.Filter):
  def __init__(self, text: str):
    super().__init__()
    self.text = text

  def filter(self, record: std_logging.LogRecord) -> bool:
    return self.text not in record.getMessage()


@contextlib.contextmanager
def _without_step_metadata_warning():
  """Reading one item of a step folder makes Orbax warn that the step's own
  metadata file is not in the item folder; it is not needed there."""
  flt = _DropMessage('Metadata file does not exist')
  logger = std_logging.getLogger('absl')
  logger.addFilter(flt)
  try:
    yield
  finally:
    logger.removeFilter(flt)


def _tree_metadata(path: str) -> dict:
  """The saved tree's metadata (shapes, dtypes) of one step's `state` folder."""
  with _without_step_metadata_warning():
    return ocp.PyTreeCheckpointer().metadata(path).item_metadata.tree


def available_steps(workdir: str) -> list[int]:
  """Completed checkpoint steps in a workdir, ascending (empty if none)."""
  directory = checkpoint_dir(workdir)
  if not os.path.isdir(directory):
    return []
  return sorted(ocp.utils.checkpoint_steps(directory))


def resolve(path: str) -> tuple[str, Optional[int]]:
  """A workdir, its checkpoints/ folder or one step folder -> (workdir, step or None)."""
  path = os.path.abspath(path.rstrip(os.sep))
  name = os.path.basename(path)
  if name.isdigit() and os.path.basename(os.path.dirname(path)) == CHECKPOINT_DIR:
    return os.path.dirname(os.path.dirname(path)), int(name)
  if name == CHECKPOINT_DIR:
    return os.path.dirname(path), None
  return path, None


def state_bytes(state: Any) -> int:
  """Bytes a checkpoint of `state` takes before compression."""
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def check_workdir(workdir: str, needed_bytes: int, keep: int = 1) -> None:
  """Fails fast, before training, on a workdir we could not checkpoint into: a
  file, an unwritable folder, or too little free space for `keep` checkpoints
  plus the one being written."""
  _check_folder(workdir)
  probe = os.path.join(workdir, f'.write_test.{os.getpid()}')
  try:
    os.makedirs(workdir, exist_ok=True)
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise PermissionError(
      f'Workdir {workdir} is not writable ({e.strerror}). Pick another '
      '--workdir or fix its permissions.'
    ) from e
  free = shutil.disk_usage(workdir).free
  # Orbax writes a new step before deleting the oldest: `keep` + 1 at the peak,
  # of which those already there take no more room.
  existing = len(available_steps(workdir))
  more = max(keep - existing, 0) + 1
  if free < more * needed_bytes:
    have = f', {existing} already there' if existing else ''
    raise OSError(
      f'Only {free / 2**20:.0f} MiB free under {workdir}; a checkpoint needs about '
      f'{needed_bytes / 2**20:.0f} MiB and {more} more must fit '
      f'(config.keep_checkpoints={keep} kept{have}, plus the one being written '
      'before the oldest is deleted). Free some space, lower '
      'config.keep_checkpoints or pick another --workdir.'
    )


def _check_folder(workdir: str) -> None:
  """NotADirectoryError when `workdir`, or the folder it would be created in, is a file."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      return
    path = parent
  if os.path.isdir(path):
    return
  if path == os.path.abspath(workdir):
    raise NotADirectoryError(
      f'Workdir {workdir} is a file, not a folder. Pick another '
      '--workdir (a folder, or a path that does not exist yet).'
    )
  raise NotADirectoryError(
    f'Workdir {workdir} cannot be created: {path} is a file, not a folder. Pick another --workdir.'
  )


def find_step(workdir: str, step: Optional[int] = None) -> int:
  """The completed checkpoint `step` (default: the latest) of `workdir`, reading
  nothing but the folder names; FileNotFoundError saying what there is."""
  steps = available_steps(workdir)
  if not steps:
    raise FileNotFoundError(
      f'No checkpoint found under {checkpoint_dir(workdir)}. Train first '
      f'(python main.py --config=... --workdir={workdir}) or pass the right --workdir.'
    )
  if step is None:
    return steps[-1]
  if step not in steps:
    raise FileNotFoundError(
      f'No checkpoint at step {step} in {checkpoint_dir(workdir)}; available steps: {steps}.'
    )
  return step


def restore_subtree(
  workdir: str, keys: tuple[str, ...], step: Optional[int] = None
) -> tuple[dict, int]:
  """Restores only `keys` of the saved state as host NumPy arrays, in this process.

  Used by inference (generator weights only) and fine-tuning; works on
  checkpoints written by any number of processes.
  """
  step = find_step(workdir, step)
  steps = available_steps(workdir)
  path = os.path.join(checkpoint_dir(workdir), str(step), 'state')
  checkpointer = ocp.PyTreeCheckpointer()
  try:
    metadata = _tree_metadata(path)
    missing = [k for k in keys if k not in metadata]
    if missing:
      raise ValueError(f'it has no {missing}, only {sorted(metadata)}')
    item = {k: metadata[k] for k in keys}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    tree = checkpointer.restore(
      path, args=ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)
    )
  except Exception as e:  # Orbax raises many types for damaged files.
    raise ValueError(
      f'Checkpoint {path} could not be read ({type(e).__name__}: {e}). It may '
      f'be corrupt or from another program: pass --step with another of '
      f'{steps}, or retrain.'
    ) from e
  return tree, step
