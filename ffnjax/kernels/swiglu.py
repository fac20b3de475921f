"""Fused SwiGLU FFN: y = (silu(x W_gate) * (x W_up)) W_down without a [tokens, d_f] intermediate in HBM.

Forward: tiles over tokens and over the width d_f; each width block's silu(g) * u lives only on chip and its
W_down product is accumulated in fp32. Backward (Pallas too, recomputing g, u and dh per width block rather
than storing them, so memory stays O(tokens * d + weights)):
  dx kernel:  per token block, reduce over width blocks   dx  = dg W_gate^T + du W_up^T
  dW kernel:  per width block, reduce over token blocks   dWg = x^T dg, dWu = x^T du, dWd = h^T dy
Cost: 14 block matmuls per (token, width) block pair against the unfused 9 (about 1.5x FLOPs) for an HBM
footprint that does not grow with d_f beyond the weights themselves.

Widths that are not a multiple of the block: the last width block reads past the array. The TPU kernels
select those columns away where they would enter a reduction over width (never multiply garbage by zero:
it may be NaN); the Triton kernels load them masked as zeros. Exact: silu(0) * 0 = 0 (method.md §2).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from ffnjax.kernels import backend as kb
from ffnjax.kernels.backend import cdiv, dot, iota, zero_where_not
from ffnjax.kernels.matmul import matmul


def swiglu_ffn_reference(x, w_gate, w_up, w_down):
  """Unfused SwiGLU in the input dtype: materialises [..., d_f] gate, up and their product.

  The matmuls see [tokens, d] (a free reshape): with [B, T, d] operands XLA:CPU transposes the [B, T, d_f]
  cotangents to form the weight gradients (measured 1.8x slower fwd+bwd at d=512, d_f=1792).
  """
  x2 = x.reshape(-1, x.shape[-1])
  return matmul(jax.nn.silu(matmul(x2, w_gate)) * matmul(x2, w_up), w_down).reshape(*x.shape[:-1], w_down.shape[-1])


def swiglu_ffn_pallas(x, w_gate, w_up, w_down, *, config=None, platform=None):
  d = x.shape[-1]
  x, w_gate, w_up, w_down = kb.common_dtype(x, w_gate, w_up, w_down)
  y = _ffn(kb.settings(config, platform), x.reshape(-1, d), w_gate, w_up, w_down)
  return y.reshape(x.shape)


# ---- shared elementwise math (fp32) --------------------------------------------------------------------


def _swiglu(g, u):
  return g * jax.nn.sigmoid(g) * u


def _swiglu_grads(g, u, dh):
  """d/dg and d/du of silu(g) * u given dh; silu'(g) = s (1 + g (1 - s)), s = sigmoid(g)."""
  s = jax.nn.sigmoid(g)
  return dh * u * s * (1.0 + g * (1.0 - s)), dh * g * s


# ---- custom_vjp wiring ---------------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _ffn(s, x, wg, wu, wd):
  return kb.dispatch(functools.partial(_forward, s), s, x, wg, wu, wd)


def _ffn_fwd(s, x, wg, wu, wd):
  return _ffn(s, x, wg, wu, wd), (x, wg, wu, wd)  # residuals are the inputs: nothing of width d_f * tokens


def _ffn_bwd(s, res, dy):
  return kb.dispatch(functools.partial(_backward, s), s, *res, dy.astype(res[0].dtype))


_ffn.defvjp(_ffn_fwd, _ffn_bwd)


def _forward(s, t, x, wg, wu, wd):
  return (_tpu_forward if t.family == "tpu" else _gpu_forward)(s, t, x, wg, wu, wd)


def _backward(s, t, x, wg, wu, wd, dy):
  return (_tpu_backward if t.family == "tpu" else _gpu_backward)(s, t, x, wg, wu, wd, dy)


# ---- TPU family: grid (token block, width block), VMEM accumulators ------------------------------------


