"""Chooses the kernel implementation of each fused op from `model.kernels` (reference | pallas).

Pallas kernels see per-device shards, so under a multi-device mesh they run inside shard_map
(ffnjax.kernels.sharded); the jnp references are sharded by GSPMD directly.
"""

from __future__ import annotations

from ffnjax import kernels
from ffnjax.kernels import sharded
from ffnjax.parallel.constraints import current_mesh


def _sharded():
  return sharded


def rms_norm(x, scale, *, eps, cfg):
  return _dispatch("rms_norm", cfg.rmsnorm, cfg, x, scale, eps=eps)


def attention(q, k, v, *, cfg):
  return _dispatch("attention", cfg.attention, cfg, q, k, v, causal=True)


def swiglu_ffn(x, w_gate, w_up, w_down, *, cfg):
  return _dispatch("swiglu_ffn", cfg.ffn, cfg, x, w_gate, w_up, w_down)


def cross_entropy(hidden, head, targets, *, cfg):
  return _dispatch("cross_entropy", cfg.cross_entropy, cfg, hidden, head, targets)


def _dispatch(op: str, impl: str, config, *args, **kwargs):
  mesh = current_mesh()
  if impl == "pallas" and mesh is not None:
    return getattr(_sharded(), f"sharded_{op}")(*args, mesh=mesh, impl=impl, config=config, **kwargs)
  return getattr(kernels, op)(*args, impl=impl, config=config, **kwargs)
