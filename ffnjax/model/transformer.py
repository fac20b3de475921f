"""The heterogeneous LLaMA: embed -> one scanned module per group of identical layers -> RMSNorm -> head.

The model never looks at positions or ratios: it reads `plan.groups` and builds each group by its width
(0 = deactivated). Scanned groups stack their parameters on a leading "layers" axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from ffnjax.core.placement import LayerPlan
from ffnjax.model.layers import FFN, REMAT_POLICIES, Attention, Block, RMSNorm, _dtype, normal_init, rope_tables
from ffnjax.parallel.constraints import constrain


def padded_width(width: int, multiple: int) -> int:
  return 0 if width == 0 else -(-width // multiple) * multiple


class Transformer(nn.Module):
  cfg: object  # a FrozenConfigDict of model fields (ffnjax.model.default_config)
  plan: LayerPlan

  def _block(self, count: int):
    block = Block
    policy = self.cfg.remat
    if policy != "none":
      block = nn.remat(block, policy=REMAT_POLICIES[policy], prevent_cse=not self.cfg.scan_layers)
    if self.cfg.scan_layers:
      block = nn.scan(
        block,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast),
        length=count,
        metadata_params={nn.PARTITION_NAME: "layers"},
      )
    return block

  @nn.compact
  def __call__(self, tokens, keep=None, return_hidden: bool = False, positions=None, segments=None):
    """tokens int32 [B, T]; keep float [L, 2], [B, L, 2] (one mask per row) or None. Returns float32 logits
    [B, T, V] (or hidden [B, T, d]).

    Packed scoring rows (ffnjax.eval.engine) pass `positions` int32 [B, T] (rotary positions, restarting per
    segment) and `segments` = (doc, branch) int32 [B, T] each: a token attends to earlier tokens of its document
    whose branch is 0 (the shared context) or its own branch (block-causal). Training passes neither.
    """
    cfg, plan = self.cfg, self.plan
    d, dt = cfg.d_model, _dtype(cfg.dtype)
    embed = self.param(
      "embed",
      nn.with_logical_partitioning(normal_init(cfg.init_std), ("vocab", "embed")),
      (cfg.vocab_size, d),
      _dtype(cfg.param_dtype),
    )
    x = constrain(jnp.take(embed, tokens, axis=0).astype(dt), ("batch", "length", "activation_embed"))
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    cos, sin = rope_tables(positions, cfg.head_dim or d // cfg.num_heads, cfg.rope_theta)
    mask = None if segments is None else segment_mask(*segments)
    if keep is None:
      keep = jnp.ones((plan.num_layers, 2), dt)
    elif keep.ndim == 3:  # [B, L, 2] -> [L, B, 2]: the layer axis leads, for the scan and the group slices
      keep = jnp.swapaxes(keep, 0, 1)
    for g, group in enumerate(plan.groups):
      padded = padded_width(group.width, cfg.ffn_pad_multiple)
      group_keep = keep[group.start : group.start + group.count]
      if cfg.scan_layers:
        block = self._block(group.count)(cfg, group.width, padded, name=f"group_{g}")
        x, _ = block(x, group_keep, cos, sin, mask)
      else:
        for i in range(group.count):
          x, _ = self._block(1)(cfg, group.width, padded, name=f"layer_{group.start + i}")(
            x, group_keep[i], cos, sin, mask
          )
    x = RMSNorm(cfg, name="final_norm")(x)
    if return_hidden:
      return x
    logits = jnp.einsum("btd,dv->btv", x, self.head_kernel(embed).astype(dt), preferred_element_type=jnp.float32)
    return constrain(logits, ("batch", "length", "vocab"))

  def head_kernel(self, embed):
    if self.cfg.tie_embeddings:
      return embed.T
    return self.param(
      "lm_head",
      nn.with_logical_partitioning(normal_init(self.cfg.init_std), ("embed", "vocab")),
      (self.cfg.d_model, self.cfg.vocab_size),
      _dtype(self.cfg.param_dtype),
    )


def segment_mask(doc, branch):
  """bool [B, T, T] of packed rows: a token sees earlier tokens of its document in the shared context (branch 0)
  or in its own branch."""
  t = doc.shape[1]
  causal = jnp.arange(t)[:, None] >= jnp.arange(t)[None, :]
  return (
    causal[None]
    & (doc[:, :, None] == doc[:, None, :])
    & ((branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :]))
  )


# ------------------------------------------------------------------------------------------ scoring forward
#
# The scorer (ffnjax.model.make_scorer) runs the same sub-modules as Transformer/Block, but as a functional stack
# over the parameters, so that a forward pass can start at any sub-layer boundary from a residual stream computed
# earlier (prefix reuse for Shapley coalitions) and skip a sub-layer that no row of the batch keeps. Boundary b of
# a model with L layers: b = 2l is the input of layer l's attention, b = 2l + 1 the input of its FFN, b = 2L the
# output of the last layer (before the final norm); 2L + 1 boundaries in all.


def num_boundaries(plan: LayerPlan) -> int:
  return 2 * plan.num_layers + 1


def embed_tokens(cfg, params, tokens):
  x = jnp.take(params["embed"], tokens, axis=0).astype(_dtype(cfg.dtype))
  return constrain(x, ("batch", "length", "activation_embed"))


def final_norm(cfg, params, x):
  return RMSNorm(cfg).apply({"params": params["final_norm"]}, x)


def run_layers(cfg, plan: LayerPlan, params, x, keep, cos, sin, mask, start=0, collect: bool = False):
  """The layer stack from sub-layer boundary `start` (an int32 scalar, may be traced) on: x [B, T, d] is the
  residual stream there, keep float [B, L, 2]. A sub-layer runs only when it lies at or after `start` and some row
  keeps it (lax.cond on a batch-wide scalar: a real branch, no compute when skipped); rows that drop it add 0.

  With `collect`, every sub-layer runs and the result is (x, streams [2L + 1, B, T, d]): the residual stream at
  every boundary.
  """
  act = ("batch", "length", "activation_embed")
  keep = jnp.swapaxes(keep.astype(x.dtype), 0, 1)  # [L, B, 2]: the layer axis leads, for the scan

  def layer(p, x, k, index, width, padded):
    def attn(x):
      h = RMSNorm(cfg).apply({"params": p["attn_norm"]}, x)
      return constrain(x + k[:, 0, None, None] * Attention(cfg).apply({"params": p["attn"]}, h, cos, sin, mask), act)

    def ffn(x):
      h = RMSNorm(cfg).apply({"params": p["ffn_norm"]}, x)
      return constrain(x + k[:, 1, None, None] * FFN(cfg, width, padded).apply({"params": p["ffn"]}, h), act)

    def maybe(fn, x, boundary, column):
      if collect:
        return fn(x)
      return jax.lax.cond((boundary >= start) & jnp.any(k[:, column] != 0), fn, lambda x: x, x)

    before_attn = x
    x = maybe(attn, x, 2 * index, 0)
    before_ffn = x
    if width:
      x = maybe(ffn, x, 2 * index + 1, 1)
    return x, (jnp.stack([before_attn, before_ffn]) if collect else None)

  streams = []
  for g, group in enumerate(plan.groups):
    padded = padded_width(group.width, cfg.ffn_pad_multiple)
    group_keep = keep[group.start : group.start + group.count]
    if cfg.scan_layers:

      def body(x, inputs, width=group.width, padded=padded):
        p, k, index = inputs
        return layer(p, x, k, index, width, padded)

      x, ys = jax.lax.scan(
        body, x, (params[f"group_{g}"], group_keep, jnp.arange(group.start, group.start + group.count))
      )
    else:
      ys = []
      for i in group.layers:
        x, y = layer(params[f"layer_{i}"], x, group_keep[i - group.start], i, group.width, padded)
        ys.append(y)
      ys = jnp.stack(ys) if collect else None
    if collect:
      streams.append(ys.reshape((-1,) + x.shape))  # [count, 2, B, T, d] -> [2 count, B, T, d] in boundary order
  if collect:
    return x, jnp.concatenate(streams + [x[None]])
  return x


def head_from_params(params, tie_embeddings: bool):
  """The [d, V] output projection, for losses that take the hidden state (chunked cross-entropy)."""
  return params["embed"].T if tie_embeddings else params["lm_head"]


def scanned_to_unrolled(params, plan: LayerPlan):
  """Stacked `group_g/...[n, ...]` parameters -> per-layer `layer_i/...` (the unrolled debugging layout)."""
  out = {k: v for k, v in params.items() if not k.startswith("group_")}
  for g, group in enumerate(plan.groups):
    for i in range(group.count):
      out[f"layer_{group.start + i}"] = jax.tree.map(lambda a, i=i: a[i], params[f"group_{g}"])
  return out


def unrolled_to_scanned(params, plan: LayerPlan):
  out = {k: v for k, v in params.items() if not k.startswith("layer_")}
  for g, group in enumerate(plan.groups):
    layers = [params[f"layer_{i}"] for i in group.layers]
    out[f"group_{g}"] = jax.tree.map(lambda *a: jnp.stack(a), *layers)
  return out
