"""JAX's own multi-controller runtime: initialise when launched as one of several processes."""

from __future__ import annotations

import logging
import os

import jax

# Environment variables that mean "one of several processes": explicit JAX ones, Slurm, TPU pod workers.
_MULTI_PROCESS_ENV = (
  "JAX_COORDINATOR_ADDRESS",
  "SLURM_NTASKS",
  "TPU_WORKER_HOSTNAMES",
  "MEGASCALE_COORDINATOR_ADDRESS",
)


def maybe_initialize(coordinator: str = "", num_processes: int = 0, process_id: int = -1) -> bool:
  """Calls jax.distributed.initialize when flags or the environment describe a multi-process launch.

  Explicit arguments (from flags) win; otherwise JAX auto-detects Slurm and Cloud TPU from the environment.
  Returns True when the runtime was initialised.
  """
  if coordinator or num_processes > 1:
    if not (coordinator and num_processes > 1 and process_id >= 0):
      raise ValueError(
        "--coordinator, --num_processes (>1) and --process_id (>=0) must be given together, got "
        f"coordinator={coordinator!r} num_processes={num_processes} process_id={process_id}"
      )
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
  elif os.environ.get("SLURM_NTASKS", "1") != "1" or any(
    os.environ.get(k) for k in _MULTI_PROCESS_ENV if k != "SLURM_NTASKS"
  ):
    jax.distributed.initialize()
  else:
    return False
  logging.info(
    "jax.distributed: process %d of %d, %d global devices", jax.process_index(), jax.process_count(), jax.device_count()
  )
  return True
