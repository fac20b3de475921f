"""Every kernel lowers for TPU (Mosaic) and GPU (Triton) on this CPU machine, forward and backward.

`jax.export` runs the real Pallas lowering for the named platform (Mosaic block-shape checks and
jaxpr -> Mosaic MLIR for "tpu"; jaxpr -> Triton IR with its power-of-two tile checks for "cuda") at model
shapes: bf16, d = 1280, an odd FFN width, T = 1000 (not a block multiple), V = 50257. Compiling the Mosaic
or Triton module needs the device's compiler and is not covered here.
"""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AbstractDevice, AbstractMesh, AxisType
from kernel_testlib import export_text, kernel_calls

from ffnjax import kernels
from ffnjax.kernels import backend

BF16 = jnp.bfloat16


def _sds(*shape, dtype=BF16):
  return jax.ShapeDtypeStruct(shape, dtype)


# op -> (function of config, example args, differentiable argnums, kernels in forward, in forward+backward)
OPS = {
  "swiglu_ffn": (
    lambda c: lambda x, g, u, d: kernels.swiglu_ffn(x, g, u, d, impl="pallas", config=c),
    (_sds(512, 1280), _sds(1280, 1793), _sds(1280, 1793), _sds(1793, 1280)),
    (0, 1, 2, 3),
    1,
    2,
  ),
  "attention": (
    lambda c: lambda q, k, v: kernels.attention(q, k, v, impl="pallas", config=c),
    (_sds(2, 1000, 8, 64), _sds(2, 1000, 4, 64), _sds(2, 1000, 4, 64)),
    (0, 1, 2),
    1,
    3,
  ),
  "rms_norm": (
    lambda c: lambda x, s: kernels.rms_norm(x, s, impl="pallas", config=c),
    (_sds(2, 1000, 1280), _sds(1280)),
    (0, 1),
    1,
    2,
  ),
  "cross_entropy": (
    lambda c: lambda h, w, t: kernels.cross_entropy(h, w, t, impl="pallas", config=c),
    (_sds(1000, 1280), _sds(1280, 50257), _sds(1000, dtype=jnp.int32)),
    (0, 1),
    1,
    3,
  ),
}
PLATFORMS = {"tpu": "tpu", "gpu": "cuda"}


def _fwd_bwd(op, cfg):
  make, args, argnums, _, _ = OPS[op]
  fn = make(cfg)
  bwd = jax.grad(lambda *a: jnp.sum(fn(*a).astype(jnp.float32)), argnums=argnums)
  return fn, bwd, args


@pytest.mark.parametrize("backend_name", ["tpu", "gpu"])
@pytest.mark.parametrize("op", list(OPS))
def test_lowers_forward_and_backward(op, backend_name):
  cfg = kernels.default_config()
  cfg.backend = backend_name
  platform = PLATFORMS[backend_name]
  fn, bwd, args = _fwd_bwd(op, cfg)
  n_fwd, n_all = OPS[op][3], OPS[op][4]
  fwd_text, bwd_text = export_text(fn, args, platform), export_text(bwd, args, platform)
  assert kernel_calls(fwd_text, platform) == n_fwd
  assert kernel_calls(bwd_text, platform) == n_all  # the backward kernels (+ the forward for residuals)
  other = "cuda" if platform == "tpu" else "tpu"
  assert kernel_calls(fwd_text + bwd_text, other) == 0


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("op", list(OPS))
def test_auto_without_mesh_picks_the_lowering_platform(op, platform):
  """backend="auto" with no mesh: lax.platform_dependent keeps the kernels of the platform lowered for."""
  _, bwd, args = _fwd_bwd(op, kernels.default_config())
  text = export_text(bwd, args, platform)
  assert kernel_calls(text, platform) == OPS[op][4]
  assert kernel_calls(text, "cuda" if platform == "tpu" else "tpu") == 0


@pytest.mark.parametrize("platform,family", [("tpu", "tpu"), ("gpu", "gpu"), ("cpu", "tpu")])
def test_auto_follows_the_abstract_mesh(platform, family):
  mesh = AbstractMesh(
    (1,), ("data",), (AxisType.Auto,), abstract_device=AbstractDevice(device_kind="x", num_cores=1, platform=platform)
  )
  with jax.sharding.use_abstract_mesh(mesh):
    target = backend.resolve(backend.settings(kernels.default_config()))
  assert target == backend.Target(family, interpret=platform == "cpu")


def test_auto_with_a_tpu_abstract_mesh_lowers_tpu_kernels():
  mesh = AbstractMesh(
    (1,),
    ("data",),
    (AxisType.Auto,),
    abstract_device=AbstractDevice(device_kind="TPU v5 lite", num_cores=1, platform="tpu"),
  )
  fn, _, args = _fwd_bwd("swiglu_ffn", kernels.default_config())
  with jax.sharding.use_abstract_mesh(mesh):
    lowered = jax.jit(fn).trace(*args).lower(lowering_platforms=("tpu",))
  assert "tpu_custom_call" in lowered.as_text()
