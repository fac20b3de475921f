"""Fused RMSNorm in the Pallas interpreter (both kernel families) against the jnp reference."""

import jax
import jax.numpy as jnp
import pytest
from kernel_testlib import TOLS, check_values_and_grads, interpret_config, randn

from ffnjax import kernels

# (x shape, dtype): ragged row blocks (21 rows, 50 rows with blocks of 16), d not a power of two (40, 130,
# 96: padded inside GPU tiles), leading batch dims, and bf16.
CASES = [((3, 7, 40), "float32"), ((50, 130), "float32"), ((2, 25, 96), "bfloat16")]


@pytest.mark.parametrize("family", ["tpu", "gpu"])
@pytest.mark.parametrize("shape,dtype", CASES)
def test_matches_reference(family, shape, dtype):
  k = jax.random.split(jax.random.key(3), 2)
  x = randn(k[0], shape, dtype, 3.0)
  scale = (1.0 + 0.1 * jax.random.normal(k[1], shape[-1:])).astype(dtype)
  cfg = interpret_config(family, rms_block_tokens=16)
  fused = lambda x, s: kernels.rms_norm(x, s, eps=1e-5, impl="pallas", config=cfg)
  ref = lambda x, s: kernels.rms_norm_reference(x, s, eps=1e-5)
  check_values_and_grads(fused, ref, (x, scale), (0, 1), TOLS[dtype])


def test_eps_is_used():
  x, scale = jnp.full((8, 16), 1e-3), jnp.ones((16,))
  cfg = interpret_config("tpu")
  small = kernels.rms_norm(x, scale, eps=1e-12, impl="pallas", config=cfg)
  large = kernels.rms_norm(x, scale, eps=1.0, impl="pallas", config=cfg)
  assert jnp.allclose(small, 1.0, rtol=1e-4) and jnp.allclose(large, 1e-3, rtol=1e-3)
