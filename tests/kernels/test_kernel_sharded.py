"""Sharded wrappers on an 8-device emulated mesh (data 2, fsdp 2, tensor 2) equal the unsharded reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AbstractDevice, AbstractMesh, AxisType, NamedSharding
from jax.sharding import PartitionSpec as P
from kernel_testlib import FP32_TOL, assert_close, export_text, interpret_config, randn, value_and_vjp

from ffnjax import kernels
from ffnjax.kernels import sharded

AXES = ("data", "fsdp", "tensor")

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (emulated) devices, as tests/conftest.py sets")


@pytest.fixture(scope="module")
def mesh():
  return jax.make_mesh((2, 2, 2), AXES, axis_types=(AxisType.Auto,) * 3)


def _compare(mesh, sharded_fn, reference_fn, args, argnums, in_specs):
  """Values and gradients of the sharded pallas op (inputs placed with `in_specs`) vs the reference."""
  placed = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args, in_specs)]
  ct = jax.random.normal(jax.random.key(9), reference_fn(*args).shape, jnp.float32)
  expected, want = jax.jit(functools.partial(value_and_vjp, reference_fn, argnums=argnums))(ct, *args)
  actual, got = jax.jit(functools.partial(value_and_vjp, sharded_fn, argnums=argnums))(ct, *placed)
  assert_close(actual, expected, FP32_TOL, "value")
  for i, g, w in zip(argnums, got, want):
    assert_close(g, w, FP32_TOL, f"grad of arg {i}")


def test_swiglu_ffn(mesh):
  k = jax.random.split(jax.random.key(0), 4)
  args = (
    randn(k[0], (8, 6, 32)),
    randn(k[1], (32, 200), scale=0.2),
    randn(k[2], (32, 200), scale=0.2),
    randn(k[3], (200, 32), scale=0.1),
  )  # 100 columns per tensor shard: ragged against 64-wide blocks
  cfg = interpret_config("tpu", ffn_block_tokens=16, ffn_block_width=64)
  fn = lambda *a: sharded.sharded_swiglu_ffn(*a, mesh=mesh, impl="pallas", config=cfg)
  _compare(
    mesh,
    fn,
    kernels.swiglu_ffn_reference,
    args,
    (0, 1, 2, 3),
    [P(("data", "fsdp")), P("fsdp", "tensor"), P("fsdp", "tensor"), P("tensor", "fsdp")],
  )


def test_attention(mesh):
  k = jax.random.split(jax.random.key(1), 3)
  args = (randn(k[0], (4, 20, 4, 16)), randn(k[1], (4, 20, 2, 16)), randn(k[2], (4, 20, 2, 16)))
  cfg = interpret_config("tpu", attn_block_q=8, attn_block_k=8)
  fn = lambda *a: sharded.sharded_attention(*a, mesh=mesh, impl="pallas", config=cfg)
  spec = P(("data", "fsdp"), None, "tensor")
  _compare(mesh, fn, kernels.attention_reference, args, (0, 1, 2), [spec] * 3)


def test_rms_norm(mesh):
  k = jax.random.split(jax.random.key(2), 2)
  args = (randn(k[0], (8, 5, 24)), 1.0 + randn(k[1], (24,), scale=0.1))
  cfg = interpret_config("gpu", rms_block_tokens=16)
  fn = lambda x, s: sharded.sharded_rms_norm(x, s, mesh=mesh, impl="pallas", config=cfg)
  ref = lambda x, s: kernels.rms_norm_reference(x, s, eps=1e-5)
  _compare(mesh, fn, ref, args, (0, 1), [P(("data", "fsdp")), P()])


def test_cross_entropy(mesh):
  k = jax.random.split(jax.random.key(3), 3)
  hidden, head = randn(k[0], (32, 16)), randn(k[1], (16, 200), scale=0.5)
  targets = jax.random.randint(k[2], (32,), 0, 200, jnp.int32)
  cfg = interpret_config("tpu", ce_block_tokens=8, ce_block_vocab=128)
  fn = lambda h, w: sharded.sharded_cross_entropy(h, w, targets, mesh=mesh, impl="pallas", config=cfg)
  ref = lambda h, w: kernels.cross_entropy_reference(h, w, targets)
  _compare(mesh, fn, ref, (hidden, head), (0, 1), [P(("data", "fsdp")), P(None, "tensor")])


def test_reference_impl_under_shard_map(mesh):
  x, scale = randn(jax.random.key(4), (8, 3, 16)), jnp.ones((16,))
  out = sharded.sharded_rms_norm(x, scale, mesh=mesh, impl="reference")
  assert np.allclose(out, kernels.rms_norm_reference(x, scale), atol=1e-6)


def test_sharded_lowers_for_tpu_from_an_abstract_mesh():
  """AOT: an abstract TPU mesh of 8 devices picks the Mosaic kernels on this CPU machine."""
  mesh = AbstractMesh(
    (2, 2, 2),
    AXES,
    (AxisType.Auto,) * 3,
    abstract_device=AbstractDevice(device_kind="TPU v5 lite", num_cores=1, platform="tpu"),
  )
  sds = lambda *s: jax.ShapeDtypeStruct(s, jnp.bfloat16)

  def loss(*a):
    return jnp.sum(sharded.sharded_swiglu_ffn(*a, mesh=mesh, impl="pallas").astype(jnp.float32))

  args = (sds(64, 256), sds(256, 512), sds(256, 512), sds(512, 256))
  text = export_text(jax.grad(loss, argnums=(0, 1, 2, 3)), args, "tpu")
  assert text.count("tpu_custom_call") == 2  # dx and dW kernels (the loss needs no forward kernel)
