"""Bad input to the Hugging Face converter: each error names the file, the config field or the tensor."""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest
from convert_hf_helpers import TOL, build_hf, hf_logits, save_hf, tokens

from ffnjax import model as model_lib
from ffnjax.convert import ConvertError, export_hf, load_hf


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
  return save_hf(build_hf("llama", num_hidden_layers=2), tmp_path_factory.mktemp("hf") / "llama")


def _copy(src, tmp_path, name="model") -> str:
  dst = str(tmp_path / name)
  shutil.copytree(src, dst)
  return dst


def _edit_config(path, **changes) -> None:
  cfg_path = os.path.join(path, "config.json")
  with open(cfg_path) as f:
    cfg = json.load(f)
  for key, value in changes.items():
    if value is _DELETE:
      cfg.pop(key, None)
    else:
      cfg[key] = value
  with open(cfg_path, "w") as f:
    json.dump(cfg, f)


def _edit_tensors(path, fn) -> None:
  from safetensors.numpy import load_file, save_file

  file = os.path.join(path, "model.safetensors")
  tensors = load_file(file)
  fn(tensors)
  save_file(tensors, file, metadata={"format": "pt"})


_DELETE = object()


def test_not_a_model_directory(tmp_path):
  with pytest.raises(ConvertError, match="not a directory"):
    load_hf(str(tmp_path / "nowhere"))
  with pytest.raises(ConvertError, match=r"not a Hugging Face model directory \(no config.json\)"):
    load_hf(str(tmp_path))


