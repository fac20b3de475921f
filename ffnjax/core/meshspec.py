"""The device mesh as text and as config: `data:1,fsdp:8,tensor:1` (the one syntax of every `--mesh` flag).

JAX-free: flags are checked before anything heavy starts. `ffnjax.parallel.make_mesh` builds the mesh itself.
"""

from __future__ import annotations

import ml_collections

from ffnjax.core.errors import ConfigError

AXES = ("data", "fsdp", "tensor")
EXAMPLE = "data:1,fsdp:8,tensor:1"


def validate(mesh_cfg) -> None:
  wild = [a for a in AXES if mesh_cfg[a] == -1]
  if len(wild) > 1:
    raise ConfigError(f"mesh: at most one of {AXES} may be -1 (the rest of the devices), got {wild}")
  for a in AXES:
    if mesh_cfg[a] != -1 and mesh_cfg[a] < 1:
      raise ConfigError(f"mesh.{a}={mesh_cfg[a]}: must be a positive integer or -1 (the rest of the devices)")


def parse(spec: str, base=None) -> ml_collections.ConfigDict:
  """`data:1,fsdp:8,tensor:1` -> a mesh config; axes the spec does not name keep `base`'s size (default 1).

  SIZE is a positive integer or -1 (the rest of the devices). Raises ValueError naming the bad part.
  """
  mesh = ml_collections.ConfigDict({a: 1 for a in AXES})
  if base is not None:
    mesh.update({a: int(base[a]) for a in AXES})
  seen = set()
  for item in filter(None, (part.strip() for part in spec.split(","))):
    axis, _, size = item.partition(":")
    if axis not in AXES or not size.lstrip("-").isdigit():
      raise ConfigError(f"--mesh={spec!r}: {item!r} must be AXIS:SIZE with AXIS in {AXES} (e.g. {EXAMPLE})")
    if axis in seen:
      raise ConfigError(f"--mesh={spec!r}: axis {axis!r} is given twice")
    seen.add(axis)
    mesh[axis] = int(size)
  try:
    validate(mesh)
  except ValueError as e:
    raise ConfigError(f"--mesh={spec!r}: {e}") from None
  return mesh


def format_spec(mesh) -> str:
  """A mesh config or a jax Mesh's shape -> `data:1,fsdp:8,tensor:1`."""
  return ",".join(f"{a}:{int(mesh[a])}" for a in AXES)
