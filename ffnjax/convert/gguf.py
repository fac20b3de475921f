"""Llama-architecture GGUF files (llama.cpp's format) -> ffnjax run directories.

    python -m ffnjax.convert --gguf=MODEL.gguf --output=RUN_DIR

The file's tensors are read with the `gguf` package (memory-mapped) and dequantized to float32 one tensor at a
time by the numpy block decoders below (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K; any other type is refused
by name). `GGUFReader` presents them under their Hugging Face names with `CheckpointReader`'s interface, so the
safetensors import path (`ffnjax.convert.llama.load_params`) places them straight into the device shards.

llama.cpp's converter permutes the rows of q_proj/k_proj from the rotate-half RoPE layout of Hugging Face (and
ffnjax) to interleaved pairs; `unpermute_qk` undoes it exactly as transformers' GGUF loader
(`LlamaTensorProcessor._reverse_permute_weights`) does. The tokenizer is rebuilt from the `tokenizer.ggml.*`
metadata as a `tokenizers` byte-level BPE tokenizer.json (plus tokenizer_config.json naming BOS/EOS, which
lm-eval's prefix token reads) in RUN_DIR/tokenizer.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from ffnjax.convert.errors import ConvertError
from ffnjax.convert.llama import load_params
from ffnjax.convert.runs import save_import
from ffnjax.train import checkpoint

ARCHITECTURE = "llama"
# ggml block layouts: (values per block, bytes per block)
BLOCKS = {"Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q4_K": (256, 144), "Q6_K": (256, 210)}
PLAIN = ("F32", "F16", "BF16")
SUPPORTED_TYPES = PLAIN + tuple(BLOCKS)
# GGUF tensor name -> Hugging Face name ({i}: the layer)
GLOBAL_NAMES = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
}
LAYER_NAMES = {
  "attn_norm.weight": "input_layernorm.weight",
  "ffn_norm.weight": "post_attention_layernorm.weight",
  "attn_q.weight": "self_attn.q_proj.weight",
  "attn_k.weight": "self_attn.k_proj.weight",
  "attn_v.weight": "self_attn.v_proj.weight",
  "attn_output.weight": "self_attn.o_proj.weight",
  "ffn_gate.weight": "mlp.gate_proj.weight",
  "ffn_up.weight": "mlp.up_proj.weight",
  "ffn_down.weight": "mlp.down_proj.weight",
}
# llama.cpp pre-tokenizer names whose split is GPT-2's byte-level regex, optionally after splitting every digit
PRE_TOKENIZERS = {"gpt-2": False, "default": False, "smollm": True}
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values of special / added tokens
_CACHE_BYTES = 512 << 20  # dequantized tensors kept while one parameter's shards are read


# --- dequantization ------------------------------------------------------------------------------------------
def _f16(raw: np.ndarray) -> np.ndarray:
  """[..., 2] uint8 -> float32 [...] (little-endian IEEE half)."""
  return np.ascontiguousarray(raw).view("<f2")[..., 0].astype(np.float32)


def _q8_0(b: np.ndarray) -> np.ndarray:
  return _f16(b[:, :2])[:, None] * b[:, 2:].view(np.int8).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
  """[n, 16] bytes -> [n, 32]: the low nibbles are values 0..15, the high nibbles 16..31."""
  return np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.float32)


def _q4_0(b: np.ndarray) -> np.ndarray:
  return _f16(b[:, :2])[:, None] * (_nibbles(b[:, 2:]) - 8)


def _q4_1(b: np.ndarray) -> np.ndarray:
  return _f16(b[:, :2])[:, None] * _nibbles(b[:, 4:]) + _f16(b[:, 2:4])[:, None]


def _k_scales(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Q4_K's 12 bytes -> 8 six-bit scales and 8 six-bit mins (ggml's get_scale_min_k4)."""
  s = s.astype(np.uint8)
  sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)], axis=1)
  mn = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], axis=1)
  return sc.astype(np.float32), mn.astype(np.float32)


