"""Which kernel family runs, and the one place that calls `pl.pallas_call`.

A `Target` is a kernel family ("tpu": Mosaic, grid-pipelined blocks with VMEM accumulators; "gpu": Triton,
one program loops over power-of-two tiles) plus whether it runs in the Pallas interpreter (CPU).

backend="auto" is resolved from the platform of the mesh in context (`jax.sharding.get_abstract_mesh()`,
whose abstract device a concrete mesh or `use_abstract_mesh` sets) or a `platform=` given by the caller
(the sharded wrappers pass their mesh's). Never from `jax.devices()`: ahead-of-time lowering for another
platform must pick that platform's kernels. With no platform known at trace time, `lax.platform_dependent`
stages every family and lowering keeps the one for the platform being lowered for (cpu -> interpreter).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as plgpu

from ffnjax.kernels import config as kconfig


@dataclasses.dataclass(frozen=True)
class Target:
  family: str  # "tpu" | "gpu"
  interpret: bool = False


@dataclasses.dataclass(frozen=True)
class Settings:
  """Hashable view of a kernels ConfigDict (custom_vjp needs hashable static arguments)."""

  backend: str = "auto"
  interpret_as: str = "tpu"
  platform: str | None = None
  blocks: tuple[tuple[str, int], ...] = ()

  def block(self, field: str, family: str) -> int:
    return kconfig.block_size(dict(self.blocks) if self.blocks else None, field, family)


def settings(config=None, platform: str | None = None) -> Settings:
  if config is None:
    return Settings(platform=platform)
  kconfig.validate(config)
  return Settings(
    backend=config.backend,
    interpret_as=config.interpret_as,
    platform=platform,
    blocks=tuple((f, int(config[f])) for f in kconfig.BLOCK_FIELDS),
  )


def mesh_platform(mesh=None) -> str | None:
  """Platform of a mesh's devices (concrete or abstract mesh); the mesh in context when none is given."""
  if mesh is None:
    mesh = jax.sharding.get_abstract_mesh()
  if mesh is None or mesh.empty:
    return None
  if isinstance(mesh, jax.sharding.Mesh):
    return mesh.devices.flat[0].platform
  device = getattr(mesh, "abstract_device", None)
  return None if device is None else device.platform


def target_for_platform(platform: str, interpret_as: str = "tpu") -> Target:
  platform = platform.lower()
  if platform == "tpu":
    return Target("tpu")
  if platform in ("gpu", "cuda", "rocm"):
    return Target("gpu")
  if platform == "cpu":
    return Target(interpret_as, interpret=True)
  raise ValueError(f"platform={platform!r}: must be one of ('tpu', 'gpu', 'cuda', 'rocm', 'cpu')")


def resolve(s: Settings) -> Target | None:
  """The target, or None when only lowering can tell (auto without a known platform)."""
  if s.backend == "tpu":
    return Target("tpu")
  if s.backend == "gpu":
    return Target("gpu")
  if s.backend == "interpret":
    return Target(s.interpret_as, interpret=True)
  platform = s.platform or mesh_platform()
  return None if platform is None else target_for_platform(platform, s.interpret_as)


def dispatch(fn, s: Settings, *args):
  """fn(target, *args) for the resolved target; every target under platform_dependent when unresolved."""
  target = resolve(s)
  if target is not None:
    return fn(target, *args)
  gpu = functools.partial(fn, Target("gpu"))
  return lax.platform_dependent(
    *args,
    tpu=functools.partial(fn, Target("tpu")),
    cuda=gpu,
    rocm=gpu,
    default=functools.partial(fn, Target(s.interpret_as, interpret=True)),
  )


# Memory accounting only (benchmarks/kernel_memory.py): replaces every kernel by an opaque host callback
# with the same operands and results, so XLA's buffer assignment shows what lives in HBM around the
# kernels, which the interpreter's emulation (full operand copies in a while loop) does not.
_OPAQUE = [False]


@contextlib.contextmanager
def opaque_kernels():
  _OPAQUE[0] = True
  try:
    yield
  finally:
    _OPAQUE[0] = False


def call(kernel, target: Target, *, out_shape, grid, in_specs, out_specs, scratch_shapes=(), semantics=None, name=None):
  """pl.pallas_call with the target's compiler parameters (TPU dimension semantics, Triton warps)."""
  if _OPAQUE[0]:

    def opaque(*args):
      zeros = lambda *a: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), out_shape)
      return jax.pure_callback(zeros, out_shape, *args)

    return opaque
  params = None
  if not target.interpret:
    if target.family == "tpu":
      params = pltpu.CompilerParams(dimension_semantics=semantics)
    else:
      params = plgpu.CompilerParams(num_warps=4, num_stages=2)
  return pl.pallas_call(
    kernel,
    out_shape=out_shape,
    grid=grid,
    in_specs=in_specs,
    out_specs=out_specs,
    scratch_shapes=scratch_shapes,
    compiler_params=params,
    interpret=target.interpret,
    name=name,
  )


def fit(s: Settings, field: str, target: Target, full: int, align: int) -> int:
  """Block size along a dimension of size `full`: the whole dimension when the block covers it; on TPU a
  partial block must be a multiple of `align` (8 sublanes / 128 lanes, Mosaic's tiling)."""
  block = s.block(field, target.family)
  if block >= full:
    return full
  if target.family == "tpu" and not target.interpret and block % align:
    raise ValueError(
      f"kernels.{field}={block}: TPU blocks must be a multiple of {align} or cover the whole dimension ({full})"
    )
  return block


def vmem(shape, dtype=jnp.float32):
  return pltpu.VMEM(shape, dtype)


# ---- helpers shared by kernel bodies ----------------------------------------------------------------


def gpu_load(ref, idx, mask):
  """Triton tile load; out-of-bounds lanes (ragged edges, power-of-two padding) read as 0."""
  return plgpu.load(ref.at[idx], mask=mask, other=0)


def gpu_store(ref, idx, value, mask):
  plgpu.store(ref.at[idx], value.astype(ref.dtype), mask=mask)


def iota(shape, dim, offset=0):
  return lax.broadcasted_iota(jnp.int32, shape, dim) + offset


def zero_where_not(mask, x):
  """where(mask, x, 0): out-of-bounds block contents are garbage (NaN in the interpreter), so they are
  selected away, never multiplied by zero."""
  return jnp.where(mask, x, jnp.zeros((), x.dtype))


def dot(a, b, trans_a=False, trans_b=False):
  """fp32-accumulating 2-D matmul; transposes are contracting dims (Mosaic and Triton fold them in)."""
  dims = (((0 if trans_a else 1,), (1 if trans_b else 0,)), ((), ()))
  return lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def common_dtype(*arrays):
  """Casts to one dtype: Mosaic and Triton matmuls take operands of equal dtype."""
  dtype = jnp.result_type(*arrays)
  return tuple(a.astype(dtype) for a in arrays)


def cdiv(a: int, b: int) -> int:
  return -(-a // b)


def next_pow2(n: int) -> int:
  return 1 << max(n - 1, 0).bit_length()
