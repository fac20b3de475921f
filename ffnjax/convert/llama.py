"""LlamaForCausalLM / MistralForCausalLM safetensors <-> ffnjax parameters.

Layouts (HF `nn.Linear.weight` is [out, in]; ffnjax kernels are [in, out]; scanned groups add a leading layer axis):

    HF tensor (model.layers.{i}.)        shape          ffnjax leaf (group_g/)   shape
    self_attn.q_proj.weight              [H*hd, d]      attn/wq                  [d, H, hd]
    self_attn.k_proj.weight / v_proj     [KV*hd, d]     attn/wk / wv             [d, KV, hd]
    self_attn.o_proj.weight              [d, H*hd]      attn/wo                  [H, hd, d]
    mlp.gate_proj.weight / up_proj       [f, d]         ffn/w_gate / w_up        [d, f_pad]   zero columns f..f_pad
    mlp.down_proj.weight                 [d, f]         ffn/w_down               [f_pad, d]   zero rows f..f_pad
    input_layernorm.weight               [d]            attn_norm/scale          [d]
    post_attention_layernorm.weight      [d]            ffn_norm/scale           [d]
    model.embed_tokens.weight            [V, d]         embed                    [V, d]
    model.norm.weight                    [d]            final_norm/scale         [d]
    lm_head.weight                       [V, d]         lm_head                  [d, V]       absent when tied

Hugging Face's Llama and Mistral store q/k in the rotate-half order that their (and ffnjax's) RoPE uses, so no
head permutation is needed (the logit tests check this numerically).

Import reads each tensor slice by slice straight into the device shards that need it
(`jax.make_array_from_callback` with the shardings of `ffnjax.model.param_shardings`): a host never holds more
than its own shards of one parameter, so a model larger than one device loads onto a mesh.

Export policy for heterogeneous layer plans (expanded / deactivated layers): EXACT. LlamaForCausalLM has one
`intermediate_size`, so every layer is exported at the widest FFN width of the plan: an expanded layer exactly,
a narrower FFN with zero rows/columns, and a deactivated layer's FFN as all-zero weights (SwiGLU of zero weights
outputs exactly 0, so the Hugging Face model computes the same function). Its `post_attention_layernorm` is a
dummy of ones: it has no ffnjax counterpart and does not change the (zero) output. The cost is
`n_deactivated * (3 * d * width + d)` extra parameters (and bytes at the export dtype); `export_hf` returns and
logs it. config.json carries an "ffnjax" block (position, ratio, d_ff, widths), from which `load_hf` restores the
original plan (checking that every dropped weight is exactly zero), so export -> import is bitwise identical.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from ffnjax import model as model_lib
from ffnjax.convert import hf_config
from ffnjax.convert.errors import ConvertError
from ffnjax.convert.safetensors_io import INDEX_FILE, SINGLE_FILE, CheckpointReader, StreamingWriter, np_dtype
from ffnjax.core import rundir
from ffnjax.core.placement import LayerPlan

log = logging.getLogger(__name__)

IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # buffers that old checkpoints saved; recomputed from rope_theta

# ffnjax per-layer leaf -> (HF tensor under model.layers.{i}., layout kind)
LAYER_TENSORS = {
  ("attn_norm", "scale"): ("input_layernorm.weight", "vector"),
  ("attn", "wq"): ("self_attn.q_proj.weight", "qkv"),
  ("attn", "wk"): ("self_attn.k_proj.weight", "qkv"),
  ("attn", "wv"): ("self_attn.v_proj.weight", "qkv"),
  ("attn", "wo"): ("self_attn.o_proj.weight", "o"),
  ("ffn_norm", "scale"): ("post_attention_layernorm.weight", "vector"),
  ("ffn", "w_gate"): ("mlp.gate_proj.weight", "ffn_in"),
  ("ffn", "w_up"): ("mlp.up_proj.weight", "ffn_in"),
  ("ffn", "w_down"): ("mlp.down_proj.weight", "ffn_out"),
}
FFN_LEAVES = (("ffn_norm", "scale"), ("ffn", "w_gate"), ("ffn", "w_up"), ("ffn", "w_down"))
EMBED, FINAL_NORM, LM_HEAD = "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"


def layer_name(i: int, suffix: str) -> str:
  return f"model.layers.{i}.{suffix}"


# --- expected Hugging Face shapes -------------------------------------------------------------------------
def hf_shapes(hf: dict, plan: LayerPlan) -> dict[str, tuple[int, ...]]:
  """Every tensor the checkpoint must hold, with its shape as config.json implies."""
  dims = plan.dims
  d, hd, v = dims.d_model, dims.head_size, dims.vocab_size
  f = int(hf["intermediate_size"])
  per_layer = {
    "input_layernorm.weight": (d,),
    "post_attention_layernorm.weight": (d,),
    "self_attn.q_proj.weight": (dims.num_heads * hd, d),
    "self_attn.k_proj.weight": (dims.kv_heads * hd, d),
    "self_attn.v_proj.weight": (dims.kv_heads * hd, d),
    "self_attn.o_proj.weight": (d, dims.num_heads * hd),
    "mlp.gate_proj.weight": (f, d),
    "mlp.up_proj.weight": (f, d),
    "mlp.down_proj.weight": (d, f),
  }
  shapes = {EMBED: (v, d), FINAL_NORM: (d,)}
  if not dims.tie_embeddings:
    shapes[LM_HEAD] = (v, d)
  for i in range(dims.num_layers):
    for suffix, shape in per_layer.items():
      shapes[layer_name(i, suffix)] = shape
  return shapes


_IMPLIED_BY = {
  "q_proj": "num_attention_heads * head_dim, hidden_size",
  "k_proj": "num_key_value_heads * head_dim, hidden_size",
  "v_proj": "num_key_value_heads * head_dim, hidden_size",
  "o_proj": "hidden_size, num_attention_heads * head_dim",
  "gate_proj": "intermediate_size, hidden_size",
  "up_proj": "intermediate_size, hidden_size",
  "down_proj": "hidden_size, intermediate_size",
  "embed_tokens": "vocab_size, hidden_size",
  "lm_head": "vocab_size, hidden_size",
  "norm": "hidden_size",
  "layernorm": "hidden_size",
}


def check_tensors(reader: CheckpointReader, expected: dict[str, tuple[int, ...]], tied: bool) -> None:
  """Missing, mis-shaped and unexpected tensors -> ConvertError naming the tensor and its file."""
  for name, shape in expected.items():
    if name not in reader:
      where = getattr(reader, "source", None) or ("the index" if reader.weight_map is not None else SINGLE_FILE)
      raise ConvertError(f"{reader.model_dir}: tensor {name!r} is missing (not in {where})")
    got = reader.shape(name)
    if got != shape:
      implied = next((v for k, v in _IMPLIED_BY.items() if k in name), "")
      raise ConvertError(
        f"{os.path.join(reader.model_dir, reader.file_of(name))}: tensor {name!r} has shape "
        f"{list(got)} but config.json implies {list(shape)} ({implied})"
      )
  allowed = set(expected) | ({LM_HEAD} if tied else set())
  for name in reader.names():
    if name not in allowed and not name.endswith(IGNORED_SUFFIXES):
      raise ConvertError(
        f"{os.path.join(reader.model_dir, reader.file_of(name))}: unexpected tensor {name!r} "
        f"(e.g. a bias or a layer beyond num_hidden_layers): ignoring it would not import the "
        f"model exactly"
      )


# --- slice readers: HF tensor -> a block of the ffnjax per-layer leaf ------------------------------------
def _bounds(s: slice, n: int) -> tuple[int, int]:
  start, stop, step = s.indices(n)
  if step != 1:
    raise ValueError(f"strided shard index {s}")
  return start, stop


def read_block(
  reader: CheckpointReader,
  name: str,
  kind: str,
  index: tuple[slice, ...],
  shape: tuple[int, ...],
  head_dim: int,
  width: int,
) -> np.ndarray:
  """The block `index` of the ffnjax per-layer leaf of `shape`, read from HF tensor `name` (only what it needs)."""
  if kind == "vector":
    return reader.read(name, index)
  if kind == "embed":
    return reader.read(name, index)
  if kind == "lm_head":  # ffnjax [d, V] <- HF [V, d]
    return reader.read(name, (index[1], index[0])).T
  if kind == "qkv":  # ffnjax [d, heads, hd] <- HF [heads * hd, d]
    h0, h1 = _bounds(index[1], shape[1])
    block = reader.read(name, (slice(h0 * head_dim, h1 * head_dim), index[0]))
    return block.reshape(h1 - h0, head_dim, -1).transpose(2, 0, 1)[:, :, index[2]]
  if kind == "o":  # ffnjax [H, hd, d] <- HF [d, H * hd]
    h0, h1 = _bounds(index[0], shape[0])
    block = reader.read(name, (index[2], slice(h0 * head_dim, h1 * head_dim)))
    return block.T.reshape(h1 - h0, head_dim, -1)[:, index[1], :]
  if kind == "ffn_in":  # ffnjax [d, f_pad] <- HF [f, d]; columns >= width are zero padding
    f0, f1 = _bounds(index[1], shape[1])
    d0, d1 = _bounds(index[0], shape[0])
    out = np.zeros((d1 - d0, f1 - f0), reader_dtype(reader, name))
    if min(f1, width) > f0:
      out[:, : min(f1, width) - f0] = reader.read(name, (slice(f0, min(f1, width)), index[0])).T
    return out
  if kind == "ffn_out":  # ffnjax [f_pad, d] <- HF [d, f]; rows >= width are zero padding
    f0, f1 = _bounds(index[0], shape[0])
    d0, d1 = _bounds(index[1], shape[1])
    out = np.zeros((f1 - f0, d1 - d0), reader_dtype(reader, name))
    if min(f1, width) > f0:
      out[: min(f1, width) - f0] = reader.read(name, (index[1], slice(f0, min(f1, width)))).T
    return out
  raise AssertionError(kind)


def reader_dtype(reader: CheckpointReader, name: str) -> np.dtype:
  return np_dtype(reader.dtype(name))


def check_dropped(reader: CheckpointReader, plan: LayerPlan, intermediate: int) -> None:
  """For a plan restored from the "ffnjax" block: weights the plan has no place for must be exactly zero."""
  for i, width in enumerate(plan.widths):
    if width >= intermediate:
      continue
    for suffix, rows in (("mlp.gate_proj.weight", True), ("mlp.up_proj.weight", True), ("mlp.down_proj.weight", False)):
      name = layer_name(i, suffix)
      index = (slice(width, intermediate), slice(None)) if rows else (slice(None), slice(width, intermediate))
      if np.any(reader.read(name, index) != 0):
        what = "deactivated" if width == 0 else f"width {width}"
        raise ConvertError(
          f"{os.path.join(reader.model_dir, reader.file_of(name))}: tensor {name!r} is non-zero "
          f"beyond the layer's FFN width, but the config.json '{hf_config.METADATA_KEY}' block "
          f"says layer {i + 1} is {what}; pass use_metadata=False to import every layer as "
          f"standard (width {intermediate})"
        )


# --- import ------------------------------------------------------------------------------------------------
def load_hf(
  model_dir: str,
  mesh=None,
  *,
  param_dtype: str | None = None,
  dtype: str | None = None,
  seq_len: int | None = None,
  use_metadata: bool = True,
):
  """A local LlamaForCausalLM/MistralForCausalLM directory -> (params, experiment config, LayerPlan).

  Parameters are placed on `mesh` with `ffnjax.model.param_shardings` (or on the first device), each read tensor
  by tensor into its shards. `param_dtype`/`dtype` default to the checkpoint's dtype; `seq_len` sets
  data.seq_len (default max_position_embeddings, capped at a Mistral sliding window); `use_metadata` restores
  the layer plan of an ffnjax export (see the module docstring).
  """
  hf = hf_config.read_config(model_dir)
  with CheckpointReader(model_dir) as reader:
    return load_params(
      hf, reader, model_dir, mesh, param_dtype=param_dtype, dtype=dtype, seq_len=seq_len, use_metadata=use_metadata
    )


def load_params(
  hf: dict,
  reader,
  model_dir: str,
  mesh=None,
  *,
  param_dtype: str | None = None,
  dtype: str | None = None,
  seq_len: int | None = None,
  use_metadata: bool = True,
):
  """`load_hf` on an open reader of Hugging Face-named tensors (a `CheckpointReader` or the GGUF one)."""
  ckpt_dtype = reader.dtype(EMBED) if EMBED in reader else None
  config, plan = hf_config.to_ffnjax(
    hf,
    model_dir,
    param_dtype=param_dtype,
    dtype=dtype,
    seq_len=seq_len,
    checkpoint_dtype=ckpt_dtype,
    use_metadata=use_metadata,
  )
  check_tensors(reader, hf_shapes(hf, plan), plan.dims.tie_embeddings)
  if use_metadata and hf.get(hf_config.METADATA_KEY):
    check_dropped(reader, plan, int(hf["intermediate_size"]))
  shapes, shardings = model_lib.placed_param_shapes(model_lib.build(config.model, plan), mesh)
  target = np_dtype(config.model.param_dtype)
  head_dim = plan.dims.head_size

  def make(path, shape_struct, sharding):
    keys = tuple(getattr(k, "key", getattr(k, "name", None)) for k in path)
    fetch = _fetcher(reader, keys, plan, shape_struct.shape, head_dim)
    cache: dict = {}

    def callback(index):
      key = tuple(_bounds(s, n) for s, n in zip(index, shape_struct.shape))
      if key not in cache:  # replicated shards share one read
        cache[key] = np.ascontiguousarray(fetch(tuple(index)).astype(target, copy=False))
      return cache[key]

    return jax.make_array_from_callback(shape_struct.shape, sharding, callback)

  params = jax.tree_util.tree_map_with_path(make, shapes, shardings)
  return params, config, plan


def _fetcher(
  reader, keys: tuple, plan: LayerPlan, shape: tuple[int, ...], head_dim: int
) -> Callable[[tuple], np.ndarray]:
  """index over the ffnjax leaf -> numpy block, for the leaf at `keys`."""
  if keys == ("embed",):
    return lambda index: read_block(reader, EMBED, "embed", index, shape, head_dim, 0)
  if keys == ("lm_head",):
    return lambda index: read_block(reader, LM_HEAD, "lm_head", index, shape, head_dim, 0)
  if keys == ("final_norm", "scale"):
    return lambda index: read_block(reader, FINAL_NORM, "vector", index, shape, head_dim, 0)
  top = keys[0]
  if not top.startswith("group_") or keys[1:] not in LAYER_TENSORS:
    raise AssertionError(f"no Hugging Face tensor for ffnjax parameter {'/'.join(keys)}")
  group = plan.groups[int(top[len("group_") :])]
  suffix, kind = LAYER_TENSORS[keys[1:]]

  def fetch(index):
    l0, l1 = _bounds(index[0], shape[0])
    blocks = [
      read_block(reader, layer_name(group.start + j, suffix), kind, index[1:], shape[1:], head_dim, group.width)
      for j in range(l0, l1)
    ]
    return np.stack(blocks)

  return fetch


# --- export ------------------------------------------------------------------------------------------------
def _host(x) -> np.ndarray:
  """A (possibly sharded, possibly multi-host) array as one numpy array on this host."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def _layer_params(params, plan: LayerPlan, i: int):
  """Layer i's parameter subtree (per-layer arrays, still on device), from the scanned or the unrolled layout."""
  if f"layer_{i}" in params:
    return params[f"layer_{i}"], None
  for g, group in enumerate(plan.groups):
    if i in group.layers:
      return params[f"group_{g}"], i - group.start
  raise AssertionError(i)