def _q4_k(b: np.ndarray) -> np.ndarray:
  n = b.shape[0]
  d, dmin = _f16(b[:, 0:2])[:, None], _f16(b[:, 2:4])[:, None]
  sc, mn = _k_scales(b[:, 4:16])
  qs = b[:, 16:].reshape(n, 4, 32)  # 4 chunks of 64 values: low nibbles = sub-block 2j, high = 2j + 1
  q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(n, 8, 32).astype(np.float32)
  return ((d * sc)[:, :, None] * q - (dmin * mn)[:, :, None]).reshape(n, 256)


def _q6_k(b: np.ndarray) -> np.ndarray:
  n = b.shape[0]
  ql = b[:, :128].reshape(n, 2, 64)
  qh = b[:, 128:192].reshape(n, 2, 32)
  sc = b[:, 192:208].view(np.int8).astype(np.float32).reshape(n, 2, 8)
  d = _f16(b[:, 208:210])[:, None, None]
  lo = [ql[:, :, :32] & 0xF, ql[:, :, 32:] & 0xF, ql[:, :, :32] >> 4, ql[:, :, 32:] >> 4]
  q = np.stack([(lo[k] | (((qh >> (2 * k)) & 3) << 4)) for k in range(4)], axis=2)  # [n, half, 4, 32]
  q = q.astype(np.float32) - 32
  scale = np.repeat(sc.reshape(n, 2, 4, 2), 16, axis=3)  # scale index = 2k + l // 16 within the half
  return (d[..., None] * scale * q).reshape(n, 256)


_DECODERS = {"Q8_0": _q8_0, "Q4_0": _q4_0, "Q4_1": _q4_1, "Q4_K": _q4_k, "Q6_K": _q6_k}


