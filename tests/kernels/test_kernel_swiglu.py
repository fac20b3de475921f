"""Fused SwiGLU FFN in the Pallas interpreter (both kernel families) against the jnp reference."""

import jax
import jax.numpy as jnp
import pytest
from kernel_testlib import TOLS, check_values_and_grads, interpret_config, randn

from ffnjax import kernels

# (lead dims of x, d, f, dtype): ragged token blocks (70 % 32), odd widths (1793 = 7*256 + 1 = 28*64 + 1),
# d not a multiple of the GPU inner chunk (40 % 16), an exact-fit case, and bf16.
CASES = [((2, 35), 40, 1793, "float32"), ((64,), 32, 256, "float32"), ((48,), 64, 520, "bfloat16")]
BLOCKS = {
  "tpu": dict(ffn_block_tokens=32, ffn_block_width=256),
  "gpu": dict(ffn_block_tokens=32, ffn_block_width=64, gpu_block_inner=16),
}


def _args(lead, d, f, dtype):
  k = jax.random.split(jax.random.key(0), 4)
  return (
    randn(k[0], (*lead, d), dtype),
    randn(k[1], (d, f), dtype, d**-0.5),
    randn(k[2], (d, f), dtype, d**-0.5),
    randn(k[3], (f, d), dtype, f**-0.5),
  )


@pytest.mark.parametrize("family", ["tpu", "gpu"])
@pytest.mark.parametrize("lead,d,f,dtype", CASES)
def test_matches_reference(family, lead, d, f, dtype):
  cfg = interpret_config(family, **BLOCKS[family])
  fused = lambda *a: kernels.swiglu_ffn(*a, impl="pallas", config=cfg)
  check_values_and_grads(fused, kernels.swiglu_ffn_reference, _args(lead, d, f, dtype), (0, 1, 2, 3), TOLS[dtype])


def test_zero_padding_is_exact():
  """Zero columns of W_gate/W_up and zero rows of W_down change nothing and get zero gradient."""
  x, wg, wu, wd = _args((24,), 16, 100, "float32")
  pad = lambda w, axis: jnp.pad(w, [(0, 28) if a == axis else (0, 0) for a in range(2)])
  cfg = interpret_config("tpu", ffn_block_tokens=8, ffn_block_width=128)
  fn = lambda *a: jnp.sum(kernels.swiglu_ffn(*a, impl="pallas", config=cfg) ** 2)
  padded = (x, pad(wg, 1), pad(wu, 1), pad(wd, 0))
  assert jnp.allclose(fn(x, wg, wu, wd), fn(*padded), rtol=1e-6)
  grads = jax.grad(fn, argnums=(1, 2, 3))(*padded)
  assert float(jnp.abs(grads[0][:, 100:]).max()) == 0.0
  assert float(jnp.abs(grads[1][:, 100:]).max()) == 0.0
  assert float(jnp.abs(grads[2][100:]).max()) == 0.0


def test_reference_impl_is_the_default():
  x, wg, wu, wd = _args((4,), 8, 24, "float32")
  assert jnp.array_equal(kernels.swiglu_ffn(x, wg, wu, wd), kernels.swiglu_ffn_reference(x, wg, wu, wd))
