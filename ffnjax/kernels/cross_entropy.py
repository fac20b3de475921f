"""Chunked cross-entropy over a large vocabulary: per-token loss = logsumexp(h W) - (h W)[target], in Pallas.

The [tokens, vocab] logits never exist in HBM: each (token block, vocab block) tile is computed on chip and
folded into a running max / sum-of-exp (forward), or turned into the softmax gradient p - onehot and
contracted at once (backward: a dh kernel reducing over vocab blocks, a dW kernel reducing over token
blocks; both recompute their logits tile from h and W, the FlashAttention trade). Saved for the backward:
the per-token log-sum-exp [N] (fp32). A vocabulary that is not a multiple of the block (50257) masks the
last block's out-of-range columns to MASK_VALUE / zero.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from ffnjax.kernels import backend as kb
from ffnjax.kernels.backend import cdiv, dot, iota, zero_where_not

MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def cross_entropy_reference(hidden, head, targets):
  """Full fp32 logits [N, V], then logsumexp - target logit."""
  logits = jnp.dot(hidden, head, preferred_element_type=jnp.float32)
  picked = jnp.take_along_axis(logits, targets[:, None].astype(jnp.int32), axis=1)[:, 0]
  return jax.nn.logsumexp(logits, axis=1) - picked


def cross_entropy_pallas(hidden, head, targets, *, config=None, platform=None):
  hidden, head = kb.common_dtype(hidden, head)
  return _ce(kb.settings(config, platform), hidden, head, targets.astype(jnp.int32))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _ce(s, hidden, head, targets):
  return _ce_fwd(s, hidden, head, targets)[0]


def _ce_fwd(s, hidden, head, targets):
  loss, lse = kb.dispatch(functools.partial(_forward, s), s, hidden, head, targets[:, None])
  return loss[:, 0], (hidden, head, targets, lse)


def _ce_bwd(s, res, g):
  hidden, head, targets, lse = res
  dh, dw = kb.dispatch(
    functools.partial(_backward, s), s, hidden, head, targets[:, None], lse, g.astype(jnp.float32)[:, None]
  )
  return dh, dw, np.zeros(targets.shape, jax.dtypes.float0)


_ce.defvjp(_ce_fwd, _ce_bwd)


def _forward(s, target, h, w, tgt):
  return (_tpu_forward if target.family == "tpu" else _gpu_forward)(s, target, h, w, tgt)


def _backward(s, target, h, w, tgt, lse, g):
  return (_tpu_backward if target.family == "tpu" else _gpu_backward)(s, target, h, w, tgt, lse, g)


def _softmax_grad(logits, cols, tgt, lse, g):
  """d loss / d logits for one tile: (softmax - onehot) * g."""
  return (jnp.exp(logits - lse) - (cols == tgt).astype(jnp.float32)) * g


# ---- TPU family: grid (token block, vocab block) with VMEM accumulators --------------------------------


def _tpu_blocks(s, t, n, v):
  return kb.fit(s, "ce_block_tokens", t, n, 8), kb.fit(s, "ce_block_vocab", t, v, 128)


def _tpu_fwd_kernel(h_ref, w_ref, tgt_ref, loss_ref, lse_ref, m_ref, l_ref, t_ref, *, v, bv):
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    m_ref[...] = jnp.full_like(m_ref, MASK_VALUE)
    l_ref[...] = jnp.zeros_like(l_ref)
    t_ref[...] = jnp.zeros_like(t_ref)

  logits = dot(h_ref[...], w_ref[...])
  cols = iota(logits.shape, 1, j * bv)
  if v % bv:
    logits = jnp.where(cols < v, logits, MASK_VALUE)
  t_ref[...] += jnp.sum(jnp.where(cols == tgt_ref[...], logits, 0.0), axis=1, keepdims=True)
  m = m_ref[...]
  m_new = jnp.maximum(m, jnp.max(logits, axis=1, keepdims=True))
  l_ref[...] = l_ref[...] * jnp.exp(m - m_new) + jnp.sum(jnp.exp(logits - m_new), axis=1, keepdims=True)
  m_ref[...] = m_new

  @pl.when(j == pl.num_programs(1) - 1)
  def _done():
    lse = m_ref[...] + jnp.log(l_ref[...])
    lse_ref[...] = lse
    loss_ref[...] = lse - t_ref[...]


def _tpu_forward(s, target, h, w, tgt):
  (n, d), v = h.shape, w.shape[1]
  bt, bv = _tpu_blocks(s, target, n, v)
  row = pl.BlockSpec((bt, 1), lambda i, j: (i, 0))
  return kb.call(
    functools.partial(_tpu_fwd_kernel, v=v, bv=bv),
    target,
    name="cross_entropy_fwd",
    out_shape=[jax.ShapeDtypeStruct((n, 1), jnp.float32)] * 2,
    grid=(cdiv(n, bt), cdiv(v, bv)),
    in_specs=[pl.BlockSpec((bt, d), lambda i, j: (i, 0)), pl.BlockSpec((d, bv), lambda i, j: (0, j)), row],
    out_specs=[row, row],
    scratch_shapes=[kb.vmem((bt, 1))] * 3,
    semantics=("parallel", "arbitrary"),
  )(h, w, tgt)


def _tpu_dh_kernel(h_ref, w_ref, tgt_ref, lse_ref, g_ref, dh_ref, acc_ref, *, v, bv):
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    acc_ref[...] = jnp.zeros_like(acc_ref)

  w = w_ref[...]
  cols = iota((1, bv), 1, j * bv)
  if v % bv:  # out-of-range vocab columns: zero weights contribute nothing to dh
    w = zero_where_not(cols < v, w)
  dl = _softmax_grad(dot(h_ref[...], w), cols, tgt_ref[...], lse_ref[...], g_ref[...])
  acc_ref[...] += dot(dl.astype(w.dtype), w, trans_b=True)

  @pl.when(j == pl.num_programs(1) - 1)
  def _done():
    dh_ref[...] = acc_ref[...].astype(dh_ref.dtype)


def _tpu_dw_kernel(h_ref, w_ref, tgt_ref, lse_ref, g_ref, dw_ref, acc_ref, *, n, bt, bv):
  j, i = pl.program_id(0), pl.program_id(1)

  @pl.when(i == 0)
  def _init():
    acc_ref[...] = jnp.zeros_like(acc_ref)

  h = h_ref[...]
  dl = _softmax_grad(dot(h, w_ref[...]), iota((1, bv), 1, j * bv), tgt_ref[...], lse_ref[...], g_ref[...])
  if n % bt:  # reduction over tokens: rows past the end hold garbage
    ok = iota((bt, 1), 0, i * bt) < n
    h, dl = zero_where_not(ok, h), zero_where_not(ok, dl)
  acc_ref[...] += dot(h, dl.astype(h.dtype), trans_a=True)

  @pl.when(i == pl.num_programs(1) - 1)
  def _done():
    dw_ref[...] = acc_ref[...].astype(dw_ref.dtype)


def _tpu_backward(s, target, h, w, tgt, lse, g):
  (n, d), v = h.shape, w.shape[1]
  bt, bv = _tpu_blocks(s, target, n, v)
  nt, nv = cdiv(n, bt), cdiv(v, bv)
  row = pl.BlockSpec((bt, 1), lambda i, j: (i, 0))
  tok = pl.BlockSpec((bt, d), lambda i, j: (i, 0))
  dh = kb.call(
    functools.partial(_tpu_dh_kernel, v=v, bv=bv),
    target,
    name="cross_entropy_dh",
    out_shape=jax.ShapeDtypeStruct(h.shape, h.dtype),
    grid=(nt, nv),
    in_specs=[tok, pl.BlockSpec((d, bv), lambda i, j: (0, j)), row, row, row],
    out_specs=tok,
    scratch_shapes=[kb.vmem((bt, d))],
    semantics=("parallel", "arbitrary"),
  )(h, w, tgt, lse, g)
  row_t = pl.BlockSpec((bt, 1), lambda j, i: (i, 0))
  col_t = pl.BlockSpec((d, bv), lambda j, i: (0, j))
  dw = kb.call(
    functools.partial(_tpu_dw_kernel, n=n, bt=bt, bv=bv),
    target,
    name="cross_entropy_dw",
    out_shape=jax.ShapeDtypeStruct(w.shape, w.dtype),
    grid=(nv, nt),
    in_specs=[pl.BlockSpec((bt, d), lambda j, i: (i, 0)), col_t, row_t, row_t, row_t],
    out_specs=col_t,
    scratch_shapes=[kb.vmem((d, bv))],
    semantics=("parallel", "arbitrary"),
  )(h, w, tgt, lse, g)
  return dh, dw


# ---- GPU family (Triton): loops over vocab (forward, dh) or token (dW) blocks and d chunks -------------


class _Tiles:
  def __init__(self, s, n, d, v):
    self.n, self.d, self.v = n, d, v
    self.bt, self.bv = s.block("ce_block_tokens", "gpu"), s.block("ce_block_vocab", "gpu")
    self.bd = s.block("gpu_block_inner", "gpu")
    self.nd, self.nt, self.nv = cdiv(d, self.bd), cdiv(n, self.bt), cdiv(v, self.bv)

  def rows(self, i):
    return pl.ds(i * self.bt, self.bt), iota((self.bt, 1), 0, i * self.bt) < self.n

  def chunk(self, k):  # d chunk: slice, column mask [1, bd], row mask [bd, 1]
    return (
      pl.ds(k * self.bd, self.bd),
      iota((1, self.bd), 1, k * self.bd) < self.d,
      iota((self.bd, 1), 0, k * self.bd) < self.d,
    )

  def vocab(self, j):
    cols = iota((1, self.bv), 1, j * self.bv)
    return pl.ds(j * self.bv, self.bv), cols, cols < self.v

  def row_vals(self, ref, i):  # [bt, 1] per-token values; 0 out of range
    rs, rm = self.rows(i)
    return kb.gpu_load(ref, (rs, pl.ds(0, 1)), rm)

  def logits(self, h_ref, w_ref, i, j):
    rs, rm = self.rows(i)
    vs, _, vm = self.vocab(j)

    def body(k, acc):
      ds, dcm, drm = self.chunk(k)
      return acc + dot(kb.gpu_load(h_ref, (rs, ds), rm & dcm), kb.gpu_load(w_ref, (ds, vs), drm & vm))

    return lax.fori_loop(0, self.nd, body, jnp.zeros((self.bt, self.bv), jnp.float32))


def _gpu_fwd_kernel(h_ref, w_ref, tgt_ref, loss_ref, lse_ref, *, tl: _Tiles):
  i = pl.program_id(0)
  tgt = tl.row_vals(tgt_ref, i)

  def body(j, carry):
    m, l, t = carry
    _, cols, vm = tl.vocab(j)
    logits = jnp.where(vm, tl.logits(h_ref, w_ref, i, j), MASK_VALUE)
    t = t + jnp.sum(jnp.where(cols == tgt, logits, 0.0), axis=1, keepdims=True)
    m_new = jnp.maximum(m, jnp.max(logits, axis=1, keepdims=True))
    l = l * jnp.exp(m - m_new) + jnp.sum(jnp.exp(logits - m_new), axis=1, keepdims=True)
    return m_new, l, t

  col = lambda x: jnp.full((tl.bt, 1), x, jnp.float32)
  m, l, t = lax.fori_loop(0, tl.nv, body, (col(MASK_VALUE), col(0.0), col(0.0)))
  rs, rm = tl.rows(i)
  lse = m + jnp.log(l)
  kb.gpu_store(lse_ref, (rs, pl.ds(0, 1)), lse, rm)
  kb.gpu_store(loss_ref, (rs, pl.ds(0, 1)), lse - t, rm)


def _gpu_forward(s, target, h, w, tgt):
  tl = _Tiles(s, h.shape[0], h.shape[1], w.shape[1])
  whole = pl.BlockSpec()
  return kb.call(
    functools.partial(_gpu_fwd_kernel, tl=tl),
    target,
    name="cross_entropy_fwd",
    out_shape=[jax.ShapeDtypeStruct((tl.n, 1), jnp.float32)] * 2,
    grid=(tl.nt,),
    in_specs=[whole] * 3,
    out_specs=[whole] * 2,
  )(h, w, tgt)


def _gpu_dh_kernel(h_ref, w_ref, tgt_ref, lse_ref, g_ref, dh_ref, *, tl: _Tiles):
  i = pl.program_id(0)
  rs, rm = tl.rows(i)
  tgt, lse, g = tl.row_vals(tgt_ref, i), tl.row_vals(lse_ref, i), tl.row_vals(g_ref, i)

  def zero(k, c):
    ds, dcm, _ = tl.chunk(k)
    kb.gpu_store(dh_ref, (rs, ds), jnp.zeros((tl.bt, tl.bd), jnp.float32), rm & dcm)
    return c

  lax.fori_loop(0, tl.nd, zero, 0)

  def vocab(j, c):
    vs, cols, vm = tl.vocab(j)
    dl = _softmax_grad(tl.logits(h_ref, w_ref, i, j), cols, tgt, lse, g)
    dl = zero_where_not(vm, dl).astype(w_ref.dtype)

    def chunk(k, c2):
      ds, dcm, drm = tl.chunk(k)
      acc = kb.gpu_load(dh_ref, (rs, ds), rm & dcm)
      acc += dot(dl, kb.gpu_load(w_ref, (ds, vs), drm & vm), trans_b=True)
      kb.gpu_store(dh_ref, (rs, ds), acc, rm & dcm)
      return c2

    return lax.fori_loop(0, tl.nd, chunk, c)

  lax.fori_loop(0, tl.nv, vocab, 0)


def _gpu_dw_kernel(h_ref, w_ref, tgt_ref, lse_ref, g_ref, dw_ref, *, tl: _Tiles):
  j = pl.program_id(0)
  vs, cols, vm = tl.vocab(j)

  def zero(k, c):
    ds, _, drm = tl.chunk(k)
    kb.gpu_store(dw_ref, (ds, vs), jnp.zeros((tl.bd, tl.bv), jnp.float32), drm & vm)
    return c

  lax.fori_loop(0, tl.nd, zero, 0)

  def tokens(i, c):
    rs, rm = tl.rows(i)
    # g is 0 on rows past the end (masked load), so those rows contribute nothing.
    dl = _softmax_grad(
      tl.logits(h_ref, w_ref, i, j), cols, tl.row_vals(tgt_ref, i), tl.row_vals(lse_ref, i), tl.row_vals(g_ref, i)
    ).astype(h_ref.dtype)

    def chunk(k, c2):
      ds, dcm, drm = tl.chunk(k)
      acc = kb.gpu_load(dw_ref, (ds, vs), drm & vm)
      acc += dot(kb.gpu_load(h_ref, (rs, ds), rm & dcm), dl, trans_a=True)
      kb.gpu_store(dw_ref, (ds, vs), acc, drm & vm)
      return c2

    return lax.fori_loop(0, tl.nd, chunk, c)

  lax.fori_loop(0, tl.nt, tokens, 0)


def _gpu_backward(s, target, h, w, tgt, lse, g):
  tl = _Tiles(s, h.shape[0], h.shape[1], w.shape[1])
  whole = pl.BlockSpec()
  args = (h, w, tgt, lse, g)
  dh = kb.call(
    functools.partial(_gpu_dh_kernel, tl=tl),
    target,
    name="cross_entropy_dh",
    out_shape=jax.ShapeDtypeStruct(h.shape, jnp.float32),
    grid=(tl.nt,),
    in_specs=[whole] * 5,
    out_specs=whole,
  )(*args)
  dw = kb.call(
    functools.partial(_gpu_dw_kernel, tl=tl),
    target,
    name="cross_entropy_dw",
    out_shape=jax.ShapeDtypeStruct(w.shape, jnp.float32),
    grid=(tl.nv,),
    in_specs=[whole] * 5,
    out_specs=whole,
  )(*args)
  return dh.astype(h.dtype), dw.astype(w.dtype)