def dequantize(data: np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
  """A GGUF tensor's stored array (the `gguf` package's `ReaderTensor.data`) -> float32 of numpy `shape`."""
  if type_name == "F32":
    return np.asarray(data, np.float32).reshape(shape)
  if type_name == "F16":
    return np.asarray(data).view(np.float16).astype(np.float32).reshape(shape)
  if type_name == "BF16":
    bits = np.ascontiguousarray(data).view(np.uint16).astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)
  if type_name not in BLOCKS:
    raise ConvertError(
      f"GGUF tensor type {type_name} is not supported; ffnjax.convert --gguf reads {', '.join(SUPPORTED_TYPES)}"
    )
  per_block, nbytes = BLOCKS[type_name]
  blocks = np.ascontiguousarray(data).view(np.uint8).reshape(-1, nbytes)
  out = _DECODERS[type_name](blocks)
  if out.size != int(np.prod(shape)):
    raise ConvertError(
      f"GGUF tensor of type {type_name}: {blocks.shape[0]} blocks of {per_block} do not make shape {list(shape)}"
    )
  return out.reshape(shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
  """llama.cpp's interleaved-pair rows of q/k_proj [heads * hd, d] -> the rotate-half order (per head)."""
  dim = w.shape[0] // n_head // 2
  return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


# --- metadata -----------------------------------------------------------------------------------------------
def _value(reader, key: str, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def hf_config_of(reader, path: str) -> dict:
  """A Hugging Face LlamaForCausalLM config dict from a GGUF's `general.*`/`llama.*` metadata."""
  arch = _value(reader, "general.architecture")
  if arch != ARCHITECTURE:
    raise ConvertError(
      f"{path}: general.architecture={arch!r} is not supported; ffnjax.convert --gguf reads "
      f"{ARCHITECTURE!r} (Llama-architecture) files"
    )

  def need(key):
    value = _value(reader, f"{arch}.{key}")
    if value is None:
      raise ConvertError(f"{path}: metadata {arch}.{key} is missing")
    return value

  heads = int(need("attention.head_count"))
  d = int(need("embedding_length"))
  rope_dim = _value(reader, f"{arch}.rope.dimension_count")
  if rope_dim is not None and int(rope_dim) != d // heads:
    raise ConvertError(
      f"{path}: {arch}.rope.dimension_count={rope_dim} differs from the head size {d // heads}: "
      f"partial rotary embeddings are not supported"
    )
  scaling = _value(reader, f"{arch}.rope.scaling.type")
  if scaling not in (None, "none"):
    raise ConvertError(f"{path}: {arch}.rope.scaling.type={scaling!r} is not supported (plain RoPE only)")
  tokens = _value(reader, "tokenizer.ggml.tokens")
  names = {t.name for t in reader.tensors}
  return {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "hidden_size": d,
    "intermediate_size": int(need("feed_forward_length")),
    "num_hidden_layers": int(need("block_count")),
    "num_attention_heads": heads,
    "num_key_value_heads": int(_value(reader, f"{arch}.attention.head_count_kv", heads)),
    "rms_norm_eps": float(need("attention.layer_norm_rms_epsilon")),
    "rope_theta": float(_value(reader, f"{arch}.rope.freq_base", 10000.0)),
    "max_position_embeddings": int(need("context_length")),
    "vocab_size": int(_value(reader, f"{arch}.vocab_size", len(tokens) if tokens else 0)),
    "tie_word_embeddings": "output.weight" not in names,
    "bos_token_id": _value(reader, "tokenizer.ggml.bos_token_id"),
    "eos_token_id": _value(reader, "tokenizer.ggml.eos_token_id"),
    "torch_dtype": "float32",
  }


class GGUFReader:
  """A GGUF file's tensors under Hugging Face names, dequantized to float32 (`CheckpointReader`'s interface)."""

  def __init__(self, path: str):
    import gguf  # optional extra [gguf]: only --gguf imports need it

    self.path = path
    self.model_dir, self._file = os.path.split(os.path.abspath(path))
    self.source = self._file
    try:
      self.gguf = gguf.GGUFReader(path)
    except (OSError, ValueError) as e:
      raise ConvertError(f"{path}: not a readable GGUF file ({e})") from None
    self.hf = hf_config_of(self.gguf, path)
    self._tensors = {}
    for t in self.gguf.tensors:
      name = self._hf_name(t.name)
      if t.tensor_type.name not in SUPPORTED_TYPES:
        raise ConvertError(
          f"{path}: tensor {t.name!r} has type {t.tensor_type.name}, which is not supported; "
          f"ffnjax.convert --gguf reads {', '.join(SUPPORTED_TYPES)}"
        )
      self._tensors[name] = t
    self.weight_map = {name: self._file for name in self._tensors}
    self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

  @staticmethod
  def _hf_name(name: str) -> str:
    if name in GLOBAL_NAMES:
      return GLOBAL_NAMES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in LAYER_NAMES:
      return f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}"
    return name  # unknown: check_tensors refuses it by this name

  def close(self) -> None:
    self._cache.clear()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def names(self) -> list[str]:
    return sorted(self._tensors)

  def __contains__(self, name: str) -> bool:
    return name in self._tensors

  def file_of(self, name: str) -> str:
    return self._file

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in reversed(self._tensors[name].shape))  # ggml lists the fastest axis first

  def dtype(self, name: str) -> str:
    return "float32"

  def type_name(self, name: str) -> str:
    return self._tensors[name].tensor_type.name

  def read(self, name: str, index=None) -> np.ndarray:
    full = self._cache.get(name)
    if full is None:
      t = self._tensors[name]
      full = dequantize(t.data, t.tensor_type.name, self.shape(name))
      if name.endswith("self_attn.q_proj.weight"):
        full = unpermute_qk(full, self.hf["num_attention_heads"])
      elif name.endswith("self_attn.k_proj.weight"):
        full = unpermute_qk(full, self.hf["num_key_value_heads"])
      self._cache[name] = full
      while sum(a.nbytes for a in self._cache.values()) > _CACHE_BYTES and len(self._cache) > 1:
        self._cache.popitem(last=False)
    else:
      self._cache.move_to_end(name)
    return full if index is None else full[tuple(index)]


