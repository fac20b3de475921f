"""Chunked cross-entropy in the Pallas interpreter (both kernel families) against the jnp reference."""

import jax
import jax.numpy as jnp
import pytest
from kernel_testlib import TOLS, check_values_and_grads, interpret_config, randn

from ffnjax import kernels

# (N, d, V, dtype): ragged token blocks (40 % 16) and vocab blocks (300 % 128, 1000 % 128), d not a
# multiple of the GPU inner chunk (24 % 16), and bf16.
CASES = [(40, 24, 300, "float32"), (32, 48, 256, "float32"), (48, 32, 1000, "bfloat16")]
BLOCKS = dict(ce_block_tokens=16, ce_block_vocab=128, gpu_block_inner=16)


@pytest.mark.parametrize("family", ["tpu", "gpu"])
@pytest.mark.parametrize("n,d,v,dtype", CASES)
def test_matches_reference(family, n, d, v, dtype):
  k = jax.random.split(jax.random.key(4), 3)
  hidden, head = randn(k[0], (n, d), dtype), randn(k[1], (d, v), dtype, 3 * d**-0.5)
  targets = jax.random.randint(k[2], (n,), 0, v, jnp.int32)
  cfg = interpret_config(family, **BLOCKS)
  fused = lambda h, w: kernels.cross_entropy(h, w, targets, impl="pallas", config=cfg)
  ref = lambda h, w: kernels.cross_entropy_reference(h, w, targets)
  check_values_and_grads(fused, ref, (hidden, head), (0, 1), TOLS[dtype], out_dtype=jnp.float32)


def test_targets_get_no_gradient_and_loss_is_float32():
  hidden, head = jnp.ones((8, 16), jnp.bfloat16), jnp.ones((16, 40), jnp.bfloat16)
  targets = jnp.arange(8, dtype=jnp.int32)
  cfg = interpret_config("tpu")
  loss = kernels.cross_entropy(hidden, head, targets, impl="pallas", config=cfg)
  assert loss.dtype == jnp.float32 and loss.shape == (8,)
  assert jnp.allclose(loss, jnp.log(40.0), rtol=1e-3)  # equal logits: loss = log V