def _tpu_blocks(s, t, n, f):
  return kb.fit(s, "ffn_block_tokens", t, n, 8), kb.fit(s, "ffn_block_width", t, f, 128)


def _width_blocks(wg_ref, wu_ref, wd_ref, j, f, bf):
  """Weight blocks of width block j, with the ragged last block's out-of-bounds part set to zero."""
  wg, wu, wd = wg_ref[...], wu_ref[...], wd_ref[...]
  if f % bf:
    col = iota((1, bf), 1, j * bf) < f
    row = iota((bf, 1), 0, j * bf) < f
    wg, wu, wd = zero_where_not(col, wg), zero_where_not(col, wu), zero_where_not(row, wd)
  return wg, wu, wd


def _tpu_fwd_kernel(x_ref, wg_ref, wu_ref, wd_ref, o_ref, acc_ref, *, f, bf):
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    acc_ref[...] = jnp.zeros_like(acc_ref)

  wg, wu, wd = _width_blocks(wg_ref, wu_ref, wd_ref, j, f, bf)
  x = x_ref[...]
  h = _swiglu(dot(x, wg), dot(x, wu)).astype(wd.dtype)
  acc_ref[...] += dot(h, wd)

  @pl.when(j == pl.num_programs(1) - 1)
  def _done():
    o_ref[...] = acc_ref[...].astype(o_ref.dtype)


def _tpu_forward(s, t, x, wg, wu, wd):
  (n, d), f = x.shape, wg.shape[1]
  bt, bf = _tpu_blocks(s, t, n, f)
  tok = pl.BlockSpec((bt, d), lambda i, j: (i, 0))
  col = pl.BlockSpec((d, bf), lambda i, j: (0, j))
  return kb.call(
    functools.partial(_tpu_fwd_kernel, f=f, bf=bf),
    t,
    name="swiglu_fwd",
    out_shape=jax.ShapeDtypeStruct((n, d), x.dtype),
    grid=(cdiv(n, bt), cdiv(f, bf)),
    in_specs=[tok, col, col, pl.BlockSpec((bf, d), lambda i, j: (j, 0))],
    out_specs=tok,
    scratch_shapes=[kb.vmem((bt, d))],
    semantics=("parallel", "arbitrary"),
  )(x, wg, wu, wd)


def _tpu_dx_kernel(x_ref, dy_ref, wg_ref, wu_ref, wd_ref, dx_ref, acc_ref, *, f, bf):
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    acc_ref[...] = jnp.zeros_like(acc_ref)

  wg, wu, wd = _width_blocks(wg_ref, wu_ref, wd_ref, j, f, bf)
  x, dy = x_ref[...], dy_ref[...]
  dg, du = _swiglu_grads(dot(x, wg), dot(x, wu), dot(dy, wd, trans_b=True))
  acc_ref[...] += dot(dg.astype(wg.dtype), wg, trans_b=True) + dot(du.astype(wu.dtype), wu, trans_b=True)

  @pl.when(j == pl.num_programs(1) - 1)
  def _done():
    dx_ref[...] = acc_ref[...].astype(dx_ref.dtype)


def _tpu_dw_kernel(x_ref, dy_ref, wg_ref, wu_ref, wd_ref, dwg_ref, dwu_ref, dwd_ref, ag_ref, au_ref, ad_ref, *, n, bt):
  i = pl.program_id(1)

  @pl.when(i == 0)
  def _init():
    for ref in (ag_ref, au_ref, ad_ref):
      ref[...] = jnp.zeros_like(ref)

  # Reduction over tokens: rows past the end of a ragged last token block must not enter the sums.
  # Garbage width columns need no masking here: they stay in their own (dropped) output columns.
  x, dy = x_ref[...], dy_ref[...]
  if n % bt:
    rows = iota((bt, 1), 0, i * bt) < n
    x, dy = zero_where_not(rows, x), zero_where_not(rows, dy)
  wg, wu, wd = wg_ref[...], wu_ref[...], wd_ref[...]
  g, u = dot(x, wg), dot(x, wu)
  dg, du = _swiglu_grads(g, u, dot(dy, wd, trans_b=True))
  ad_ref[...] += dot(_swiglu(g, u).astype(dy.dtype), dy, trans_a=True)
  ag_ref[...] += dot(x, dg.astype(x.dtype), trans_a=True)
  au_ref[...] += dot(x, du.astype(x.dtype), trans_a=True)

  @pl.when(i == pl.num_programs(1) - 1)
  def _done():
    dwg_ref[...] = ag_ref[...].astype(dwg_ref.dtype)
    dwu_ref[...] = au_ref[...].astype(dwu_ref.dtype)
    dwd_ref[...] = ad_ref[...].astype(dwd_ref.dtype)


