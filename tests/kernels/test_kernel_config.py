"""Kernel config: defaults, validation messages (field + allowed values), backend resolution, block checks."""

import jax
import jax.numpy as jnp
import pytest
from kernel_testlib import export_text

from ffnjax import kernels
from ffnjax.kernels import backend
from ffnjax.kernels import config as kconfig


def test_defaults():
  cfg = kernels.default_config()
  assert all(cfg[f] == "reference" for f in ("ffn", "attention", "rmsnorm", "cross_entropy"))
  assert cfg.backend == "auto" and cfg.interpret_as == "tpu"
  assert all(cfg[f] == 0 for f in kconfig.BLOCK_FIELDS)
  kernels.validate(cfg)


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("ffn", "fused", r"kernels.ffn='fused': must be one of \('reference', 'pallas'\)"),
    ("cross_entropy", "xla", r"kernels.cross_entropy='xla'"),
    ("backend", "cuda", r"kernels.backend='cuda': must be one of \('auto', 'tpu', 'gpu', 'interpret'\)"),
    ("interpret_as", "cpu", r"kernels.interpret_as='cpu': must be one of \('tpu', 'gpu'\)"),
    ("attn_block_q", -8, r"kernels.attn_block_q=-8: must be an int >= 0"),
  ],
)
def test_validate_names_field_and_allowed_values(field, value, match):
  cfg = kernels.default_config()
  cfg[field] = value
  with pytest.raises(ValueError, match=match):
    kernels.validate(cfg)


def test_impl_is_checked():
  x = jnp.ones((2, 8))
  with pytest.raises(ValueError, match=r"impl='fused': must be one of \('reference', 'pallas'\)"):
    kernels.rms_norm(x, jnp.ones(8), impl="fused")


def test_gpu_blocks_must_be_powers_of_two():
  cfg = kernels.default_config()
  cfg.backend, cfg.ffn_block_width = "gpu", 96
  sds = jax.ShapeDtypeStruct
  args = (
    sds((64, 128), jnp.bfloat16),
    sds((128, 300), jnp.bfloat16),
    sds((128, 300), jnp.bfloat16),
    sds((300, 128), jnp.bfloat16),
  )
  with pytest.raises(ValueError, match=r"kernels.ffn_block_width=96: GPU \(Triton\) blocks must be a power"):
    export_text(lambda *a: kernels.swiglu_ffn(*a, impl="pallas", config=cfg), args, "cuda")


def test_tpu_blocks_must_fit_the_tiling():
  cfg = kernels.default_config()
  cfg.backend, cfg.ce_block_vocab = "tpu", 200
  args = (
    jax.ShapeDtypeStruct((64, 128), jnp.bfloat16),
    jax.ShapeDtypeStruct((128, 1000), jnp.bfloat16),
    jax.ShapeDtypeStruct((64,), jnp.int32),
  )
  with pytest.raises(ValueError, match=r"kernels.ce_block_vocab=200: TPU blocks must be a multiple of 128"):
    export_text(lambda *a: kernels.cross_entropy(*a, impl="pallas", config=cfg), args, "tpu")


def test_explicit_backends_and_platforms():
  s = backend.settings
  cfg = kernels.default_config()
  for name, target in (
    ("tpu", backend.Target("tpu")),
    ("gpu", backend.Target("gpu")),
    ("interpret", backend.Target("tpu", interpret=True)),
  ):
    cfg.backend = name
    assert backend.resolve(s(cfg)) == target
  cfg.backend = "auto"
  assert backend.resolve(s(cfg, platform="cuda")) == backend.Target("gpu")
  assert backend.resolve(s(cfg, platform="cpu")) == backend.Target("tpu", interpret=True)
  assert backend.resolve(s(cfg)) is None  # no mesh: decided at lowering (lax.platform_dependent)
  with pytest.raises(ValueError, match=r"platform='metal': must be one of"):
    backend.resolve(s(cfg, platform="metal"))


def test_concrete_mesh_platform():
  mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:1])
  assert backend.mesh_platform(mesh) == "cpu"
  with jax.set_mesh(mesh):
    assert backend.resolve(backend.settings(kernels.default_config())) == backend.Target("tpu", True)


def test_auto_on_cpu_runs_the_interpreter():
  x = jax.random.normal(jax.random.key(0), (20, 24))
  out = kernels.rms_norm(x, jnp.ones(24), impl="pallas", config=kernels.default_config())
  assert jnp.allclose(out, kernels.rms_norm_reference(x, jnp.ones(24)), atol=1e-5)
