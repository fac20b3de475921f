"""Hugging Face `config.json` (LlamaForCausalLM / MistralForCausalLM) <-> ffnjax experiment config + LayerPlan.

Both the transformers 4.x layout (`rope_theta`, `rope_scaling`, `torch_dtype`) and the 5.x layout
(`rope_parameters`, `dtype`) are read; exports write both, so either major version loads them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from ffnjax.convert.errors import ConvertError
from ffnjax.core.placement import BASELINE, LayerPlan, ModelDims, PlanError
from ffnjax.train import experiment

CONFIG_FILE = "config.json"
ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral"}
MODEL_TYPES = tuple(sorted(set(ARCHITECTURES.values())))
METADATA_KEY = "ffnjax"  # our block in an exported config.json: the layer plan, so an import restores it exactly
METADATA_FORMAT = 1
# `data.tokenizer` of an imported config: the directory holding the model's Hugging Face tokenizer files.
TOKENIZER_SPEC_PREFIX = "hf:"
_ACTIVATIONS = ("silu", "swish")  # the same function in transformers' ACT2FN
_DTYPES = ("float32", "bfloat16", "float16")


def read_config(model_dir: str) -> dict:
  """config.json of a Llama/Mistral directory; ConvertError naming the file/field otherwise."""
  if not os.path.isdir(model_dir):
    raise ConvertError(f"{model_dir}: not a directory (expected a local Hugging Face model directory)")
  path = os.path.join(model_dir, CONFIG_FILE)
  if not os.path.exists(path):
    raise ConvertError(f"{model_dir}: not a Hugging Face model directory (no {CONFIG_FILE})")
  try:
    with open(path) as f:
      hf = json.load(f)
  except ValueError as e:
    raise ConvertError(f"{path}: not valid JSON: {e}") from None
  if not isinstance(hf, dict):
    raise ConvertError(f"{path}: expected a JSON object")
  archs = hf.get("architectures")
  model_type = hf.get("model_type")
  if archs is None and model_type is None and isinstance(hf.get("model"), dict) and "data" in hf:
    raise ConvertError(
      f"{model_dir}: an ffnjax run directory, not a Hugging Face model; pass it as --workdir=/--checkpoint={model_dir}"
    )
  if archs is not None:
    if not isinstance(archs, list) or len(archs) != 1 or archs[0] not in ARCHITECTURES:
      raise ConvertError(
        f"{path}: architectures={archs!r} is not supported; ffnjax.convert reads {sorted(ARCHITECTURES)}"
      )
    if model_type is not None and model_type != ARCHITECTURES[archs[0]]:
      raise ConvertError(
        f"{path}: model_type={model_type!r} does not match architectures={archs!r} "
        f"(expected model_type={ARCHITECTURES[archs[0]]!r})"
      )
  elif model_type not in MODEL_TYPES:
    raise ConvertError(
      f"{path}: model_type={model_type!r} is not supported (and no 'architectures'); "
      f"ffnjax.convert reads model_type in {MODEL_TYPES}"
    )
  return hf


def _field(hf: dict, name: str, path: str, default=None, required: bool = False):
  value = hf.get(name)
  value = default if value is None else value
  if value is None and required:
    raise ConvertError(f"{path}: missing field {name!r}")
  return value


# ffnjax's model fields -> this file's, for messages of checks shared with ffnjax.core.placement.
_HF_NAMES = (
  ("model.num_kv_heads", "num_key_value_heads"),
  ("model.num_heads", "num_attention_heads"),
  ("model.d_model", "hidden_size"),
  ("model.head_dim", "head_dim"),
)


def _hf_names(message: str) -> str:
  for ours, theirs in _HF_NAMES:
    message = message.replace(ours, theirs)
  return message


def _int_field(hf: dict, name: str, path: str, default=None) -> int:
  value = _field(hf, name, path, default, required=True)
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ConvertError(f"{path}: {name}={value!r} must be an integer >= 1")
  return value


def rope_theta(hf: dict, path: str) -> float:
  """The RoPE base; ConvertError for any scaled or partial rotary embedding (field named)."""
  params = hf.get("rope_parameters")
  scaling = hf.get("rope_scaling")
  theta = hf.get("rope_theta")
  for field, spec in (("rope_parameters", params), ("rope_scaling", scaling)):
    if spec is None:
      continue
    if not isinstance(spec, dict):
      raise ConvertError(f"{path}: {field}={spec!r} must be an object or null")
    kind = spec.get("rope_type", spec.get("type", "default"))
    if kind != "default":
      raise ConvertError(
        f"{path}: {field}.rope_type={kind!r} (RoPE scaling) is not supported; ffnjax has plain "
        f"RoPE only ({field} must be null or rope_type 'default')"
      )
    if spec.get("partial_rotary_factor", 1.0) != 1.0:
      raise ConvertError(
        f"{path}: {field}.partial_rotary_factor={spec['partial_rotary_factor']!r} is not "
        f"supported (ffnjax rotates the whole head)"
      )
    if spec.get("rope_theta") is not None:
      theta = spec["rope_theta"]
  if hf.get("partial_rotary_factor", 1.0) != 1.0:
    raise ConvertError(
      f"{path}: partial_rotary_factor={hf['partial_rotary_factor']!r} is not supported (ffnjax rotates the whole head)"
    )
  theta = 10000.0 if theta is None else theta
  if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not theta > 0:
    raise ConvertError(f"{path}: rope_theta={theta!r} must be a positive number")
  return float(theta)


def check_supported(hf: dict, path: str) -> None:
  """Features the ffnjax LLaMA does not have -> ConvertError naming the field."""
  act = hf.get("hidden_act", "silu")
  if act not in _ACTIVATIONS:
    raise ConvertError(f"{path}: hidden_act={act!r} is not supported; ffnjax's SwiGLU uses 'silu'")
  for field in ("attention_bias", "mlp_bias"):
    if hf.get(field):
      raise ConvertError(f"{path}: {field}={hf[field]!r} is not supported (ffnjax has no biases)")
  if hf.get("quantization_config"):
    raise ConvertError(
      f"{path}: quantization_config is set: quantized checkpoints are not supported; use the unquantized weights"
    )
  if hf.get("num_experts") or hf.get("num_local_experts"):
    raise ConvertError(f"{path}: num_local_experts is set: mixture-of-experts FFNs are not supported")
  rope_theta(hf, path)


def sliding_window(hf: dict) -> int | None:
  """The attention window that limits exactness, or None when attention is fully causal at every length used."""
  window = hf.get("sliding_window")
  if window is None or hf.get("use_sliding_window") is False:
    return None
  return int(window)


def to_ffnjax(
  hf: dict,
  model_dir: str,
  *,
  param_dtype: str | None = None,
  dtype: str | None = None,
  seq_len: int | None = None,
  checkpoint_dtype: str | None = None,
  use_metadata: bool = True,
):
  """(experiment ConfigDict, LayerPlan) for a Hugging Face config (already checked by `read_config`).

  `param_dtype`/`dtype` default to `checkpoint_dtype` (the stored tensors' dtype), else config.json's
  dtype/torch_dtype (like transformers' dtype="auto"), float32 for anything else; `seq_len` (the
  evaluator's default max_length) defaults to max_position_embeddings, capped at a Mistral sliding window so
  that full causal attention equals the windowed one; a larger seq_len than the window is refused.
  """
  path = os.path.join(model_dir, CONFIG_FILE)
  check_supported(hf, path)
  vocab = _int_field(hf, "vocab_size", path)
  d = _int_field(hf, "hidden_size", path)
  f = _int_field(hf, "intermediate_size", path)
  layers = _int_field(hf, "num_hidden_layers", path)
  heads = _int_field(hf, "num_attention_heads", path)
  kv = _int_field(hf, "num_key_value_heads", path, default=heads)
  head_dim = 0 if hf.get("head_dim") is None else _int_field(hf, "head_dim", path)
  try:  # the one check of heads against the width (ffnjax.core.placement), in this file's field names
    head_dim = ModelDims(vocab, layers, d, f, heads, num_kv_heads=kv, head_dim=head_dim).head_size
  except PlanError as e:
    raise ConvertError(f"{path}: {_hf_names(str(e))}") from None
  eps = _field(hf, "rms_norm_eps", path, 1e-6)
  if not isinstance(eps, (int, float)) or not eps > 0:
    raise ConvertError(f"{path}: rms_norm_eps={eps!r} must be a positive number")
  tie = _field(hf, "tie_word_embeddings", path, False)
  if not isinstance(tie, bool):
    raise ConvertError(f"{path}: tie_word_embeddings={tie!r} must be true or false")

  max_pos = hf.get("max_position_embeddings") or 2048
  window = sliding_window(hf)
  limit = max_pos if window is None else min(max_pos, window)
  if seq_len is None:
    seq_len = limit
  elif not isinstance(seq_len, int) or seq_len < 1:
    raise ConvertError(f"seq_len={seq_len!r}: must be an integer >= 1")
  elif window is not None and seq_len > window:
    raise ConvertError(
      f"{path}: sliding_window={window} is smaller than the requested seq_len={seq_len}: "
      f"ffnjax attends to the whole causal context, so sequences longer than the window would "
      f"give different logits; use seq_len <= {window}"
    )

  ckpt_dtype = checkpoint_dtype or hf.get("dtype") or hf.get("torch_dtype") or "float32"
  if ckpt_dtype not in _DTYPES:
    ckpt_dtype = "float32"
  param_dtype = param_dtype or ckpt_dtype
  dtype = dtype or param_dtype
  for name, value in (("param_dtype", param_dtype), ("dtype", dtype)):
    if value not in _DTYPES:
      raise ConvertError(f"{name}={value!r}: must be one of {_DTYPES}")

  config = experiment.default_config()
  config.model.update(
    dict(
      vocab_size=vocab,
      num_layers=layers,
      d_model=d,
      d_ff=f,
      num_heads=heads,
      num_kv_heads=0 if kv == heads else kv,
      head_dim=0 if (d % heads == 0 and head_dim == d // heads) else head_dim,
      rope_theta=rope_theta(hf, path),
      norm_eps=float(eps),
      tie_embeddings=tie,
      init_std=float(_field(hf, "initializer_range", path, config.model.init_std)),
      param_dtype=param_dtype,
      dtype=dtype,
      remat="none",
    )
  )
  config.data.seq_len = int(seq_len)
  config.data.tokenizer = TOKENIZER_SPEC_PREFIX + os.path.abspath(model_dir)
  config.name = os.path.basename(os.path.normpath(os.path.abspath(model_dir)))
  meta = hf.get(METADATA_KEY) if use_metadata else None
  if meta:
    _apply_metadata(config, meta, f, path)
  plan = LayerPlan.from_config(config)
  if meta:
    widths = list(plan.widths)
    if widths != list(meta.get("widths", widths)):
      raise ConvertError(
        f"{path}: {METADATA_KEY}.widths={meta.get('widths')} disagree with the plan it names "
        f"({plan.name}: {widths}); pass use_metadata=False to import every layer as standard"
      )
  return config, plan


def _apply_metadata(config, meta: dict, intermediate: int, path: str) -> None:
  """An ffnjax export: restore its placement (deactivated/expanded layers) and name."""
  if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
    raise ConvertError(
      f"{path}: {METADATA_KEY}={meta!r}: unknown format (this code reads format "
      f"{METADATA_FORMAT}); pass use_metadata=False to import every layer as standard"
    )
  try:
    config.placement.position = str(meta["position"])
    config.placement.ratio = int(meta["ratio"])
    config.placement.size = str(meta.get("size", ""))
    config.model.d_ff = int(meta["d_ff"])
  except (KeyError, TypeError, ValueError) as e:
    raise ConvertError(
      f"{path}: {METADATA_KEY} block lacks or mangles field {e}; pass use_metadata=False to "
      f"import every layer as standard"
    ) from None
  if meta.get("name"):
    config.name = str(meta["name"])
  widths = meta.get("widths") or []
  if widths and max(widths) > intermediate:
    raise ConvertError(
      f"{path}: {METADATA_KEY}.widths has a layer of width {max(widths)} > intermediate_size={intermediate}"
    )


def from_ffnjax(config, plan: LayerPlan, export_dtype: str) -> tuple[dict, int]:
  """(config.json object, exported intermediate_size = the widest FFN) for LlamaForCausalLM."""
  m = config.model
  dims = plan.dims
  width = max(plan.widths)
  if width == 0:
    raise ConvertError("the layer plan has no FFN in any layer; LlamaForCausalLM needs intermediate_size >= 1")
  eos = None
  tokenizer = config.get("data", {}).get("tokenizer", "")
  if tokenizer == "gpt2":
    eos = 50256
  elif str(tokenizer).startswith("bpe:"):
    eos = 0
  hf = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": dims.vocab_size,
    "hidden_size": dims.d_model,
    "intermediate_size": width,
    "num_hidden_layers": dims.num_layers,
    "num_attention_heads": dims.num_heads,
    "num_key_value_heads": dims.kv_heads,
    "head_dim": dims.head_size,
    "hidden_act": "silu",
    "max_position_embeddings": int(config.get("data", {}).get("seq_len", 2048)),
    "rms_norm_eps": float(m.norm_eps),
    "rope_theta": float(m.rope_theta),
    "rope_scaling": None,
    "rope_parameters": {"rope_type": "default", "rope_theta": float(m.rope_theta)},
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "pretraining_tp": 1,
    "tie_word_embeddings": bool(m.tie_embeddings),
    "initializer_range": float(m.init_std),
    "bos_token_id": eos,
    "eos_token_id": eos,
    "use_cache": True,
    "torch_dtype": export_dtype,
    "dtype": export_dtype,
    METADATA_KEY: {
      "format": METADATA_FORMAT,
      "name": config.get("name") or plan.name,
      "position": plan.position,
      "ratio": plan.ratio,
      "size": plan.size,
      "d_ff": plan.d_ff,
      "layer_types": list(plan.layer_types),
      "widths": list(plan.widths),
    },
  }
  return hf, width


def baseline_dims(plan: LayerPlan, width: int) -> ModelDims:
  """The dims of the exported (all-standard, width = widest) model, for parameter counts."""
  return dataclasses.replace(plan.dims, d_ff=width)


def exported_param_count(plan: LayerPlan, width: int) -> int:
  return LayerPlan(baseline_dims(plan, width), position=BASELINE).param_count()


def describe_bytes(n: int) -> str:
  if n < 1024:
    return f"{n} B"
  exp = min(int(math.log(n, 1024)), 4)
  return f"{n / 1024**exp:.2f} {'BKMGT'[exp]}iB"