def _tpu_backward(s, t, x, wg, wu, wd, dy):
  (n, d), f = x.shape, wg.shape[1]
  bt, bf = _tpu_blocks(s, t, n, f)
  nt, nf = cdiv(n, bt), cdiv(f, bf)
  tok = pl.BlockSpec((bt, d), lambda i, j: (i, 0))
  col = pl.BlockSpec((d, bf), lambda i, j: (0, j))
  row = pl.BlockSpec((bf, d), lambda i, j: (j, 0))
  dx = kb.call(
    functools.partial(_tpu_dx_kernel, f=f, bf=bf),
    t,
    name="swiglu_bwd_dx",
    out_shape=jax.ShapeDtypeStruct((n, d), x.dtype),
    grid=(nt, nf),
    in_specs=[tok, tok, col, col, row],
    out_specs=tok,
    scratch_shapes=[kb.vmem((bt, d))],
    semantics=("parallel", "arbitrary"),
  )(x, dy, wg, wu, wd)
  # Grid (width block, token block): the token axis is the reduction.
  tok_t = pl.BlockSpec((bt, d), lambda j, i: (i, 0))
  col_t = pl.BlockSpec((d, bf), lambda j, i: (0, j))
  row_t = pl.BlockSpec((bf, d), lambda j, i: (j, 0))
  dwg, dwu, dwd = kb.call(
    functools.partial(_tpu_dw_kernel, n=n, bt=bt),
    t,
    name="swiglu_bwd_dw",
    out_shape=[jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (wg, wu, wd)],
    grid=(nf, nt),
    in_specs=[tok_t, tok_t, col_t, col_t, row_t],
    out_specs=[col_t, col_t, row_t],
    scratch_shapes=[kb.vmem((d, bf)), kb.vmem((d, bf)), kb.vmem((bf, d))],
    semantics=("parallel", "arbitrary"),
  )(x, dy, wg, wu, wd)
  return dx, dwg, dwu, dwd


# ---- GPU family (Triton): one program per token block (dx, fwd) or width block (dW); loops inside ------
# Every tile is a power of two: d is walked in chunks of bd (gpu_block_inner) with masked loads, so a
# model width such as 1280 or 992 needs no padding. Products with a d-sized output are accumulated into
# the fp32 output in global memory, chunk by chunk (the program owns those rows/columns: no races).


def _gpu_blocks(s):
  return (s.block("ffn_block_tokens", "gpu"), s.block("ffn_block_width", "gpu"), s.block("gpu_block_inner", "gpu"))


class _Tiles:
  """Index ranges and bounds masks of one program's tiles."""

  def __init__(self, n, d, f, bt, bf, bd):
    self.n, self.d, self.f, self.bt, self.bf, self.bd = n, d, f, bt, bf, bd
    self.nd = cdiv(d, bd)

  def rows(self, i):
    return pl.ds(i * self.bt, self.bt), iota((self.bt, 1), 0, i * self.bt) < self.n

  def chunk(self, k):  # d chunk as columns (mask [1, bd]) and as rows (mask [bd, 1])
    return (
      pl.ds(k * self.bd, self.bd),
      iota((1, self.bd), 1, k * self.bd) < self.d,
      iota((self.bd, 1), 0, k * self.bd) < self.d,
    )

  def width(self, j):
    return (
      pl.ds(j * self.bf, self.bf),
      iota((1, self.bf), 1, j * self.bf) < self.f,
      iota((self.bf, 1), 0, j * self.bf) < self.f,
    )


