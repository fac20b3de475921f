"""x [N, K] @ w [K, M] in x's dtype with fp32 accumulation, and a backward whose matmuls XLA:CPU can hand to its
bf16 matrix library.

With bf16 activations XLA:CPU (jax 0.10) runs a dot on its bf16 (AMX/AVX512-BF16) library path only when both
operands are bf16 and the lhs contracts its last axis; any other dot is upcast to fp32 and runs 3-4x slower on an
AMX machine (a [2048, 512] x [512, 1792] GEMM on 2 cores: ~900 GFLOP/s in bf16, ~250 in fp32). Autodiff of
`x.astype(bf16) @ w.astype(bf16)` gives bf16 dots whose output XLA upcasts, and with fp32 accumulation the
backward dots get an fp32 cotangent. This VJP keeps all three dots bf16 x bf16 -> fp32: y = x w and dx = g w^T
(an "nt" dot) take the library path; dw = x^T g contracts the token axis and still runs through fp32. The weight
gradient is returned in w's dtype (fp32 master weights). For fp32 inputs it computes what autodiff of `x @ w` does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_NN = (((1,), (0,)), ((), ()))
_NT = (((1,), (1,)), ((), ()))
_TN = (((0,), (0,)), ((), ()))


@jax.custom_vjp
def matmul(x, w):
  """x [N, K] (compute dtype) @ w [K, M] (any float dtype; cast to x's) -> [N, M] in x's dtype."""
  return _fwd(x, w)[0]


def _fwd(x, w):
  y = lax.dot_general(x, w.astype(x.dtype), _NN, preferred_element_type=jnp.float32).astype(x.dtype)
  return y, (x, w)


def _bwd(res, g):
  x, w = res
  g = g.astype(x.dtype)
  dx = lax.dot_general(g, w.astype(x.dtype), _NT, preferred_element_type=jnp.float32).astype(x.dtype)
  dw = lax.dot_general(x, g, _TN, preferred_element_type=jnp.float32).astype(w.dtype)
  return dx, dw


matmul.defvjp(_fwd, _bwd)