def export_hf(params, config, plan: LayerPlan, output_dir: str, *, dtype: str | None = None) -> dict:
  """ffnjax parameters -> `output_dir/{config.json, model.safetensors}` in the LlamaForCausalLM format.

  Streams one tensor at a time to the file. Heterogeneous plans are exported exactly (module docstring).
  Returns a summary: exported and plan parameter counts, the padding overhead, bytes written.
  """
  dtype = dtype or config.model.param_dtype
  if dtype not in ("float32", "bfloat16", "float16"):
    raise ConvertError(f"export dtype={dtype!r}: must be one of float32, bfloat16, float16")
  out_dt = np_dtype(dtype)
  hf, width = hf_config.from_ffnjax(config, plan, dtype)
  dims = plan.dims
  d, tied = dims.d_model, dims.tie_embeddings
  shapes = hf_shapes(hf, plan)
  order = [EMBED] + [layer_name(i, s) for i in range(dims.num_layers) for s, _ in LAYER_TENSORS.values()]
  order += [FINAL_NORM] + ([] if tied else [LM_HEAD])
  stale = os.path.join(output_dir, INDEX_FILE)
  if os.path.exists(stale):  # transformers would read the index and its shards, not the new single file
    raise ConvertError(f"{stale} exists: export into an empty directory (or remove the old sharded checkpoint)")
  writer = None
  if jax.process_index() == 0:
    os.makedirs(output_dir, exist_ok=True)
    writer = StreamingWriter(os.path.join(output_dir, SINGLE_FILE), [(n, shapes[n], dtype) for n in order])
  try:

    def put(name, array):
      if writer is not None:
        writer.write(name, np.asarray(array).astype(out_dt, copy=False))

    put(EMBED, _host(params["embed"]))
    for i, w in enumerate(plan.widths):
      tree, j = _layer_params(params, plan, i)
      get = (lambda a: _host(a)) if j is None else (lambda a, j=j: _host(a[j]))
      for key, (suffix, kind) in LAYER_TENSORS.items():
        name = layer_name(i, suffix)
        if key in FFN_LEAVES and w == 0:  # deactivated: an exact zero FFN behind a dummy norm of ones
          put(name, np.ones(d, out_dt) if kind == "vector" else np.zeros(shapes[name], out_dt))
          continue
        a = get(tree[key[0]][key[1]])
        if kind == "qkv":
          a = a.transpose(1, 2, 0).reshape(-1, d)
        elif kind == "o":
          a = a.reshape(-1, d).T
        elif kind == "ffn_in":  # [d, f_pad] -> [F, d]
          a = _unpad(a, w, width, f"layer {i + 1} {'/'.join(key)}").T
        elif kind == "ffn_out":  # [f_pad, d] -> [d, F]
          a = _unpad(a.T, w, width, f"layer {i + 1} {'/'.join(key)}")
        put(name, a)
    put(FINAL_NORM, _host(params["final_norm"]["scale"]))
    if not tied:
      put(LM_HEAD, _host(params["lm_head"]).T)
  except BaseException:
    if writer is not None:
      writer.abort()
    raise
  if writer is not None:
    writer.close()
    rundir.write_json(rundir.join(output_dir, hf_config.CONFIG_FILE), hf)
  exported = hf_config.exported_param_count(plan, width)
  summary = {
    "output": output_dir,
    "dtype": dtype,
    "intermediate_size": width,
    "params_exported": exported,
    "params_plan": plan.param_count(),
    "params_padding": exported - plan.param_count(),
    "bytes_padding": (exported - plan.param_count()) * out_dt.itemsize,
    "bytes": writer.total_bytes if writer is not None else None,
  }
  if summary["params_padding"]:
    log.warning(
      "exported %s exactly as an all-standard LlamaForCausalLM of intermediate_size=%d: %s extra "
      "parameters (%s at %s) hold zero FFNs of deactivated layers / zero padding; deactivated layers' "
      "post_attention_layernorm is a dummy of ones",
      plan.name,
      width,
      f"{summary['params_padding']:,}",
      hf_config.describe_bytes(summary["bytes_padding"]),
      dtype,
    )
  return summary


def _unpad(a: np.ndarray, width: int, target: int, what: str) -> np.ndarray:
  """a [d, f_pad] -> [d, target]: the true `width` columns, zero columns up to `target` (checks the padding)."""
  if np.any(a[:, width:] != 0):
    raise ConvertError(
      f"{what}: the zero padding beyond the FFN width {width} is non-zero, so no exact export "
      f"exists (the model computes with it)"
    )
  out = np.zeros((a.shape[0], target), a.dtype)
  out[:, :width] = a[:, :width]
  return out
