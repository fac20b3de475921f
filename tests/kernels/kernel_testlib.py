"""Shared helpers for the kernel tests: interpreter configs, tolerances, value + gradient comparison."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import export

from ffnjax import kernels

# max |pallas - reference| / max |reference|, per output and per gradient.
FP32_TOL = 1e-4  # observed ~1e-6: only summation order differs
BF16_TOL = 3e-2  # bf16 inputs and bf16 matmul operands (8 mantissa bits, eps 7.8e-3) vs an fp32 reference
TOLS = {"float32": FP32_TOL, "bfloat16": BF16_TOL}

# Triton kernels are serialized as Triton IR, which has no cross-version compatibility guarantee.
TRITON_CALL = "__gpu$xla.gpu.triton"
EXPORT_CHECKS = [export.DisabledSafetyCheck.custom_call(TRITON_CALL)]


def interpret_config(family: str, **blocks):
  cfg = kernels.default_config()
  cfg.backend = "interpret"
  cfg.interpret_as = family
  cfg.update(blocks)
  return cfg


def randn(key, shape, dtype=jnp.float32, scale=1.0):
  return (scale * jax.random.normal(key, shape, jnp.float32)).astype(dtype)


def assert_close(actual, expected, tol, what=""):
  a, e = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
  assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
  assert np.all(np.isfinite(a)), f"{what}: non-finite values"
  err = float(np.max(np.abs(a - e))) / max(float(np.max(np.abs(e))), 1e-6)
  assert err <= tol, f"{what}: relative max error {err:.2e} > {tol:.0e}"


def check_values_and_grads(pallas_fn, reference_fn, args, argnums, tol, out_dtype=None, seed=0):
  """Compares outputs, and the gradients (w.r.t. `argnums`) of <fn(*args), cotangent>. The reference runs
  in fp32 on the same (possibly bf16-rounded) inputs. Output dtype: `out_dtype`, else that of args[0]."""
  ref_args = [a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args]
  expected = reference_fn(*ref_args)
  ct = jax.random.normal(jax.random.key(seed + 1), expected.shape, jnp.float32)
  actual, got = jax.jit(functools.partial(value_and_vjp, pallas_fn, argnums=argnums))(ct, *args)
  assert actual.dtype == (out_dtype or args[0].dtype)
  assert_close(actual, expected, tol, "value")
  _, want = jax.jit(functools.partial(value_and_vjp, reference_fn, argnums=argnums))(ct, *ref_args)
  for i, g, w in zip(argnums, got, want):
    assert g.dtype == args[i].dtype, f"grad {i}: dtype {g.dtype} != {args[i].dtype}"
    assert_close(g, w, tol, f"grad of arg {i}")


def value_and_vjp(fn, ct, *args, argnums):
  """fn(*args) and its vjp with cotangent `ct` w.r.t. args[argnums]: one trace (one compile under jit)."""

  def of_diff(*diff):
    full = list(args)
    for i, d in zip(argnums, diff):
      full[i] = d
    return fn(*full)

  out, vjp = jax.vjp(of_diff, *[args[i] for i in argnums])
  return out, vjp(ct.astype(out.dtype))


def export_text(fn, args, platform):
  """StableHLO text of fn lowered for `platform` ("tpu" | "cuda") on this CPU machine."""
  return export.export(jax.jit(fn), platforms=[platform], disabled_checks=EXPORT_CHECKS)(*args).mlir_module()


def kernel_calls(text, platform):
  return text.count("tpu_custom_call" if platform == "tpu" else TRITON_CALL)
