"""Devices: the data-parallel mesh, shardings, global batches, distributed init.

Training is `jax.jit` over a one-axis mesh ('data') spanning every device of
every process: the state is replicated, the batch is sharded on its leading
axis, and XLA inserts the gradient all-reduces (and, for batch norm, the
cross-device statistics), so the step reads as single-device code.
"""

import logging
import os
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

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


def check_batch_size(batch_size: int, devices: int | Mesh, key: str = 'config.batch_size'
                     ) -> None:
  """The global batch must split evenly over the devices (a count, or a mesh's)."""
  n = devices.devices.size if isinstance(devices, Mesh) else devices
  if batch_size % n:
    processes = jax.process_count()
    raise ValueError(
        f'{key}={batch_size} is not divisible by the number of devices ({n}); use a multiple '
        f'of {n}.' + (f' (The devices of all {processes} processes count.)'
                      if processes > 1 else ''))


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
  """Assembles each process's share (leading axis) into globally sharded arrays."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local_batch)


def jit_data_parallel(fn: Callable, mesh: Mesh, *, donate_state: bool = True) -> Callable:
  """jits fn(state, batch, *replicated_args) -> (state, metrics) over the mesh."""
  rep, data = replicated(mesh), batch_sharded(mesh)
  return jax.jit(fn, in_shardings=(rep, data, rep), out_shardings=(rep, rep),
                 donate_argnums=(0,) if donate_state else ())


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
      if name == 'Cloud TPU pod slice' and len(
          os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',')) <= 1 and not os.environ.get(
              'MEGASCALE_COORDINATOR_ADDRESS'):
        continue
      return name
  return None


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
  """Starts JAX's multi-process runtime when asked to or when in a cluster.

  Explicit flags win; otherwise `jax.distributed.initialize()` runs only where
  a cluster launch is detected, so a plain single-process run needs nothing.
  """
  if coordinator_address or num_processes or process_id is not None:
    if not (coordinator_address and num_processes and process_id is not None):
      raise ValueError('--coordinator_address, --num_processes and --process_id go together: '
                       'give all three (or none, to auto-detect a cluster).')
    # Collectives between CPU devices of different processes (tests, CPU
    # clusters); no effect on GPU/TPU.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  else:
    cluster = detect_cluster()
    if cluster is None:
      return
    logging.info('Detected a %s launch; initialising jax.distributed.', cluster)
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize()
  logging.info('Process %d of %d, %d local / %d global devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
