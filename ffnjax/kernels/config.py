"""Kernel configuration: which implementation each op uses, the Pallas backend, and block sizes.

Block sizes of 0 mean "the backend's default" (BLOCK_DEFAULTS). TPU kernels stream blocks through VMEM
with a reduction grid axis; GPU (Triton) kernels loop inside one program over power-of-two tiles.
"""

from __future__ import annotations

import ml_collections

from ffnjax.core.errors import ConfigError

IMPLS = ("reference", "pallas")
BACKENDS = ("auto", "tpu", "gpu", "interpret")
INTERPRET_AS = ("tpu", "gpu")
OP_FIELDS = ("ffn", "attention", "rmsnorm", "cross_entropy")
BLOCK_FIELDS = (
  "ffn_block_tokens",
  "ffn_block_width",
  "attn_block_q",
  "attn_block_k",
  "rms_block_tokens",
  "ce_block_tokens",
  "ce_block_vocab",
  "gpu_block_inner",
)

# Per kernel family. TPU: sized for ~16 MiB of scoped VMEM at d <= 2048 (bf16, double-buffered inputs plus
# fp32 accumulators). GPU: Triton needs power-of-two tiles; `gpu_block_inner` is the d-chunk of the inner
# matmul loops so that no tile spans the (not power-of-two) model width.
BLOCK_DEFAULTS = {
  "tpu": dict(
    ffn_block_tokens=256,
    ffn_block_width=256,
    attn_block_q=128,
    attn_block_k=128,
    rms_block_tokens=256,
    ce_block_tokens=256,
    ce_block_vocab=512,
    gpu_block_inner=64,
  ),
  "gpu": dict(
    ffn_block_tokens=64,
    ffn_block_width=64,
    attn_block_q=64,
    attn_block_k=64,
    rms_block_tokens=16,
    ce_block_tokens=64,
    ce_block_vocab=128,
    gpu_block_inner=64,
  ),
}


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      ffn="reference",
      attention="reference",
      rmsnorm="reference",
      cross_entropy="reference",
      backend="auto",  # auto: from the mesh's devices (cpu -> interpret); see ffnjax.kernels.backend
      interpret_as="tpu",  # which kernel family the CPU interpreter runs (tests cover both)
      **{name: 0 for name in BLOCK_FIELDS},
    )
  )


# One line per field of default_config(): `python -m ffnjax.plan --show_config` prints it.
HELP = {
  "ffn": "SwiGLU FFN kernel: reference (pure jnp) | pallas",
  "attention": "attention kernel: reference | pallas (flash attention)",
  "rmsnorm": "RMSNorm kernel: reference | pallas",
  "cross_entropy": "output head + cross-entropy kernel: reference | pallas (chunked over the vocabulary)",
  "backend": "Pallas backend: auto (from the mesh's devices; CPU = interpret) | tpu | gpu | interpret",
  "interpret_as": "kernel family the CPU interpreter runs: tpu | gpu",
  "ffn_block_tokens": "FFN kernel token block (0 = the backend's default)",
  "ffn_block_width": "FFN kernel hidden-width block (0 = the backend's default)",
  "attn_block_q": "flash-attention query block (0 = the backend's default)",
  "attn_block_k": "flash-attention key block (0 = the backend's default)",
  "rms_block_tokens": "RMSNorm kernel token block (0 = the backend's default)",
  "ce_block_tokens": "cross-entropy kernel token block (0 = the backend's default)",
  "ce_block_vocab": "cross-entropy kernel vocabulary block (0 = the backend's default)",
  "gpu_block_inner": "GPU kernels: d-chunk of the inner matmul loops (0 = the backend's default)",
}


def validate(config) -> None:
  """Raises ValueError naming the offending field and its allowed values."""
  for field in OP_FIELDS:
    if config[field] not in IMPLS:
      raise ConfigError(f"model.kernels.{field}={config[field]!r}: must be one of {IMPLS}")
  if config.backend not in BACKENDS:
    raise ConfigError(f"model.kernels.backend={config.backend!r}: must be one of {BACKENDS}")
  if config.interpret_as not in INTERPRET_AS:
    raise ConfigError(f"model.kernels.interpret_as={config.interpret_as!r}: must be one of {INTERPRET_AS}")
  for field in BLOCK_FIELDS:
    value = config[field]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise ConfigError(f"model.kernels.{field}={value!r}: must be an int >= 0 (0 = backend default)")


def check_impl(impl: str) -> None:
  if impl not in IMPLS:
    raise ValueError(f"impl={impl!r}: must be one of {IMPLS}")


def block_size(config, field: str, family: str) -> int:
  """The configured block size, or the family default when 0. GPU tiles must be powers of two."""
  value = (config[field] if config is not None else 0) or BLOCK_DEFAULTS[family][field]
  if family == "gpu" and (value & (value - 1) or value < 16):
    raise ConfigError(
      f"model.kernels.{field}={value}: GPU (Triton) blocks must be a power of two >= 16 "
      "(Triton tiles are powers of two; its dot needs dims >= 16)"
    )
  return value
