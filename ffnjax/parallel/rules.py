"""The one table that maps logical axis names to mesh axes. Nothing else names mesh axes for tensors.

FSDP shards the embed dimension of every weight; tensor parallelism shards heads, the FFN width and the
vocabulary; the batch is split over data and fsdp. A dimension that a mesh axis does not divide is replicated
along it (FFN widths are padded to `model.ffn_pad_multiple` so that this never happens to them).
"""

from __future__ import annotations

from collections.abc import Sequence

from jax.sharding import NamedSharding, PartitionSpec

LOGICAL_RULES: tuple[tuple[str, tuple[str, ...] | None], ...] = (
  ("batch", ("data", "fsdp")),
  ("length", None),
  ("embed", ("fsdp",)),
  ("heads", ("tensor",)),
  ("kv_heads", ("tensor",)),
  ("head_dim", None),
  ("mlp", ("tensor",)),
  ("vocab", ("tensor",)),
  ("layers", None),
  ("activation_embed", None),
)
_RULES = dict(LOGICAL_RULES)


def logical_spec(names: Sequence[str | None], shape: Sequence[int] | None = None, mesh=None) -> PartitionSpec:
  """PartitionSpec for logical axis names; with shape+mesh, axes that do not divide a dim are dropped."""
  spec = []
  for i, name in enumerate(names):
    axes = _RULES.get(name) if name else None
    if name and name not in _RULES:
      raise KeyError(f"logical axis {name!r} has no rule; known: {sorted(_RULES)}")
    if axes and shape is not None and mesh is not None:
      kept, size = [], 1
      for a in axes:
        if shape[i] % (size * mesh.shape[a]) == 0:
          kept.append(a)
          size *= mesh.shape[a]
      axes = tuple(kept)
    axes = tuple(a for a in (axes or ()) if mesh is None or mesh.shape[a] > 1)
    spec.append(axes[0] if len(axes) == 1 else (axes or None))
  return PartitionSpec(*spec)


def logical_sharding(names, shape, mesh) -> NamedSharding:
  return NamedSharding(mesh, logical_spec(names, shape, mesh))
