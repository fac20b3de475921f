"""Fused RMSNorm: y = x * rsqrt(mean(x^2) + eps) * scale, computed in fp32, returned in x.dtype.

One program per block of rows holding whole rows (d <= a few thousand fits VMEM/SMEM). The forward saves
the per-row rsqrt [N, 1] (fp32) so the backward needs no second reduction over x^2:
  dx = r * (g*s - x r * mean(g*s * x r)),   dscale = sum_rows g * x r
dscale is reduced per row block in the kernel ([blocks, 1, d] fp32) and across blocks in XLA.
GPU tiles pad d to a power of two with masked loads; ragged row blocks are masked (GPU) or, on TPU, their
out-of-bounds rows are selected away before the dscale reduction (their stores are dropped).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ffnjax.kernels import backend as kb
from ffnjax.kernels.backend import cdiv, iota, zero_where_not


def rms_norm_reference(x, scale, *, eps=1e-5):
  xf = x.astype(jnp.float32)
  y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps) * scale.astype(jnp.float32)
  return y.astype(x.dtype)


def rms_norm_pallas(x, scale, *, eps=1e-5, config=None, platform=None):
  d = x.shape[-1]
  return _rms(kb.settings(config, platform), float(eps), x.reshape(-1, d), scale).reshape(x.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _rms(s, eps, x, scale):
  return _rms_fwd(s, eps, x, scale)[0]


def _rms_fwd(s, eps, x, scale):
  y, r = kb.dispatch(functools.partial(_forward, s, eps), s, x, scale)
  return y, (x, scale, r)


def _rms_bwd(s, eps, res, dy):
  x, scale, r = res
  dx, dscale = kb.dispatch(functools.partial(_backward, s), s, x, scale, r, dy.astype(x.dtype))
  return dx, dscale.astype(scale.dtype)


_rms.defvjp(_rms_fwd, _rms_bwd)


class _Rows:
  """Block geometry and tile access for one row block (TPU: exact d; GPU: d padded to a power of two)."""

  def __init__(self, s, target, n, d):
    self.n, self.d, self.gpu = n, d, target.family == "gpu"
    if self.gpu:
      self.bt, self.db = s.block("rms_block_tokens", "gpu"), kb.next_pow2(max(d, 16))
    else:
      self.bt, self.db = kb.fit(s, "rms_block_tokens", target, n, 8), d
    self.nb = cdiv(n, self.bt)

  def spec(self, width=None):
    return pl.BlockSpec((self.bt, width or self.db), lambda i: (i, 0))

  def row_ok(self, i, width):
    return iota((self.bt, width), 0, i * self.bt) < self.n

  def col_ok(self, rows):
    return iota((rows, self.db), 1) < self.d

  def load(self, ref, i, width=None):
    """Tile [bt, width or db] in fp32; on GPU out-of-bounds rows and columns read as 0."""
    if not self.gpu:
      return ref[...].astype(jnp.float32)
    mask = self.row_ok(i, 1) if width else self.row_ok(i, self.db) & self.col_ok(self.bt)
    return kb.gpu_load(ref, (pl.ds(0, self.bt), pl.ds(0, width or self.db)), mask).astype(jnp.float32)

  def store(self, ref, value, i, width=None):
    if not self.gpu:
      ref[...] = value.astype(ref.dtype)
      return
    mask = self.row_ok(i, 1) if width else self.row_ok(i, self.db) & self.col_ok(self.bt)
    kb.gpu_store(ref, (pl.ds(0, self.bt), pl.ds(0, width or self.db)), value, mask)

  def load_row(self, ref):  # scale [1, d]
    if not self.gpu:
      return ref[...].astype(jnp.float32)
    return kb.gpu_load(ref, (pl.ds(0, 1), pl.ds(0, self.db)), self.col_ok(1)).astype(jnp.float32)

  def store_row(self, ref, value):  # dscale partial [1, d]
    if not self.gpu:
      ref[...] = value
      return
    kb.gpu_store(ref, (pl.ds(0, 1), pl.ds(0, self.db)), value, self.col_ok(1))


def _fwd_kernel(x_ref, scale_ref, y_ref, r_ref, *, rows: _Rows, eps):
  i = pl.program_id(0)
  x = rows.load(x_ref, i)
  r = jax.lax.rsqrt(jnp.sum(x * x, axis=1, keepdims=True) / rows.d + eps)
  rows.store(y_ref, x * r * rows.load_row(scale_ref), i)
  rows.store(r_ref, r, i, width=1)


def _forward(s, eps, target, x, scale):
  (n, d) = x.shape
  rows = _Rows(s, target, n, d)
  y, r = kb.call(
    functools.partial(_fwd_kernel, rows=rows, eps=eps),
    target,
    name="rmsnorm_fwd",
    out_shape=[jax.ShapeDtypeStruct((n, d), x.dtype), jax.ShapeDtypeStruct((n, 1), jnp.float32)],
    grid=(rows.nb,),
    in_specs=[rows.spec(), pl.BlockSpec((1, rows.db), lambda i: (0, 0))],
    out_specs=[rows.spec(), rows.spec(1)],
    semantics=("parallel",),
  )(x, scale.reshape(1, d))
  return y, r


def _bwd_kernel(x_ref, scale_ref, r_ref, dy_ref, dx_ref, dscale_ref, *, rows: _Rows):
  i = pl.program_id(0)
  x, dy, r = rows.load(x_ref, i), rows.load(dy_ref, i), rows.load(r_ref, i, width=1)
  if not rows.gpu and rows.n % rows.bt:  # garbage rows of a ragged TPU block must not enter the sum
    ok = rows.row_ok(i, 1)
    x, dy, r = zero_where_not(ok, x), zero_where_not(ok, dy), zero_where_not(ok, r)
  xr, gs = x * r, dy * rows.load_row(scale_ref)
  rows.store(dx_ref, r * (gs - xr * (jnp.sum(gs * xr, axis=1, keepdims=True) / rows.d)), i)
  rows.store_row(dscale_ref, jnp.sum(dy * xr, axis=0, keepdims=True))


def _backward(s, target, x, scale, r, dy):
  (n, d) = x.shape
  rows = _Rows(s, target, n, d)
  dx, partial = kb.call(
    functools.partial(_bwd_kernel, rows=rows),
    target,
    name="rmsnorm_bwd",
    out_shape=[jax.ShapeDtypeStruct((n, d), x.dtype), jax.ShapeDtypeStruct((rows.nb, 1, d), jnp.float32)],
    grid=(rows.nb,),
    in_specs=[rows.spec(), pl.BlockSpec((1, rows.db), lambda i: (0, 0)), rows.spec(1), rows.spec()],
    out_specs=[rows.spec(), pl.BlockSpec((None, 1, rows.db), lambda i: (i, 0, 0))],
    semantics=("parallel",),
  )(x, scale.reshape(1, d), r, dy)
  return dx, jnp.sum(partial[:, 0, :], axis=0)
