"""Flash attention (causal or not, GQA) with a blocked online softmax, forward and backward in Pallas.

One kernel body serves both families: a program owns one (batch, head, q block) (forward, dq) or one
(batch, kv head, k block) (dk, dv) and loops over the other sequence axis with `fori_loop`; K/V (or Q/dO
of the kv head's query group) are whole-sequence refs, which fits VMEM/L2 at these lengths (1024 tokens x
hd 64 bf16 = 128 KiB per operand). Causal programs stop at the diagonal block.

Layout inside: [B, heads, T_pad, hd] (Mosaic tiles the last two dims). Sequence lengths that are not a
multiple of the block are zero-padded to T_pad; padded keys are masked for non-causal attention and are
unreachable from real queries under the causal mask; padded query rows are sliced off (their cotangent is
zero). On GPU the head dim is padded to a power of two inside the tile with masked loads (no HBM copy).
Backward: delta = rowsum(o * dO) in XLA, then a dq kernel and a dk/dv kernel (FlashAttention-2 split), each
recomputing p = exp(s - lse) from the saved per-row log-sum-exp.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from ffnjax.kernels import backend as kb
from ffnjax.kernels.backend import cdiv, dot, iota

MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)  # finite: exp(MASK - m) = 0 without inf - inf


def attention_reference(q, k, v, *, causal=True):
  """Softmax attention in fp32 with GQA by repeating kv heads; returns q.dtype."""
  b, t, h, hd = q.shape
  group = h // k.shape[2]
  k = jnp.repeat(k, group, axis=2)
  v = jnp.repeat(v, group, axis=2)
  s = jnp.einsum("bqhd,bkhd->bhqk", q.astype(jnp.float32), k.astype(jnp.float32)) / math.sqrt(hd)
  if causal:
    s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, MASK_VALUE)
  p = jax.nn.softmax(s, axis=-1)
  return jnp.einsum("bhqk,bkhd->bqhd", p, v.astype(jnp.float32)).astype(q.dtype)


def attention_pallas(q, k, v, *, causal=True, config=None, platform=None):
  h, kv = q.shape[2], k.shape[2]
  if h % kv:
    raise ValueError(f"attention: num heads {h} must be a multiple of num kv heads {kv}")
  return _attention(kb.settings(config, platform), causal, *kb.common_dtype(q, k, v))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _attention(s, causal, q, k, v):
  return _attention_fwd(s, causal, q, k, v)[0]


def _attention_fwd(s, causal, q, k, v):
  o, lse = kb.dispatch(functools.partial(_forward, s, causal), s, q, k, v)
  return o, (q, k, v, o, lse)  # lse [B, H, T] fp32: the only extra residual


def _attention_bwd(s, causal, res, do):
  q, k, v, o, lse = res
  delta = jnp.einsum("bthd,bthd->bht", o.astype(jnp.float32), do.astype(jnp.float32))
  return kb.dispatch(functools.partial(_backward, s, causal), s, q, k, v, do.astype(q.dtype), lse, delta)


_attention.defvjp(_attention_fwd, _attention_bwd)


# ---- geometry ----------------------------------------------------------------------------------------


class _Geom:
  def __init__(self, s, target, q, k):
    self.b, self.t, self.h, self.hd = q.shape
    self.kv = k.shape[2]
    self.group = self.h // self.kv
    self.scale = 1.0 / math.sqrt(self.hd)
    self.gpu = target.family == "gpu"
    if self.gpu:  # power-of-two tiles, at least 16 (Triton dot)
      cap = max(16, kb.next_pow2(self.t))
      self.bq, self.bk = min(s.block("attn_block_q", "gpu"), cap), min(s.block("attn_block_k", "gpu"), cap)
      self.hdb = kb.next_pow2(max(self.hd, 16))
    else:  # multiples of 8 sublanes; a block never exceeds the (8-rounded) sequence
      cap = -(-self.t // 8) * 8
      self.bq = kb.fit(s, "attn_block_q", target, cap, 8)
      self.bk = kb.fit(s, "attn_block_k", target, cap, 8)
      self.hdb = self.hd
    step = math.lcm(self.bq, self.bk)
    self.tp = cdiv(self.t, step) * step
    self.nq, self.nk = self.tp // self.bq, self.tp // self.bk

  def to_kernel(self, x, fill=0.0):
    """[B, T, heads, hd] -> [B, heads, T_pad, hd]."""
    x = jnp.swapaxes(x, 1, 2)
    return jnp.pad(x, ((0, 0), (0, 0), (0, self.tp - self.t), (0, 0)), constant_values=fill)

  def rows_to_kernel(self, x):
    """[B, heads, T] -> [B, heads, T_pad, 1]."""
    return jnp.pad(x, ((0, 0), (0, 0), (0, self.tp - self.t)))[..., None]

  def from_kernel(self, x):
    return jnp.swapaxes(x[:, :, : self.t], 1, 2)


class _IO:
  """Tile loads/stores: plain ref access (TPU, interpreter) or masked Triton access (pow2-padded hd)."""

  def __init__(self, g: _Geom):
    self.g = g

  def load(self, ref, lead, rows, n):
    g = self.g
    if g.gpu:
      mask = iota((n, g.hdb), 1) < g.hd
      return kb.gpu_load(ref, (*lead, rows, pl.ds(0, g.hdb)), mask)
    return ref[(*lead, rows, slice(None))]

  def store(self, ref, value, n):
    g = self.g
    if g.gpu:
      kb.gpu_store(ref, (pl.ds(0, n), pl.ds(0, g.hdb)), value, iota((n, g.hdb), 1) < g.hd)
    else:
      ref[...] = value.astype(ref.dtype)


def _mask(g: _Geom, causal, s, q0, k0):
  """Scores with disallowed (future or padded) keys set to MASK_VALUE."""
  if not causal and g.tp == g.t:
    return s
  kpos = iota(s.shape, 1, k0)
  ok = kpos <= iota(s.shape, 0, q0) if causal else kpos < g.t
  return jnp.where(ok, s, MASK_VALUE)


def _specs(g: _Geom):
  hdb = g.hdb
  qblk = pl.BlockSpec((None, None, g.bq, hdb), lambda b, h, i: (b, h, i, 0))
  # lax.div, not //: floor division lowers through `sign`, which Mosaic lowers only on a real TPU.
  kfull = pl.BlockSpec((None, None, g.tp, hdb), lambda b, h, i: (b, lax.div(h, g.group), 0, 0))
  rowblk = pl.BlockSpec((None, None, g.bq, 1), lambda b, h, i: (b, h, i, 0))
  return qblk, kfull, rowblk


# ---- forward ------------------------------------------------------------------------------------------


def _fwd_kernel(q_ref, k_ref, v_ref, o_ref, lse_ref, *, g: _Geom, causal):
  io, i = _IO(g), pl.program_id(2)
  q = io.load(q_ref, (), pl.ds(0, g.bq), g.bq)

  def body(j, carry):
    m, l, acc = carry
    k = io.load(k_ref, (), pl.ds(j * g.bk, g.bk), g.bk)
    v = io.load(v_ref, (), pl.ds(j * g.bk, g.bk), g.bk)
    s = _mask(g, causal, dot(q, k, trans_b=True) * g.scale, i * g.bq, j * g.bk)
    m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
    p = jnp.exp(s - m_new)
    corr = jnp.exp(m - m_new)
    return m_new, l * corr + jnp.sum(p, axis=1, keepdims=True), acc * corr + dot(p.astype(v.dtype), v)

  upper = lax.div((i + 1) * g.bq + g.bk - 1, g.bk) if causal else g.nk
  init = (
    jnp.full((g.bq, 1), MASK_VALUE, jnp.float32),
    jnp.zeros((g.bq, 1), jnp.float32),
    jnp.zeros((g.bq, g.hdb), jnp.float32),
  )
  m, l, acc = lax.fori_loop(0, upper, body, init)
  io.store(o_ref, acc / l, g.bq)
  lse_ref[...] = m + jnp.log(l)


def _forward(s, causal, target, q, k, v):
  g = _Geom(s, target, q, k)
  qblk, kfull, rowblk = _specs(g)
  o, lse = kb.call(
    functools.partial(_fwd_kernel, g=g, causal=causal),
    target,
    name="flash_attention_fwd",
    out_shape=[
      jax.ShapeDtypeStruct((g.b, g.h, g.tp, g.hd), q.dtype),
      jax.ShapeDtypeStruct((g.b, g.h, g.tp, 1), jnp.float32),
    ],
    grid=(g.b, g.h, g.nq),
    in_specs=[qblk, kfull, kfull],
    out_specs=[qblk, rowblk],
    semantics=("parallel", "parallel", "parallel"),
  )(g.to_kernel(q), g.to_kernel(k), g.to_kernel(v))
  return g.from_kernel(o), lse[:, :, : g.t, 0]


# ---- backward -----------------------------------------------------------------------------------------


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, *, g: _Geom, causal):
  io, i = _IO(g), pl.program_id(2)
  q = io.load(q_ref, (), pl.ds(0, g.bq), g.bq)
  do = io.load(do_ref, (), pl.ds(0, g.bq), g.bq)
  lse, delta = lse_ref[...], delta_ref[...]

  def body(j, dq):
    k = io.load(k_ref, (), pl.ds(j * g.bk, g.bk), g.bk)
    v = io.load(v_ref, (), pl.ds(j * g.bk, g.bk), g.bk)
    p = jnp.exp(_mask(g, causal, dot(q, k, trans_b=True) * g.scale, i * g.bq, j * g.bk) - lse)
    ds = p * (dot(do, v, trans_b=True) - delta)
    return dq + dot(ds.astype(k.dtype), k)

  upper = lax.div((i + 1) * g.bq + g.bk - 1, g.bk) if causal else g.nk
  dq = lax.fori_loop(0, upper, body, jnp.zeros((g.bq, g.hdb), jnp.float32))
  io.store(dq_ref, dq * g.scale, g.bq)


def _dkv_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, dk_ref, dv_ref, *, g: _Geom, causal):
  io, j = _IO(g), pl.program_id(2)
  k = io.load(k_ref, (), pl.ds(0, g.bk), g.bk)
  v = io.load(v_ref, (), pl.ds(0, g.bk), g.bk)

  def q_block(hq, i, carry):
    dk, dv = carry
    rows = pl.ds(i * g.bq, g.bq)
    q = io.load(q_ref, (hq,), rows, g.bq)
    do = io.load(do_ref, (hq,), rows, g.bq)
    lse, delta = lse_ref[hq, rows, :], delta_ref[hq, rows, :]
    p = jnp.exp(_mask(g, causal, dot(q, k, trans_b=True) * g.scale, i * g.bq, j * g.bk) - lse)
    dv = dv + dot(p.astype(do.dtype), do, trans_a=True)
    ds = p * (dot(do, v, trans_b=True) - delta)
    return dk + dot(ds.astype(q.dtype), q, trans_a=True), dv

  lower = lax.div(j * g.bk, g.bq) if causal else 0
  head = lambda hq, carry: lax.fori_loop(lower, g.nq, functools.partial(q_block, hq), carry)
  zeros = jnp.zeros((g.bk, g.hdb), jnp.float32)
  dk, dv = lax.fori_loop(0, g.group, head, (zeros, zeros))
  io.store(dk_ref, dk * g.scale, g.bk)
  io.store(dv_ref, dv, g.bk)


def _backward(s, causal, target, q, k, v, do, lse, delta):
  g = _Geom(s, target, q, k)
  qblk, kfull, rowblk = _specs(g)
  qt, kt, vt, dot_ = g.to_kernel(q), g.to_kernel(k), g.to_kernel(v), g.to_kernel(do)
  lse_t, delta_t = g.rows_to_kernel(lse), g.rows_to_kernel(delta)
  dq = kb.call(
    functools.partial(_dq_kernel, g=g, causal=causal),
    target,
    name="flash_attention_dq",
    out_shape=jax.ShapeDtypeStruct(qt.shape, q.dtype),
    grid=(g.b, g.h, g.nq),
    in_specs=[qblk, kfull, kfull, qblk, rowblk, rowblk],
    out_specs=qblk,
    semantics=("parallel", "parallel", "parallel"),
  )(qt, kt, vt, dot_, lse_t, delta_t)
  # One program per (batch, kv head, k block); it walks the kv head's query group (GQA) in full.
  group = pl.BlockSpec((None, g.group, g.tp, g.hdb), lambda b, h, j: (b, h, 0, 0))
  group_rows = pl.BlockSpec((None, g.group, g.tp, 1), lambda b, h, j: (b, h, 0, 0))
  kblk = pl.BlockSpec((None, None, g.bk, g.hdb), lambda b, h, j: (b, h, j, 0))
  dk, dv = kb.call(
    functools.partial(_dkv_kernel, g=g, causal=causal),
    target,
    name="flash_attention_dkv",
    out_shape=[jax.ShapeDtypeStruct(kt.shape, k.dtype), jax.ShapeDtypeStruct(vt.shape, v.dtype)],
    grid=(g.b, g.kv, g.nk),
    in_specs=[group, group, group_rows, group_rows, kblk, kblk],
    out_specs=[kblk, kblk],
    semantics=("parallel", "parallel", "parallel"),
  )(qt, dot_, lse_t, delta_t, kt, vt)
  return g.from_kernel(dq), g.from_kernel(dk), g.from_kernel(dv)
