"""Fused ops with a pure-jnp reference and a Pallas implementation behind one signature each.

    swiglu_ffn(x[..., d], w_gate[d, f], w_up[d, f], w_down[f, d], *, impl, config) -> [..., d]
    attention(q[B,T,H,hd], k[B,T,KV,hd], v[B,T,KV,hd], *, causal, impl, config) -> [B,T,H,hd]
    rms_norm(x[..., d], scale[d], *, eps, impl, config) -> [..., d]
    cross_entropy(hidden[N,d], head[d,V], targets[N] int32, *, impl, config) -> loss [N] float32

Arrays are per-shard (call them inside shard_map for sharded inputs: ffnjax.kernels.sharded). `impl` is
"reference" | "pallas" (the model passes its `kernels.<op>` field); `config` is `default_config()` (backend,
block sizes); the Pallas backend comes from the mesh in context (see ffnjax.kernels.backend).
"""

from __future__ import annotations

from ffnjax.kernels.config import BACKENDS, IMPLS, check_impl, default_config, validate
from ffnjax.kernels.cross_entropy import cross_entropy_pallas, cross_entropy_reference
from ffnjax.kernels.flash_attention import attention_pallas, attention_reference
from ffnjax.kernels.rmsnorm import rms_norm_pallas, rms_norm_reference
from ffnjax.kernels.swiglu import swiglu_ffn_pallas, swiglu_ffn_reference

__all__ = [
  "swiglu_ffn",
  "attention",
  "rms_norm",
  "cross_entropy",
  "default_config",
  "validate",
  "IMPLS",
  "BACKENDS",
  "swiglu_ffn_reference",
  "attention_reference",
  "rms_norm_reference",
  "cross_entropy_reference",
  "swiglu_ffn_pallas",
  "attention_pallas",
  "rms_norm_pallas",
  "cross_entropy_pallas",
]


def swiglu_ffn(x, w_gate, w_up, w_down, *, impl="reference", config=None):
  check_impl(impl)
  if impl == "reference":
    return swiglu_ffn_reference(x, w_gate, w_up, w_down)
  return swiglu_ffn_pallas(x, w_gate, w_up, w_down, config=config)


def attention(q, k, v, *, causal=True, impl="reference", config=None):
  check_impl(impl)
  if impl == "reference":
    return attention_reference(q, k, v, causal=causal)
  return attention_pallas(q, k, v, causal=causal, config=config)


def rms_norm(x, scale, *, eps=1e-5, impl="reference", config=None):
  check_impl(impl)
  if impl == "reference":
    return rms_norm_reference(x, scale, eps=eps)
  return rms_norm_pallas(x, scale, eps=eps, config=config)


def cross_entropy(hidden, head, targets, *, impl="reference", config=None):
  check_impl(impl)
  if impl == "reference":
    return cross_entropy_reference(hidden, head, targets)
  return cross_entropy_pallas(hidden, head, targets, config=config)
