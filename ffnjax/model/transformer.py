"""The heterogeneous LLaMA: embed -> one scanned module per group of identical layers -> RMSNorm -> head.

The model never looks at positions or ratios: it reads `plan.groups` and builds each group by its width
(0 = deactivated). Scanned groups stack their parameters on a leading "layers" axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from ffnjax.model.layers import REMAT_POLICIES, Block, RMSNorm, _dtype, normal_init, rope_tables
from ffnjax.parallel.constraints import constrain
from ffnjax.core.placement import LayerPlan


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
      block = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=(0, nn.broadcast,
                      nn.broadcast, nn.broadcast), length=count, metadata_params={nn.PARTITION_NAME: "layers"})
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
    embed = self.param("embed", nn.with_logical_partitioning(normal_init(cfg.init_std), ("vocab", "embed")),
                       (cfg.vocab_size, d), _dtype(cfg.param_dtype))
    x = constrain(jnp.take(embed, tokens, axis=0).astype(dt), ("batch", "length", "activation_embed"))
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    cos, sin = rope_tables(positions, cfg.head_dim or d // cfg.num_heads, cfg.rope_theta)
    mask = None
    if segments is not None:
      doc, branch = segments
      t = tokens.shape[1]
      causal = jnp.arange(t)[:, None] >= jnp.arange(t)[None, :]
      mask = (causal[None] & (doc[:, :, None] == doc[:, None, :])
              & ((branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])))
    if keep is None:
      keep = jnp.ones((plan.num_layers, 2), dt)
    elif keep.ndim == 3:  # [B, L, 2] -> [L, B, 2]: the layer axis leads, for the scan and the group slices
      keep = jnp.swapaxes(keep, 0, 1)
    for g, group in enumerate(plan.groups):
      padded = padded_width(group.width, cfg.ffn_pad_multiple)
      group_keep = keep[group.start:group.start + group.count]
      if cfg.scan_layers:
        block = self._block(group.count)(cfg, group.width, padded, name=f"group_{g}")
        x, _ = block(x, group_keep, cos, sin, mask)
      else:
        for i in range(group.count):
          x, _ = self._block(1)(cfg, group.width, padded, name=f"layer_{group.start + i}")(x, group_keep[i], cos,
                                                                                           sin, mask)
    x = RMSNorm(cfg, name="final_norm")(x)
    if return_hidden:
      return x
    logits = jnp.einsum("btd,dv->btv", x, self.head_kernel(embed).astype(dt), preferred_element_type=jnp.float32)
    return constrain(logits, ("batch", "length", "vocab"))

  def head_kernel(self, embed):
    if self.cfg.tie_embeddings:
      return embed.T
    return self.param("lm_head", nn.with_logical_partitioning(normal_init(self.cfg.init_std), ("embed", "vocab")),
                      (self.cfg.d_model, self.cfg.vocab_size), _dtype(self.cfg.param_dtype))


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
