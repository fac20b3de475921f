"""ffnjax.kernels.matmul: autodiff-exact in fp32, fp32-accumulated in bf16, and on XLA:CPU's bf16 path."""

import jax
import jax.numpy as jnp
import numpy as np

from ffnjax.kernels.matmul import matmul


def _data(dtype):
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (48, 32), jnp.float32).astype(dtype)
  w = jax.random.normal(kw, (32, 24), jnp.float32) * 0.1  # fp32 master weight, as the model passes it
  g = jax.random.normal(kg, (48, 24), jnp.float32)
  return x, w, g


def _vjp(fn, x, w, g):
  y, pullback = jax.vjp(fn, x, w)
  return (y, *pullback(g.astype(y.dtype)))


def test_fp32_matches_autodiff_of_matmul():
  x, w, g = _data(jnp.float32)
  ours = _vjp(matmul, x, w, g)
  ref = _vjp(lambda a, b: a @ b, x, w, g)
  for a, b in zip(ours, ref):
    assert a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_bf16_accumulates_in_fp32_and_returns_an_fp32_weight_gradient():
  x, w, g = _data(jnp.bfloat16)
  y, dx, dw = _vjp(matmul, x, w, g)
  assert (y.dtype, dx.dtype, dw.dtype) == (jnp.bfloat16, jnp.bfloat16, jnp.float32)
  x32, w16 = x.astype(jnp.float32), w.astype(jnp.bfloat16).astype(jnp.float32)
  g16 = g.astype(jnp.bfloat16).astype(jnp.float32)
  # each result is the fp32 product of the bf16 operands, rounded once to its output dtype
  np.testing.assert_array_equal(y, (x32 @ w16).astype(jnp.bfloat16))
  np.testing.assert_array_equal(dx, (g16 @ w16.T).astype(jnp.bfloat16))
  np.testing.assert_allclose(dw, x32.T @ g16, rtol=1e-5, atol=1e-5)


def test_bf16_forward_and_input_gradient_dots_keep_bf16_operands_on_cpu():
  """The point of the VJP: XLA:CPU keeps a dot in bf16 (its AMX/AVX512-BF16 library path) only when both operands
  are bf16; autodiff of `x @ w` feeds the backward dots an fp32 cotangent, so they ran upcast to fp32."""
  x, w, g = _data(jnp.bfloat16)
  jaxpr = jax.make_jaxpr(lambda x, w, g: _vjp(matmul, x, w, g))(x, w, g)
  dots = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
  operands = sorted(tuple(str(v.aval.dtype) for v in e.invars) for e in dots)
  # y = x w, dx = g w^T and dw = x^T g, all bf16 x bf16 with fp32 accumulation (XLA:CPU still runs the last one,
  # which contracts the token axis, through fp32)
  assert operands.count(("bfloat16", "bfloat16")) == 3, operands
  assert all(e.params["preferred_element_type"] == jnp.float32 for e in dots)


def _equations(jaxpr):
  for e in jaxpr.eqns:
    yield e
    for sub in _subjaxprs(e):
      yield from _equations(sub)


def _subjaxprs(eqn):  # the custom_vjp and pjit bodies
  for p in eqn.params.values():
    for v in p if isinstance(p, (list, tuple)) else [p]:
      inner = getattr(v, "jaxpr", v)
      if hasattr(inner, "eqns"):
        yield inner
