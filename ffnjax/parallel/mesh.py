"""Device meshes with axes (data, fsdp, tensor); -1 in the config means "the rest of the devices"."""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from ffnjax.core.errors import ConfigError
from ffnjax.core.meshspec import AXES, validate


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))


# One line per field of default_config(): `python -m ffnjax.plan --show_config` prints it.
HELP = {
  "data": "data-parallel axis size (-1 = the rest of the devices); --mesh syntax data:1,fsdp:8,tensor:1",
  "fsdp": "fully-sharded data-parallel axis size: parameters and batch split over it (-1 = the rest)",
  "tensor": "tensor-parallel axis size: heads and FFN width split over it (-1 = the rest)",
}


def resolve_shape(mesh_cfg, num_devices: int) -> tuple[int, int, int]:
  """Axis sizes; a fully fixed mesh smaller than the devices uses the first devices (e.g. 1 of 8 in tests)."""
  validate(mesh_cfg)
  fixed = math.prod(mesh_cfg[a] for a in AXES if mesh_cfg[a] != -1)
  if all(mesh_cfg[a] != -1 for a in AXES):
    if fixed > num_devices:
      raise ConfigError(
        f"mesh {dict((a, mesh_cfg[a]) for a in AXES)} needs {fixed} devices but only {num_devices} are available"
      )
    return tuple(mesh_cfg[a] for a in AXES)
  if num_devices % fixed:
    raise ConfigError(
      f"mesh {dict((a, mesh_cfg[a]) for a in AXES)} needs a multiple of {fixed} devices, "
      f"but {num_devices} are available"
    )
  return tuple(num_devices // fixed if mesh_cfg[a] == -1 else mesh_cfg[a] for a in AXES)


def make_mesh(mesh_cfg=None, devices=None) -> Mesh:
  """A mesh with Auto axis types, so GSPMD logical sharding constraints apply (see stack-notes)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = resolve_shape(mesh_cfg if mesh_cfg is not None else default_config(), len(devices))
  devices = devices[: math.prod(shape)]
  if len(devices) > 1 and devices[0].platform != "cpu":
    try:
      arr = mesh_utils.create_device_mesh(shape, devices)
    except Exception:  # noqa: BLE001 - topology-aware placement is an optimisation only
      arr = np.asarray(devices).reshape(shape)
  else:
    arr = np.asarray(devices).reshape(shape)
  return Mesh(arr, AXES, axis_types=(AxisType.Auto,) * len(AXES))
