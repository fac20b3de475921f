"""Memory of one SwiGLU FFN layer, forward + backward: fused Pallas kernel vs the unfused reference.

Ahead-of-time `jax.jit(...).lower(...).compile().memory_analysis()` on this (CPU) machine, nothing runs.
Default problem: tokens=8192, d=1280, d_f'=53765 (the widest expanded layer, 10 % ratio), bfloat16.

Two measurements of each fused kernel family (tpu: Mosaic-style grid kernels; gpu: Triton-style loop
kernels), because on CPU a kernel runs in the Pallas interpreter:
  interpreter  the kernel as the CPU interpreter executes it: a while loop over the grid whose carry holds
               (NaN-padded) copies of every operand and result, i.e. whole-array copies of the weights and
               their gradients that a TPU/GPU kernel, reading and writing HBM in place, never makes.
  opaque       every pallas_call replaced by an opaque call with the same operands and results
               (ffnjax.kernels.backend.opaque_kernels): XLA's buffer assignment then shows what lives in
               device memory around the kernels on TPU/GPU. The kernels' own working set is on chip (VMEM,
               or registers + shared memory) and is printed separately for the TPU kernels.
The reference is measured as XLA compiles it (its [tokens, d_f'] intermediates are the point). The check
(exit status) compares the reference with the fused HBM temporaries of the worse kernel family.

  python benchmarks/kernel_memory.py [--dtype bfloat16|float32] [--tokens 8192] [--d 1280] [--f 53765]
"""

from __future__ import annotations

import argparse
import os
import sys

# Run as a script, this folder is sys.path[0]; keep benchmark modules from shadowing anything.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import jax
import jax.numpy as jnp

from ffnjax import kernels
from ffnjax.kernels import backend

GiB = 1024**3


def layer_fwd_bwd(impl: str, config):
  def fn(x, wg, wu, wd, dy):
    y, vjp = jax.vjp(lambda *a: kernels.swiglu_ffn(*a, impl=impl, config=config), x, wg, wu, wd)
    return (y, *vjp(dy))

  return jax.jit(fn)


def memory(fn, args):
  m = fn.lower(*args).compile().memory_analysis()
  return dict(temp=m.temp_size_in_bytes, args=m.argument_size_in_bytes, out=m.output_size_in_bytes)


def tpu_vmem_bytes(config, tokens, d, f, itemsize):
  """On-chip working set of the largest TPU kernel (dW): double-buffered input blocks + fp32 accumulators."""
  bt = min(config.ffn_block_tokens or 256, tokens)
  bf = min(config.ffn_block_width or 256, f)
  inputs = 2 * itemsize * (2 * bt * d + 3 * d * bf)
  outputs = 2 * itemsize * 3 * d * bf
  return inputs + outputs + 4 * 3 * d * bf


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
  p.add_argument("--tokens", type=int, default=8192)
  p.add_argument("--d", type=int, default=1280)
  p.add_argument("--f", type=int, default=53765)
  p.add_argument("--min-ratio", type=float, default=4.0, help="exit status 1 if reference / fused temporaries is lower")
  a = p.parse_args(argv)

  dt = jnp.dtype(a.dtype)
  sds = lambda *s: jax.ShapeDtypeStruct(s, dt)
  args = (sds(a.tokens, a.d), sds(a.d, a.f), sds(a.d, a.f), sds(a.f, a.d), sds(a.tokens, a.d))
  cfg = kernels.default_config()
  cfg.backend = "interpret"

  rows = [("reference (XLA)", memory(layer_fwd_bwd("reference", cfg), args))]
  for family in ("tpu", "gpu"):
    cfg.interpret_as = family
    rows.append((f"fused, {family} kernels, interpreter", memory(layer_fwd_bwd("pallas", cfg), args)))
    with backend.opaque_kernels():
      rows.append((f"fused, {family} kernels, opaque (HBM)", memory(layer_fwd_bwd("pallas", cfg), args)))
  cfg.interpret_as = "tpu"

  ref = rows[0][1]
  print(f"SwiGLU FFN forward+backward  tokens={a.tokens} d={a.d} d_f'={a.f} dtype={a.dtype}")
  print(
    f"  one [tokens, d_f'] array = {a.tokens * a.f * dt.itemsize / GiB:.2f} GiB; arguments "
    f"{ref['args'] / GiB:.2f} GiB, outputs {ref['out'] / GiB:.2f} GiB (the same for every path)"
  )
  print(f"  {'path':<38}{'temporaries':>16}{'reference / path':>18}")
  for name, m in rows:
    ratio = f"{ref['temp'] / m['temp']:.1f}x" if m["temp"] > 2**20 else "-"
    print(f"  {name:<38}{m['temp'] / GiB:>12.3f} GiB{ratio:>18}")
  vmem = tpu_vmem_bytes(cfg, a.tokens, a.d, a.f, dt.itemsize)
  print(f"  on-chip working set of the largest TPU kernel (dW, default blocks): {vmem / 2**20:.1f} MiB VMEM")
  worst = max(max(m["temp"] for name, m in rows if "opaque" in name), 2**20)  # below 1 MiB counts as 1 MiB
  ratio = ref["temp"] / worst
  ok = ratio >= a.min_ratio
  print(
    f"  check: reference / fused (HBM, worse family; floor 1 MiB) = {ratio:.1f}x {'>=' if ok else '<'} {a.min_ratio}x"
  )
  return 0 if ok else 1


if __name__ == "__main__":
  raise SystemExit(main())