def _gpu_recompute(tl, x_ref, dy_ref, wg_ref, wu_ref, wd_ref, i, j):
  """g, u (and dh when dy_ref is given) for token block i and width block j, looping over d chunks."""
  rs, rm = tl.rows(i)
  fs, fcm, frm = tl.width(j)

  def body(k, carry):
    ds, dcm, drm = tl.chunk(k)
    xk = kb.gpu_load(x_ref, (rs, ds), rm & dcm)
    g = carry[0] + dot(xk, kb.gpu_load(wg_ref, (ds, fs), drm & fcm))
    u = carry[1] + dot(xk, kb.gpu_load(wu_ref, (ds, fs), drm & fcm))
    if dy_ref is None:
      return g, u
    dyk = kb.gpu_load(dy_ref, (rs, ds), rm & dcm)
    return g, u, carry[2] + dot(dyk, kb.gpu_load(wd_ref, (fs, ds), frm & dcm), trans_b=True)

  zeros = jnp.zeros((tl.bt, tl.bf), jnp.float32)
  return lax.fori_loop(0, tl.nd, body, (zeros,) * (2 if dy_ref is None else 3))


def _gpu_zero(ref, rs, rm, tl):
  def body(k, c):
    ds, dcm, _ = tl.chunk(k)
    kb.gpu_store(ref, (rs, ds), jnp.zeros((tl.bt, tl.bd), jnp.float32), rm & dcm)
    return c

  lax.fori_loop(0, tl.nd, body, 0)


def _gpu_fwd_kernel(x_ref, wg_ref, wu_ref, wd_ref, o_ref, *, tl):
  i = pl.program_id(0)
  rs, rm = tl.rows(i)
  _gpu_zero(o_ref, rs, rm, tl)

  def width(j, c):
    fs, _, frm = tl.width(j)
    g, u = _gpu_recompute(tl, x_ref, None, wg_ref, wu_ref, None, i, j)
    h = _swiglu(g, u).astype(wd_ref.dtype)

    def down(k, c2):
      ds, dcm, _ = tl.chunk(k)
      acc = kb.gpu_load(o_ref, (rs, ds), rm & dcm)
      kb.gpu_store(o_ref, (rs, ds), acc + dot(h, kb.gpu_load(wd_ref, (fs, ds), frm & dcm)), rm & dcm)
      return c2

    return lax.fori_loop(0, tl.nd, down, c)

  lax.fori_loop(0, cdiv(tl.f, tl.bf), width, 0)


def _gpu_forward(s, t, x, wg, wu, wd):
  (n, d), f = x.shape, wg.shape[1]
  bt, bf, bd = _gpu_blocks(s)
  tl = _Tiles(n, d, f, bt, bf, bd)
  whole = pl.BlockSpec()
  out = kb.call(
    functools.partial(_gpu_fwd_kernel, tl=tl),
    t,
    name="swiglu_fwd",
    out_shape=jax.ShapeDtypeStruct((n, d), jnp.float32),
    grid=(cdiv(n, bt),),
    in_specs=[whole] * 4,
    out_specs=whole,
  )(x, wg, wu, wd)
  return out.astype(x.dtype)


