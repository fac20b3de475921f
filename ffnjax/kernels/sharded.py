"""The ops under `jax.shard_map`, so that kernels see per-device shards.

Batch / tokens are split over ("data", "fsdp"); attention heads and the FFN width over "tensor" (the FFN's
partial outputs are summed over "tensor"); RMSNorm scale and the cross-entropy head are replicated inside
(shard_map gathers them; a vocabulary-parallel loss would need a distributed log-sum-exp). An axis that the
mesh lacks, or that does not divide the dimension, is left out, as in ffnjax.parallel.rules.
check_vma=False: Pallas interpret mode does not track varying manual axes. The Pallas backend follows the
mesh's devices (cpu -> interpreter), so ahead-of-time lowering with an abstract mesh picks its platform.
"""

from __future__ import annotations

import jax
from jax.sharding import PartitionSpec as P

from ffnjax.kernels import backend
from ffnjax.kernels import config as kconfig
from ffnjax.kernels.cross_entropy import cross_entropy_pallas, cross_entropy_reference
from ffnjax.kernels.flash_attention import attention_pallas, attention_reference
from ffnjax.kernels.rmsnorm import rms_norm_pallas, rms_norm_reference
from ffnjax.kernels.swiglu import swiglu_ffn_pallas, swiglu_ffn_reference

BATCH_AXES = ("data", "fsdp")
TENSOR_AXIS = "tensor"


def _axes(mesh, names, size: int):
  """The mesh axes among `names` (size > 1) that together divide `size`, or None."""
  kept, prod = [], 1
  for name in names:
    n = dict(mesh.shape).get(name, 1)
    if n > 1 and size % (prod * n) == 0:
      kept.append(name)
      prod *= n
  return tuple(kept) if len(kept) > 1 else (kept[0] if kept else None)


def _run(fn, mesh, in_specs, out_specs, *args):
  return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)(*args)


def sharded_swiglu_ffn(x, w_gate, w_up, w_down, *, mesh, impl="reference", config=None):
  kconfig.check_impl(impl)
  batch, tp = _axes(mesh, BATCH_AXES, x.shape[0]), _axes(mesh, (TENSOR_AXIS,), w_gate.shape[1])
  platform = backend.mesh_platform(mesh)

  def local(x, wg, wu, wd):
    if impl == "pallas":
      y = swiglu_ffn_pallas(x, wg, wu, wd, config=config, platform=platform)
    else:
      y = swiglu_ffn_reference(x, wg, wu, wd)
    return jax.lax.psum(y, tp) if tp else y

  xs = P(batch, *([None] * (x.ndim - 1)))
  return _run(local, mesh, (xs, P(None, tp), P(None, tp), P(tp, None)), xs, x, w_gate, w_up, w_down)


def sharded_attention(q, k, v, *, mesh, causal=True, impl="reference", config=None):
  kconfig.check_impl(impl)
  batch = _axes(mesh, BATCH_AXES, q.shape[0])
  tp = _axes(mesh, (TENSOR_AXIS,), k.shape[2])  # kv heads divisible => query heads too (H = G * KV)
  platform = backend.mesh_platform(mesh)

  def local(q, k, v):
    if impl == "pallas":
      return attention_pallas(q, k, v, causal=causal, config=config, platform=platform)
    return attention_reference(q, k, v, causal=causal)

  spec = P(batch, None, tp, None)
  return _run(local, mesh, (spec, spec, spec), spec, q, k, v)


def sharded_rms_norm(x, scale, *, mesh, eps=1e-5, impl="reference", config=None):
  kconfig.check_impl(impl)
  batch = _axes(mesh, BATCH_AXES, x.shape[0])
  platform = backend.mesh_platform(mesh)

  def local(x, scale):
    if impl == "pallas":
      return rms_norm_pallas(x, scale, eps=eps, config=config, platform=platform)
    return rms_norm_reference(x, scale, eps=eps)

  xs = P(batch, *([None] * (x.ndim - 1)))
  return _run(local, mesh, (xs, P(None)), xs, x, scale)


def sharded_cross_entropy(hidden, head, targets, *, mesh, impl="reference", config=None):
  kconfig.check_impl(impl)
  batch = _axes(mesh, BATCH_AXES, hidden.shape[0])
  platform = backend.mesh_platform(mesh)

  def local(h, w, t):
    if impl == "pallas":
      return cross_entropy_pallas(h, w, t, config=config, platform=platform)
    return cross_entropy_reference(h, w, t)

  return _run(local, mesh, (P(batch, None), P(None, None), P(batch)), P(batch), hidden, head, targets)
