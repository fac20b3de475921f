"""Meshes and the logical-axis sharding rules."""

from ffnjax.core.meshspec import validate
from ffnjax.parallel.mesh import default_config, make_mesh
from ffnjax.parallel.rules import LOGICAL_RULES, logical_sharding, logical_spec

__all__ = ["default_config", "make_mesh", "validate", "LOGICAL_RULES", "logical_sharding", "logical_spec"]
