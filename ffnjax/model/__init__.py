"""The model: config, construction, sharded initialisation and jitted forward functions."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from ffnjax import kernels
from ffnjax.core.errors import ConfigError
from ffnjax.core.placement import LayerPlan, ModelDims
from ffnjax.eval.engine import HiddenScorer, PrefixReuse
from ffnjax.model.layers import REMAT_POLICIES, rope_tables
from ffnjax.model.transformer import (
  Transformer,
  embed_tokens,
  final_norm,
  head_from_params,
  num_boundaries,
  padded_width,
  run_layers,
  scanned_to_unrolled,
  segment_mask,
  unrolled_to_scanned,
)
from ffnjax.parallel.rules import logical_sharding

__all__ = [
  "default_config",
  "validate",
  "build",
  "Transformer",
  "param_shapes",
  "param_shardings",
  "placed_param_shapes",
  "init_params",
  "make_logits_fn",
  "make_scorer",
  "head_from_params",
  "padded_width",
  "scanned_to_unrolled",
  "unrolled_to_scanned",
]

DTYPES = ("float32", "bfloat16", "float16")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      vocab_size=50257,
      num_layers=12,
      d_model=1280,
      d_ff=4480,
      num_heads=20,
      num_kv_heads=0,  # 0 = num_heads; fewer = grouped-query attention
      head_dim=0,  # 0 = d_model // num_heads
      rope_theta=10000.0,
      norm_eps=1e-5,
      init_std=0.02,
      param_dtype="float32",
      dtype="bfloat16",  # fp32 master weights, bf16 compute
      tie_embeddings=False,
      scan_layers=True,  # False = one module per layer (debugging; same outputs, per-layer parameter names)
      remat="full",  # one of REMAT_POLICIES
      ffn_pad_multiple=128,  # FFN widths are zero-padded to this multiple for kernels and sharding
      kernels=kernels.default_config(),
    )
  )


# One line per field of default_config() (kernels.*: ffnjax.kernels.config.HELP); `--show_config` prints it.
HELP = {
  "vocab_size": "vocabulary size (embedding and output-head rows)",
  "num_layers": "transformer layers L",
  "d_model": "model width d",
  "d_ff": "standard SwiGLU FFN width d_f (expanded layers get d_ff' from the placement)",
  "num_heads": "attention (query) heads",
  "num_kv_heads": "key/value heads (0 = num_heads; fewer = grouped-query attention)",
  "head_dim": "per-head width (0 = d_model // num_heads)",
  "rope_theta": "RoPE base frequency",
  "norm_eps": "RMSNorm epsilon",
  "init_std": "standard deviation of the normal parameter initialisation",
  "param_dtype": "parameter (master-weight) dtype: float32 | bfloat16 | float16",
  "dtype": "compute dtype: float32 | bfloat16 | float16",
  "tie_embeddings": "output head shares the embedding matrix",
  "scan_layers": "scan over groups of identical layers (False = one module per layer; same outputs)",
  "remat": "activation rematerialisation: none | full | save_dots",
  "ffn_pad_multiple": "FFN widths are zero-padded to this multiple (kernels, sharding); exact",
}


def validate(model_cfg) -> None:
  for field in ("param_dtype", "dtype"):
    if model_cfg[field] not in DTYPES:
      raise ConfigError(f"model.{field}={model_cfg[field]!r}: must be one of {DTYPES}")
  if model_cfg.remat not in REMAT_POLICIES:
    raise ConfigError(f"model.remat={model_cfg.remat!r}: must be one of {tuple(REMAT_POLICIES)}")
  if model_cfg.ffn_pad_multiple < 1:
    raise ConfigError(f"model.ffn_pad_multiple={model_cfg.ffn_pad_multiple}: must be >= 1")
  if model_cfg.rope_theta <= 0:
    raise ConfigError(f"model.rope_theta={model_cfg.rope_theta}: must be > 0")
  if model_cfg.norm_eps <= 0:
    raise ConfigError(f"model.norm_eps={model_cfg.norm_eps}: must be > 0")
  if model_cfg.init_std <= 0:
    raise ConfigError(f"model.init_std={model_cfg.init_std}: must be > 0")
  ModelDims.from_config(model_cfg)  # heads, d_model, head_dim: the one check (core.placement)


def build(model_cfg, plan: LayerPlan) -> Transformer:
  return Transformer(ml_collections.FrozenConfigDict(model_cfg), plan)


def _init_fn(model: Transformer, seq_len: int = 8):
  def init(rng):
    return model.init(rng, jnp.zeros((1, seq_len), jnp.int32))["params"]

  return init


def param_shapes(model: Transformer):
  """(unboxed ShapeDtypeStructs, logical-name tuples) of every parameter, without allocating."""
  boxed = jax.eval_shape(_init_fn(model), jax.random.key(0))
  names = jax.tree.map(lambda p: tuple(p.names), boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  return nn.unbox(boxed), names


def param_shardings(model: Transformer, mesh):
  shapes, names = param_shapes(model)
  is_names = lambda x: isinstance(x, tuple) and all(isinstance(n, (str, type(None))) for n in x)
  return jax.tree.map(lambda n, s: logical_sharding(n, s.shape, mesh), names, shapes, is_leaf=is_names)


def placed_param_shapes(model: Transformer, mesh=None):
  """(shapes, shardings) of every parameter: the logical-rule shardings on `mesh`, else the first device."""
  shapes, _ = param_shapes(model)
  if mesh is None:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return shapes, jax.tree.map(lambda _: device, shapes)
  return shapes, param_shardings(model, mesh)


def init_params(model: Transformer, rng, mesh=None):
  """Parameters created directly in their shards (jit with out_shardings), so no host holds the full model."""
  init = lambda r: nn.unbox(_init_fn(model)(r))
  if mesh is None:
    return jax.jit(init)(rng)
  with jax.set_mesh(mesh):
    return jax.jit(init, out_shardings=param_shardings(model, mesh))(rng)


def make_logits_fn(config, plan: LayerPlan, params, mesh=None, with_keep: bool = False):
  """A jitted `logits_fn(tokens[B, T]) -> float32 logits` closed over params (evaluator / notebooks).

  With `with_keep`, the function is `logits_fn(tokens, keep[L, 2])`: one compiled program for every keep mask.
  """
  model = build(config.model, plan)

  def forward(p, tokens, keep):
    return model.apply({"params": p}, tokens, keep=keep)

  jitted = jax.jit(forward)

  def call(tokens, keep=None):
    tokens = jnp.asarray(tokens, jnp.int32)
    if keep is None:
      keep = jnp.ones((plan.num_layers, 2), jnp.float32)
    if mesh is None:
      return jitted(params, tokens, keep)
    with jax.set_mesh(mesh):
      return jitted(params, tokens, keep)

  if with_keep:
    call.jitted = jitted  # exposes _cache_size() so callers can assert one compilation for all coalitions
    return call
  fn = functools.partial(call, keep=None)
  fn.jitted = jitted
  return fn


def make_scorer(config, plan: LayerPlan, params, mesh=None):
  """The evaluator's fast path (ffnjax.eval.engine.HiddenScorer): final hidden states of packed rows under keep
  masks [B, L, 2], and the output head applied only at scored positions. Its prefix-reuse programs start a forward
  pass at any sub-layer boundary from the full model's residual streams (Shapley coalitions that keep every
  sub-layer below their first removed one); one compiled program each, whatever the start."""
  cfg = build(config.model, plan).cfg
  head_dim = cfg.head_dim or cfg.d_model // cfg.num_heads

  def tables(positions, doc, branch):
    cos, sin = rope_tables(positions, head_dim, cfg.rope_theta)
    return cos, sin, segment_mask(doc, branch)

  def hidden(p, tokens, positions, doc, branch, keep):
    x = run_layers(cfg, plan, p, embed_tokens(cfg, p, tokens), keep, *tables(positions, doc, branch))
    return final_norm(cfg, p, x)

  def streams(p, tokens, positions, doc, branch):
    keep = jnp.ones(tokens.shape[:1] + (plan.num_layers, 2), jnp.float32)
    return run_layers(cfg, plan, p, embed_tokens(cfg, p, tokens), keep, *tables(positions, doc, branch), collect=True)[
      1
    ]

  def hidden_from(p, streams, rows, start, positions, doc, branch, keep):
    x = jnp.take(jax.lax.dynamic_index_in_dim(streams, start, keepdims=False), rows, axis=0)
    return final_norm(cfg, p, run_layers(cfg, plan, p, x, keep, *tables(positions, doc, branch), start=start))

  def on_mesh(fn):
    jitted = jax.jit(fn)

    def call(*args):
      if mesh is None:
        return jitted(params, *args)
      with jax.set_mesh(mesh):
        return jitted(params, *args)

    call.jitted = jitted
    return call

  row_bytes = lambda t: num_boundaries(plan) * t * cfg.d_model * jnp.dtype(cfg.dtype).itemsize
  prefix = PrefixReuse(on_mesh(streams), on_mesh(hidden_from), tuple(w > 0 for w in plan.widths), row_bytes)
  return HiddenScorer(
    on_mesh(hidden), head_from_params(params, config.model.tie_embeddings), plan.num_layers, mesh=mesh, prefix=prefix
  )
