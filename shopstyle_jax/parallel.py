"""Devices: the data-parallel mesh, shardings, global batches, distributed init.

Training is `jax.jit` over a one-axis mesh ('data') spanning every device of
every process: the state is replicated, the batch is sharded on its leading
axis, and XLA inserts the gradient all-reduces (and, for batch norm, the
cross-device statistics), so the step reads as single-device code.
"""

import hashlib
import os
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def create_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices of all processes).

  Training uses every device; evaluation and inference pass this process's own
  (e.g. `jax.local_devices()`), with `batch_sharded(mesh)` for the images and
  `replicated(mesh)` for the weights.
  """
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, devices: int | Mesh, key: str = 'config.batch_size') -> None:
  """The global batch must split evenly over the devices (a count, or a mesh's)."""
  n = devices.devices.size if isinstance(devices, Mesh) else devices
  if batch_size % n:
    processes = jax.process_count()
    raise ValueError(
      f'{key}={batch_size} is not divisible by the number of devices ({n}); use a multiple '
      f'of {n}.' + (f' (The devices of all {processes} processes count.)' if processes > 1 else '')
    )


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
  """Assembles each process's share (leading axis) into globally sharded arrays."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def jit_data_parallel(fn: Callable, mesh: Mesh, *, donate_state: bool = True) -> Callable:
  """jits fn(state, batch, *replicated_args) -> (state, metrics) over the mesh."""
  rep, data = replicated(mesh), batch_sharded(mesh)
  return jax.jit(
    fn,
    in_shardings=(rep, data, rep),
    out_shardings=(rep, rep),
    donate_argnums=(0,) if donate_state else (),
  )


# Environment variables that mark a multi-process cluster launch, where
# `jax.distributed.initialize()` finds its coordinator by itself.
_CLUSTER_MARKERS = {
  'Cloud TPU pod slice': ('TPU_WORKER_HOSTNAMES', 'MEGASCALE_COORDINATOR_ADDRESS'),
  'Slurm': ('SLURM_JOB_ID',),
  'Open MPI': ('OMPI_MCA_orte_hnp_uri', 'OMPI_COMM_WORLD_SIZE'),
  'Kubernetes JobSet': ('JOBSET_NAME',),
}


def detect_cluster() -> Optional[str]:
  """Name of the cluster environment this process was launched in, if any."""
  for name, markers in _CLUSTER_MARKERS.items():
    if any(os.environ.get(m) for m in markers):
      if name == 'Slurm' and int(os.environ.get('SLURM_NTASKS', '1')) <= 1:
        continue
      if (
        name == 'Cloud TPU pod slice'
        and len(os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',')) <= 1
        and not os.environ.get('MEGASCALE_COORDINATOR_ADDRESS')
      ):
        continue
      return name
  return None


def initialize_distributed(
  coordinator_address: Optional[str] = None,
  num_processes: Optional[int] = None,
  process_id: Optional[int] = None,
  timeout: int = 300,
) -> None:
  """Starts JAX's multi-process runtime when asked to or when in a cluster.

  Explicit flags win; otherwise `jax.distributed.initialize()` runs only where
  a cluster launch is detected, so a plain single-process run needs nothing.
  What is waited for is logged first, then every 30 s. JAX aborts a process
  that has not joined after its `initialization_timeout`, saying "another task
  died" whatever happened; this process exits first, after `timeout` seconds,
  saying what it waited for.
  """
  if coordinator_address or num_processes or process_id is not None:
    if not (coordinator_address and num_processes and process_id is not None):
      raise ValueError(
        '--coordinator_address, --num_processes and --process_id go together: '
        'give all three (or none, to auto-detect a cluster).'
      )
    if process_id == 0:
      waiting = (
        f'Process 0 of {num_processes} started the coordinator at '
        f'{coordinator_address}, but not all {num_processes} processes joined'
      )
      logging.info(
        'Starting the coordinator at %s (process 0 of %d); waiting for the other %d '
        'process(es) to join...',
        coordinator_address,
        num_processes,
        num_processes - 1,
      )
      hint = (
        f'start the others with the same command and --coordinator_address='
        f'{coordinator_address} --num_processes={num_processes} --process_id=1..'
        f'{num_processes - 1}'
      )
    else:
      waiting = (
        f'Process {process_id} of {num_processes} could not join the job at {coordinator_address}'
      )
      logging.info(
        'Waiting for the coordinator at %s (process %d of %d)...',
        coordinator_address,
        process_id,
        num_processes,
      )
      hint = (
        'is process 0 running, with the same --coordinator_address and '
        '--num_processes, and can this host reach that address and port?'
      )
    kwargs = dict(
      coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )
  else:
    cluster = detect_cluster()
    if cluster is None:
      return
    logging.info(
      'Detected a %s launch; initialising jax.distributed (waiting for every '
      'process of the job to join)...',
      cluster,
    )
    waiting = f'The processes of this {cluster} job did not all join'
    hint = 'did every task of the job start, and can they reach the first one?'
    kwargs = {}
  # Collectives between CPU devices of different processes (tests, CPU
  # clusters); no effect on GPU/TPU.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  joined = threading.Event()
  threading.Thread(
    target=_watch_initialization,
    args=(joined, waiting, hint, timeout),
    name='distributed-init-watchdog',
    daemon=True,
  ).start()
  try:
    # JAX's own limit comes later: this process says what happened first.
    jax.distributed.initialize(**kwargs, initialization_timeout=timeout + 60)
  finally:
    joined.set()
  logging.info(
    'Process %d of %d, %d local / %d global devices.',
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def _watch_initialization(joined: threading.Event, waiting: str, hint: str, timeout: float) -> None:
  """Logs every 30 s while `jax.distributed.initialize` waits; after `timeout`
  seconds, logs why and exits the process (status 1)."""
  start = time.monotonic()
  while not joined.wait(min(30.0, max(timeout - (time.monotonic() - start), 0.0))):
    elapsed = time.monotonic() - start
    if elapsed >= timeout:
      message = f'{waiting} within {timeout:.0f} s: {hint} (--coordinator_timeout sets this wait.)'
      logging.error('%s', message)
      logging.flush()
      print(f'FATAL: {message}', file=sys.stderr, flush=True)
      os._exit(1)  # pylint: disable=protected-access
    logging.info('Still waiting (%.0f s of %.0f s)...', elapsed, timeout)


def gather_bytes(data: bytes) -> list[bytes]:
  """Every process's `data` (any length), in process order: two all-gathers."""
  if jax.process_count() == 1:
    return [data]
  lengths = np.ravel(multihost_utils.process_allgather(np.int32(len(data))))
  padded = np.zeros(int(lengths.max()), np.int32)
  padded[: len(data)] = np.frombuffer(data, np.uint8)
  rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
  return [bytes(row[:n].astype(np.uint8)) for row, n in zip(rows, lengths)]


def same_on_all_processes(data: bytes) -> bool:
  """Whether every process passed equal `data`: one all-gather of its SHA-256."""
  if jax.process_count() == 1:
    return True
  digest = np.frombuffer(hashlib.sha256(data).digest(), np.uint8).astype(np.int32)
  digests = np.asarray(multihost_utils.process_allgather(digest)).reshape(-1, digest.size)
  return bool((digests == digests[0]).all())
