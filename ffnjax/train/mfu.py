"""Model FLOPs utilisation. Model FLOPs per token come from the layer plan (placement.flops_per_token: matmuls,
forward + backward = 3x forward, causal attention counted once), so expanded and deactivated layers count as
they are and recomputation (remat) is not credited.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

# Dense bf16 peak FLOP/s per chip (vendor figures, no sparsity).
PEAK_FLOPS = {
  "tpu v4": 275e12,
  "tpu v5 lite": 197e12,  # v5e
  "tpu v5e": 197e12,
  "tpu v5p": 459e12,
  "tpu v6 lite": 918e12,  # Trillium / v6e
  "tpu v6e": 918e12,
  "nvidia a100": 312e12,
  "nvidia h100": 989e12,
  "nvidia h200": 989e12,
  "nvidia b200": 2250e12,
}

# Device memory per chip in GiB (for the ahead-of-time planner's "does it fit" check).
MEMORY_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32, "a100": 80, "h100": 80, "h200": 141, "b200": 192}


def measure_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
  """Achieved FLOP/s of a large fp32 matmul on the default device: the CPU 'peak' for MFU-on-CPU."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n**3 / best


def peak_flops_per_device(device=None) -> float | None:
  device = device or jax.devices()[0]
  kind = device.device_kind.lower()
  for name, flops in PEAK_FLOPS.items():
    if kind.startswith(name):
      return flops
  return None