def _gpu_dx_kernel(x_ref, dy_ref, wg_ref, wu_ref, wd_ref, dx_ref, *, tl):
  i = pl.program_id(0)
  rs, rm = tl.rows(i)
  _gpu_zero(dx_ref, rs, rm, tl)

  def width(j, c):
    fs, fcm, _ = tl.width(j)
    g, u, dh = _gpu_recompute(tl, x_ref, dy_ref, wg_ref, wu_ref, wd_ref, i, j)
    dg, du = _swiglu_grads(g, u, dh)
    dg, du = dg.astype(wg_ref.dtype), du.astype(wu_ref.dtype)

    def chunk(k, c2):
      ds, dcm, drm = tl.chunk(k)
      acc = kb.gpu_load(dx_ref, (rs, ds), rm & dcm)
      acc += dot(dg, kb.gpu_load(wg_ref, (ds, fs), drm & fcm), trans_b=True)
      acc += dot(du, kb.gpu_load(wu_ref, (ds, fs), drm & fcm), trans_b=True)
      kb.gpu_store(dx_ref, (rs, ds), acc, rm & dcm)
      return c2

    return lax.fori_loop(0, tl.nd, chunk, c)

  lax.fori_loop(0, cdiv(tl.f, tl.bf), width, 0)


def _gpu_dw_kernel(x_ref, dy_ref, wg_ref, wu_ref, wd_ref, dwg_ref, dwu_ref, dwd_ref, *, tl):
  j = pl.program_id(0)
  fs, fcm, frm = tl.width(j)

  def zero(k, c):
    ds, dcm, drm = tl.chunk(k)
    z = jnp.zeros((tl.bd, tl.bf), jnp.float32)
    kb.gpu_store(dwg_ref, (ds, fs), z, drm & fcm)
    kb.gpu_store(dwu_ref, (ds, fs), z, drm & fcm)
    kb.gpu_store(dwd_ref, (fs, ds), z.T, frm & dcm)
    return c

  lax.fori_loop(0, tl.nd, zero, 0)

  def tokens(i, c):
    rs, rm = tl.rows(i)
    g, u, dh = _gpu_recompute(tl, x_ref, dy_ref, wg_ref, wu_ref, wd_ref, i, j)
    dg, du = _swiglu_grads(g, u, dh)
    h, dg, du = _swiglu(g, u).astype(dy_ref.dtype), dg.astype(x_ref.dtype), du.astype(x_ref.dtype)

    def chunk(k, c2):
      ds, dcm, drm = tl.chunk(k)
      xk = kb.gpu_load(x_ref, (rs, ds), rm & dcm)
      dyk = kb.gpu_load(dy_ref, (rs, ds), rm & dcm)
      for ref, update, idx, m in (
        (dwg_ref, dot(xk, dg, trans_a=True), (ds, fs), drm & fcm),
        (dwu_ref, dot(xk, du, trans_a=True), (ds, fs), drm & fcm),
        (dwd_ref, dot(h, dyk, trans_a=True), (fs, ds), frm & dcm),
      ):
        kb.gpu_store(ref, idx, kb.gpu_load(ref, idx, m) + update, m)
      return c2

    return lax.fori_loop(0, tl.nd, chunk, c)

  lax.fori_loop(0, cdiv(tl.n, tl.bt), tokens, 0)


def _gpu_backward(s, t, x, wg, wu, wd, dy):
  (n, d), f = x.shape, wg.shape[1]
  bt, bf, bd = _gpu_blocks(s)
  tl = _Tiles(n, d, f, bt, bf, bd)
  whole = pl.BlockSpec()
  f32 = lambda a: jax.ShapeDtypeStruct(a.shape, jnp.float32)
  dx = kb.call(
    functools.partial(_gpu_dx_kernel, tl=tl),
    t,
    name="swiglu_bwd_dx",
    out_shape=f32(x),
    grid=(cdiv(n, bt),),
    in_specs=[whole] * 5,
    out_specs=whole,
  )(x, dy, wg, wu, wd)
  dwg, dwu, dwd = kb.call(
    functools.partial(_gpu_dw_kernel, tl=tl),
    t,
    name="swiglu_bwd_dw",
    out_shape=[f32(wg), f32(wu), f32(wd)],
    grid=(cdiv(f, bf),),
    in_specs=[whole] * 5,
    out_specs=[whole] * 3,
  )(x, dy, wg, wu, wd)
  return dx.astype(x.dtype), dwg.astype(wg.dtype), dwu.astype(wu.dtype), dwd.astype(wd.dtype)
