"""The LLaMA building blocks: RMSNorm, rotary attention, SwiGLU FFN and the pre-LN layer (method.md §1).

Every op that has a fused kernel goes through `ffnjax.model.ops`, which picks the reference or the Pallas
implementation from `model.kernels`. Parameters carry logical axis names (ffnjax.parallel.rules).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.ad_checkpoint import checkpoint_name

from ffnjax.kernels.flash_attention import MASK_VALUE
from ffnjax.kernels.matmul import matmul
from ffnjax.model import ops
from ffnjax.parallel.constraints import constrain


def _dtype(name: str):
  return jnp.dtype(name)


def normal_init(std: float):
  return nn.initializers.normal(stddev=std)


class RMSNorm(nn.Module):
  cfg: object

  @nn.compact
  def __call__(self, x):
    scale = self.param(
      "scale",
      nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
      (x.shape[-1],),
      _dtype(self.cfg.param_dtype),
    )
    return ops.rms_norm(x, scale.astype(x.dtype), eps=self.cfg.norm_eps, cfg=self.cfg.kernels)


def rope_tables(positions, head_dim: int, theta: float):
  """cos/sin [..., T, head_dim] in the Hugging Face rotate-half layout."""
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x, cos, sin):
  """x [B, T, heads, hd]; cos/sin [B, T, hd]."""
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  out = x.astype(jnp.float32) * cos[:, :, None, :] + rotated * sin[:, :, None, :]
  return out.astype(x.dtype)


class Attention(nn.Module):
  cfg: object

  @nn.compact
  def __call__(self, x, cos, sin, mask=None):
    cfg = self.cfg
    d, h, kv = x.shape[-1], cfg.num_heads, cfg.num_kv_heads or cfg.num_heads
    hd = cfg.head_dim or d // h
    pdt, dt = _dtype(cfg.param_dtype), _dtype(cfg.dtype)
    init = normal_init(cfg.init_std)
    wq = self.param("wq", nn.with_logical_partitioning(init, ("embed", "heads", "head_dim")), (d, h, hd), pdt)
    wk = self.param("wk", nn.with_logical_partitioning(init, ("embed", "kv_heads", "head_dim")), (d, kv, hd), pdt)
    wv = self.param("wv", nn.with_logical_partitioning(init, ("embed", "kv_heads", "head_dim")), (d, kv, hd), pdt)
    wo = self.param("wo", nn.with_logical_partitioning(init, ("heads", "head_dim", "embed")), (h, hd, d), pdt)
    q, k, v = (dense(x.astype(dt), w, 1) for w in (wq, wk, wv))  # computes in dt; w stays fp32 (its gradient too)
    q = constrain(apply_rope(q, cos, sin), ("batch", "length", "heads", "head_dim"))
    k = constrain(apply_rope(k, cos, sin), ("batch", "length", "kv_heads", "head_dim"))
    v = constrain(v, ("batch", "length", "kv_heads", "head_dim"))
    # mask: bool [B, T, T] (packed scoring rows, block-causal) -> masked reference attention; None = causal kernel
    out = ops.attention(q, k, v, cfg=cfg.kernels) if mask is None else masked_attention(q, k, v, mask)
    out = checkpoint_name(out, "attention")
    return dense(out.astype(dt), wo, 2)


def dense(x, w, n_in: int):
  """x [..., *w.shape[:n_in]] @ w [*in, *out] -> [..., *out] as one [tokens, in] x [in, out] matmul (free
  reshapes): the equivalent [B, T, h, hd] einsums make XLA:CPU transpose operands and cotangents around every
  projection (benchmarks/train_step.py)."""
  lead, k = x.shape[: x.ndim - n_in], math.prod(w.shape[:n_in])
  return matmul(x.reshape(-1, k), w.reshape(k, -1)).reshape(*lead, *w.shape[n_in:])


def masked_attention(q, k, v, mask):
  """The reference attention (fp32, GQA by repeating kv heads) with an explicit bool mask [B, Tq, Tk]."""
  hd, group = q.shape[-1], q.shape[2] // k.shape[2]
  k, v = jnp.repeat(k, group, axis=2), jnp.repeat(v, group, axis=2)
  s = jnp.einsum("bqhd,bkhd->bhqk", q.astype(jnp.float32), k.astype(jnp.float32)) / (hd**0.5)
  p = jax.nn.softmax(jnp.where(mask[:, None], s, MASK_VALUE), axis=-1)
  return jnp.einsum("bhqk,bkhd->bqhd", p, v.astype(jnp.float32)).astype(q.dtype)


class FFN(nn.Module):
  """SwiGLU. Parameters are padded with exact zeros to `padded` columns (method.md §2)."""

  cfg: object
  width: int
  padded: int

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    d = x.shape[-1]
    pdt, dt = _dtype(cfg.param_dtype), _dtype(cfg.dtype)
    in_init = _padded_init(normal_init(cfg.init_std), self.width, axis=1)
    out_init = _padded_init(normal_init(cfg.init_std), self.width, axis=0)
    w_gate = self.param("w_gate", nn.with_logical_partitioning(in_init, ("embed", "mlp")), (d, self.padded), pdt)
    w_up = self.param("w_up", nn.with_logical_partitioning(in_init, ("embed", "mlp")), (d, self.padded), pdt)
    w_down = self.param("w_down", nn.with_logical_partitioning(out_init, ("mlp", "embed")), (self.padded, d), pdt)
    return ops.swiglu_ffn(x, w_gate.astype(dt), w_up.astype(dt), w_down.astype(dt), cfg=cfg.kernels)


def _padded_init(init, width: int, axis: int):
  """Initialises the true width and leaves the padding exactly zero (it then gets zero gradient)."""

  def fn(key, shape, dtype):
    values = init(key, shape, dtype)
    mask = (jnp.arange(shape[axis]) < width).astype(dtype)
    return values * (mask[None, :] if axis == 1 else mask[:, None])

  return fn


class Block(nn.Module):
  """One pre-LN layer. `keep` = [attention, ffn] multipliers of the sub-layer outputs (1 = on, 0 = ablated).

  Returns (x, None): the (carry, ys) signature nn.scan needs, used unscanned too so both share parameters.
  """

  cfg: object
  width: int  # 0 = deactivated: no FFN and no FFN norm
  padded: int

  @nn.compact
  def __call__(self, x, keep, cos, sin, mask=None):
    # keep [2] (one mask for the batch) or [B, 2] (one per row: many Shapley coalitions in one pass)
    keep = keep.astype(x.dtype)
    keep_attn, keep_ffn = (keep[0], keep[1]) if keep.ndim == 1 else (keep[:, 0, None, None], keep[:, 1, None, None])
    attn = Attention(self.cfg, name="attn")(RMSNorm(self.cfg, name="attn_norm")(x), cos, sin, mask)
    x = constrain(x + keep_attn * attn, ("batch", "length", "activation_embed"))
    if self.width:
      ffn = FFN(self.cfg, self.width, self.padded, name="ffn")(RMSNorm(self.cfg, name="ffn_norm")(x))
      ffn = checkpoint_name(ffn, "ffn")
      x = constrain(x + keep_ffn * ffn, ("batch", "length", "activation_embed"))
    return x, None


REMAT_POLICIES = {
  "none": None,
  "full": jax.checkpoint_policies.nothing_saveable,
  "save_dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
  "save_sublayer_outputs": jax.checkpoint_policies.save_only_these_names("attention", "ffn"),
}