# --- tokenizer ----------------------------------------------------------------------------------------------
def write_tokenizer(reader, out_dir: str, path: str) -> list[str]:
  """tokenizer.json (+ tokenizer_config.json, generation_config.json) rebuilt from `tokenizer.ggml.*`."""
  kind = _value(reader, "tokenizer.ggml.model")
  if kind != "gpt2":
    raise ConvertError(
      f"{path}: tokenizer.ggml.model={kind!r} is not supported; ffnjax.convert --gguf rebuilds "
      f"'gpt2' (byte-level BPE) tokenizers"
    )
  pre = _value(reader, "tokenizer.ggml.pre", "default")
  if pre not in PRE_TOKENIZERS:
    raise ConvertError(
      f"{path}: tokenizer.ggml.pre={pre!r} is not supported; ffnjax.convert --gguf knows {sorted(PRE_TOKENIZERS)}"
    )
  tokens = list(_value(reader, "tokenizer.ggml.tokens"))
  types = list(_value(reader, "tokenizer.ggml.token_type", [1] * len(tokens)))
  merges = [tuple(m.split(" ", 1)) for m in _value(reader, "tokenizer.ggml.merges", [])]
  tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False))
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  # llama.cpp's "smollm" splits every digit before GPT-2's regex, as SmolLM2's own tokenizer.json does
  tok.pre_tokenizer = (
    pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if PRE_TOKENIZERS[pre]
    else byte_level
  )
  tok.decoder = decoders.ByteLevel()
  tok.post_processor = processors.ByteLevel(trim_offsets=False)
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL])
  tok.add_tokens([AddedToken(t, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED])
  os.makedirs(out_dir, exist_ok=True)
  tok.save(os.path.join(out_dir, "tokenizer.json"))
  ids = {k: _value(reader, f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "padding")}
  special = {f"{'pad' if k == 'padding' else k}_token": tokens[v] for k, v in ids.items() if v is not None}
  files = {
    "tokenizer_config.json": dict(
      special,
      tokenizer_class="PreTrainedTokenizerFast",
      add_bos_token=bool(_value(reader, "tokenizer.ggml.add_bos_token", False)),
      model_max_length=int(_value(reader, f"{ARCHITECTURE}.context_length", 2048)),
    ),
    "generation_config.json": {
      f"{k}_token_id": v for k, v in (("bos", ids["bos"]), ("eos", ids["eos"])) if v is not None
    },
  }
  for name, obj in files.items():
    with open(os.path.join(out_dir, name), "w") as f:
      json.dump(obj, f, indent=2)
  return ["tokenizer.json", *files]


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


# --- import -------------------------------------------------------------------------------------------------
def load_gguf(path: str, mesh=None, **load_kwargs):
  """A GGUF file -> (params, experiment config, LayerPlan, GGUFReader (closed)), like `load_hf`."""
  if not os.path.isfile(path):
    raise ConvertError(f"--gguf={path}: no such file")
  with GGUFReader(path) as reader:
    params, config, plan = load_params(reader.hf, reader, path, mesh, use_metadata=False, **load_kwargs)
  config.name = os.path.splitext(os.path.basename(path))[0]
  return params, config, plan, reader


def import_gguf_to_run_dir(path: str, run_dir: str, mesh=None, **load_kwargs) -> dict:
  """`ffnjax.convert --gguf=FILE --output=RUN_DIR`: checkpoint 0 + RUN_DIR/tokenizer rebuilt from the file."""
  if checkpoint.steps(run_dir):  # before the (slow) dequantization
    raise ConvertError(
      f"--output={run_dir} already has checkpoints {checkpoint.steps(run_dir)}; import into a new run directory"
    )
  params, config, plan, reader = load_gguf(path, mesh, **load_kwargs)
  return save_import(
    run_dir,
    params,
    config,
    plan,
    mesh,
    source=os.path.abspath(path),
    write_tokenizer=lambda out_dir: write_tokenizer(reader.gguf, out_dir, path),
    tokenizer_files=list(TOKENIZER_FILES),
  )