CONFIG_ERRORS = {
  "other_architecture": (
    dict(architectures=["GPT2LMHeadModel"], model_type="gpt2"),
    r"architectures=\['GPT2LMHeadModel'\] is not supported",
  ),
  "other_model_type": (dict(architectures=_DELETE, model_type="qwen2"), r"model_type='qwen2' is not supported"),
  "type_mismatch": (dict(model_type="mistral"), r"model_type='mistral' does not match architectures"),
  "rope_scaling_v4": (
    dict(rope_parameters=_DELETE, rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0}),
    r"rope_scaling.rope_type='llama3' \(RoPE scaling\) is not supported",
  ),
  "rope_parameters_v5": (
    dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}),
    r"rope_parameters.rope_type='yarn'",
  ),
  "attention_bias": (dict(attention_bias=True), r"attention_bias=True is not supported \(ffnjax has no biases\)"),
  "mlp_bias": (dict(mlp_bias=True), r"mlp_bias=True is not supported"),
  "activation": (dict(hidden_act="gelu"), r"hidden_act='gelu' is not supported"),
  "missing_field": (dict(hidden_size=_DELETE), r"missing field 'hidden_size'"),
  "bad_kv_heads": (dict(num_key_value_heads=3), r"num_key_value_heads=3 must divide num_attention_heads=4"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors_name_the_field(llama_dir, tmp_path, case):
  changes, pattern = CONFIG_ERRORS[case]
  path = _copy(llama_dir, tmp_path)
  _edit_config(path, **changes)
  with pytest.raises(ConvertError, match=pattern) as err:
    load_hf(path)
  assert "config.json" in str(err.value)


def test_shape_mismatch_names_tensor_file_and_fields(llama_dir, tmp_path):
  path = _copy(llama_dir, tmp_path)
  _edit_config(path, intermediate_size=80)
  with pytest.raises(ConvertError) as err:
    load_hf(path)
  msg = str(err.value)
  assert "model.safetensors" in msg and "'model.layers.0.mlp.gate_proj.weight' has shape [96, 64]" in msg
  assert "config.json implies [80, 64] (intermediate_size, hidden_size)" in msg


def test_missing_and_unexpected_tensors(llama_dir, tmp_path):
  path = _copy(llama_dir, tmp_path, "missing")
  _edit_tensors(path, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
  with pytest.raises(ConvertError, match=r"tensor 'model.layers.1.self_attn.k_proj.weight' is missing"):
    load_hf(path)

  path = _copy(llama_dir, tmp_path, "no_head")
  _edit_tensors(path, lambda t: t.pop("lm_head.weight"))
  with pytest.raises(ConvertError, match=r"tensor 'lm_head.weight' is missing"):
    load_hf(path)

  path = _copy(llama_dir, tmp_path, "bias")
  _edit_tensors(path, lambda t: t.update({"model.layers.0.self_attn.q_proj.bias": np.zeros(64, np.float32)}))
  with pytest.raises(ConvertError, match=r"unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"):
    load_hf(path)


def test_missing_weights_files(llama_dir, tmp_path):
  path = _copy(llama_dir, tmp_path, "bin_only")
  os.rename(os.path.join(path, "model.safetensors"), os.path.join(path, "pytorch_model.bin"))
  with pytest.raises(
    ConvertError,
    match=r"no model.safetensors or model.safetensors.index.json; found "
    r"\['pytorch_model.bin'\]",
  ):
    load_hf(path)

  hf_model = build_hf("llama", num_hidden_layers=2)
  path = save_hf(hf_model, tmp_path / "sharded", max_shard_size="50KB")
  with open(os.path.join(path, "model.safetensors.index.json")) as f:
    shard = sorted(set(json.load(f)["weight_map"].values()))[-1]
  os.remove(os.path.join(path, shard))
  with pytest.raises(ConvertError, match=rf"{shard}: missing safetensors file"):
    load_hf(path)


def test_sliding_window_caps_seq_len_or_is_refused(tmp_path):
  hf_model = build_hf("mistral", sliding_window=8)
  path = save_hf(hf_model, tmp_path / "windowed")
  params, config, plan = load_hf(path)
  assert config.data.seq_len == 8  # evaluation never exceeds the window, where full attention == windowed
  toks = tokens(2, 8)
  out = np.asarray(model_lib.make_logits_fn(config, plan, params)(toks))
  assert np.abs(out - hf_logits(hf_model, toks)).max() < TOL
  # beyond the window the Hugging Face model really differs (the window matters), so a longer seq_len is refused
  long = tokens(1, 16)
  wide = build_hf("mistral", sliding_window=None)
  assert np.abs(hf_logits(hf_model, long)[:, 8:] - hf_logits(wide, long)[:, 8:]).max() > 1e-3
  with pytest.raises(ConvertError, match=r"sliding_window=8 is smaller than the requested seq_len=16"):
    load_hf(path, seq_len=16)


def _tiny_ffnjax(arg, **model):
  from configs import tiny
  from ffnjax.core.placement import LayerPlan

  config = tiny.get_config(arg)
  config.model.update(dict(vocab_size=256, **model))
  plan = LayerPlan.from_config(config)
  params = model_lib.init_params(model_lib.build(config.model, plan), jax.random.key(0))
  return params, config, plan


def test_heterogeneous_import_refuses_nonzero_dropped_weights(tmp_path):
  params, config, plan = _tiny_ffnjax("final_50_tiny_4l")
  out = str(tmp_path / "hf")
  export_hf(params, config, plan, out)
  _edit_tensors(out, lambda t: t["model.layers.0.mlp.down_proj.weight"].__setitem__((0, 0), 1.0))
  with pytest.raises(
    ConvertError,
    match=r"'model.layers.0.mlp.down_proj.weight' is non-zero beyond the layer's FFN "
    r"width, but .* says layer 1 is deactivated; pass use_metadata=False",
  ):
    load_hf(out)
  _, _, flat_plan = load_hf(out, use_metadata=False)
  assert flat_plan.layer_types == ("standard",) * 4


def test_export_refuses_nonzero_padding(tmp_path):
  params, config, plan = _tiny_ffnjax("baseline_tiny_4l", d_ff=250)  # padded to 256: six zero columns
  params["group_0"]["ffn"]["w_up"] = params["group_0"]["ffn"]["w_up"].at[1, 0, 252].set(1.0)
  with pytest.raises(ConvertError, match=r"layer 2 ffn/w_up: the zero padding beyond the FFN width 250 is non-zero"):
    export_hf(params, config, plan, str(tmp_path / "hf"))
  assert not os.path.exists(tmp_path / "hf" / "model.safetensors")
