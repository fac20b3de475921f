"""Flash attention in the Pallas interpreter (both kernel families) against the jnp reference."""

import jax
import jax.numpy as jnp
import pytest
from kernel_testlib import TOLS, check_values_and_grads, interpret_config, randn

from ffnjax import kernels

# (B, T, H, KV, hd, causal, dtype): T not a multiple of the blocks (50, 37), GQA (H = 2 KV, H = 2 with
# KV = 1), a head dim that is not a power of two (24: padded inside GPU tiles), non-causal with padded
# keys, and bf16.
CASES = [(2, 50, 4, 2, 24, True, "float32"), (1, 37, 2, 1, 16, False, "float32"), (1, 64, 4, 4, 32, True, "bfloat16")]
BLOCKS = {"tpu": dict(attn_block_q=16, attn_block_k=32), "gpu": dict(attn_block_q=16, attn_block_k=32)}


@pytest.mark.parametrize("family", ["tpu", "gpu"])
@pytest.mark.parametrize("b,t,h,kv,hd,causal,dtype", CASES)
def test_matches_reference(family, b, t, h, kv, hd, causal, dtype):
  k = jax.random.split(jax.random.key(1), 3)
  args = (randn(k[0], (b, t, h, hd), dtype), randn(k[1], (b, t, kv, hd), dtype), randn(k[2], (b, t, kv, hd), dtype))
  cfg = interpret_config(family, **BLOCKS[family])
  fused = lambda q, k, v: kernels.attention(q, k, v, causal=causal, impl="pallas", config=cfg)
  ref = lambda q, k, v: kernels.attention_reference(q, k, v, causal=causal)
  check_values_and_grads(fused, ref, args, (0, 1, 2), TOLS[dtype])


def test_causal_output_ignores_future_tokens():
  k = jax.random.split(jax.random.key(2), 3)
  q, kk, v = (randn(k[0], (1, 20, 2, 16)), randn(k[1], (1, 20, 2, 16)), randn(k[2], (1, 20, 2, 16)))
  cfg = interpret_config("tpu", attn_block_q=8, attn_block_k=8)
  out = kernels.attention(q, kk, v, impl="pallas", config=cfg)
  out2 = kernels.attention(q, kk.at[:, 12:].set(100.0), v.at[:, 12:].set(-5.0), impl="pallas", config=cfg)
  assert jnp.allclose(out[:, :12], out2[:, :12], atol=1e-6)


def test_heads_must_be_a_multiple_of_kv_heads():
  q, kv = jnp.zeros((1, 8, 3, 16)), jnp.zeros((1, 8, 2, 16))
  with pytest.raises(ValueError, match="multiple of num kv heads"):
    kernels.attention(q, kv, kv, impl="pallas", config=interpret_config("tpu"))
