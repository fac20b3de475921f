"""Hugging Face Llama/Mistral import and export: logit parity with transformers, bitwise round trips, the exact
heterogeneous export, sharded (mesh) import, and the run-directory command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from convert_hf_helpers import TOL, build_hf, hf_logits, load_hf_dir, require_hf, save_hf, tokens

from ffnjax import model as model_lib
from ffnjax.convert import export_hf, import_to_run_dir, load_hf
from ffnjax.convert import llama as convert_llama
from ffnjax.core.placement import LayerPlan
from ffnjax.parallel import make_mesh

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _logits(config, plan, params, toks, mesh=None):
  return np.asarray(model_lib.make_logits_fn(config, plan, params, mesh=mesh)(toks))


def _host_tree(params):
  return jax.tree.map(np.asarray, params)


def _assert_bitwise(a, b):
  a, b = _host_tree(a), _host_tree(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype and x.shape == y.shape, path
    assert np.array_equal(x, y), f"{jax.tree_util.keystr(path)} differs"


VARIANTS = {
  "llama_gqa_untied": ("llama", dict()),
  "llama_tied_theta": ("llama", dict(tie_word_embeddings=True, rope_theta=500000.0)),
  "mistral_gqa": ("mistral", dict(rope_theta=1e6)),
  "mistral_tied_head_dim": ("mistral", dict(tie_word_embeddings=True, head_dim=24, num_key_value_heads=1)),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_import_matches_transformers_logits(tmp_path, variant):
  kind, overrides = VARIANTS[variant]
  hf_model = build_hf(kind, **overrides)
  path = save_hf(hf_model, tmp_path / variant)
  params, config, plan = load_hf(path)
  m = config.model
  assert (m.num_layers, m.d_model, m.d_ff, m.num_heads, m.vocab_size) == (3, 64, 96, 4, 256)
  assert plan.dims.kv_heads == overrides.get("num_key_value_heads", 2)
  assert plan.dims.head_size == overrides.get("head_dim", 16)
  assert m.tie_embeddings == overrides.get("tie_word_embeddings", False)
  assert ("lm_head" in params) != m.tie_embeddings
  assert m.rope_theta == overrides.get("rope_theta", 10000.0) and m.norm_eps == 1e-5
  assert plan.layer_types == ("standard",) * 3 and plan.d_ff == 96
  assert config.name == variant and config.placement.position == "baseline"
  assert m.param_dtype == m.dtype == "float32"
  assert params["group_0"]["ffn"]["w_gate"].shape == (3, 64, 128)  # 96 zero-padded to ffn_pad_multiple
  assert not np.any(np.asarray(params["group_0"]["ffn"]["w_gate"])[:, :, 96:])

  toks = tokens(2, 24)
  ref = hf_logits(hf_model, toks)
  out = _logits(config, plan, params, toks)
  diff = float(np.abs(out - ref).max())
  print(f"{variant}: max |logit| {np.abs(ref).max():.3f}, max abs diff {diff:.3g}")
  assert np.abs(ref).max() > 1.0  # the comparison is not trivially small
  assert diff < TOL


def test_sharded_checkpoint_and_8_device_mesh_import(tmp_path, monkeypatch):
  """A multi-file checkpoint imported onto data=1,fsdp=4,tensor=2: each read is one shard, values equal."""
  hf_model = build_hf("mistral", num_key_value_heads=2)
  path = save_hf(hf_model, tmp_path / "sharded", max_shard_size="100KB")
  assert os.path.exists(os.path.join(path, "model.safetensors.index.json"))
  single, config, plan = load_hf(path)

  reads: dict[str, int] = {}
  real_read = convert_llama.CheckpointReader.read

  def spy(self, name, index=None):
    out = real_read(self, name, index)
    reads[name] = max(reads.get(name, 0), out.size)
    return out

  monkeypatch.setattr(convert_llama.CheckpointReader, "read", spy)
  mesh = make_mesh(ml_collections.ConfigDict(dict(data=1, fsdp=4, tensor=2)))
  sharded, _, _ = load_hf(path, mesh)
  monkeypatch.undo()

  want = model_lib.param_shardings(model_lib.build(config.model, plan), mesh)
  for (path_, arr), sharding in zip(jax.tree_util.tree_leaves_with_path(sharded), jax.tree.leaves(want)):
    assert arr.sharding.is_equivalent_to(sharding, arr.ndim), jax.tree_util.keystr(path_)
  wq = sharded["group_0"]["attn"]["wq"]
  assert wq.sharding.spec[1:3] == ("fsdp", "tensor") and len(wq.addressable_shards) == 8
  assert wq.addressable_shards[0].data.shape == (3, 16, 2, 16)
  # q_proj [64, 64]: every read is one (fsdp, tensor) block of it, never the whole tensor
  assert reads["model.layers.0.self_attn.q_proj.weight"] == 64 * 64 // 8
  assert reads["model.layers.0.mlp.down_proj.weight"] < 64 * 96
  _assert_bitwise(sharded, single)

  toks = tokens(2, 16)
  diff = np.abs(_logits(config, plan, sharded, toks, mesh) - hf_logits(hf_model, toks)).max()
  assert diff < TOL


def _random_params(config, plan, seed=0):
  """ffnjax parameters with O(1) logits and random norms (padding exactly zero, as training keeps it)."""
  model = model_lib.build(config.model, plan)
  params = model_lib.init_params(model, jax.random.key(seed))
  rng = np.random.RandomState(seed)

  def fill(path, x):
    keys = [getattr(k, "key", None) for k in path]
    x = np.asarray(x)
    if keys[-1] == "scale":
      return 1.0 + 0.3 * rng.randn(*x.shape).astype(x.dtype)
    shape = (1, 1) + x.shape
    fan_in = {
      "wq": shape[-3],
      "wk": shape[-3],
      "wv": shape[-3],
      "wo": shape[-3] * shape[-2],
      "w_gate": shape[-2],
      "w_up": shape[-2],
      "lm_head": shape[-2],
    }
    y = rng.randn(*x.shape).astype(x.dtype)
    if keys[-1] == "w_down":
      group = plan.groups[int(keys[0][len("group_") :])]
      y /= np.sqrt(group.width)
      y[:, group.width :, :] = 0
    elif keys[-1] in ("w_gate", "w_up"):
      group = plan.groups[int(keys[0][len("group_") :])]
      y /= np.sqrt(fan_in[keys[-1]])
      y[:, :, group.width :] = 0
    elif fan_in.get(keys[-1]):
      y /= np.sqrt(fan_in[keys[-1]])
    return jax.numpy.asarray(y)

  return jax.tree_util.tree_map_with_path(fill, params)


def _ffnjax_config(arg="baseline_tiny_4l", **model):
  from configs import tiny

  config = tiny.get_config(arg)
  config.model.update(dict(vocab_size=256, num_kv_heads=2, rope_theta=250000.0, **model))
  config.data.seq_len = 64
  return config, LayerPlan.from_config(config)


@pytest.mark.parametrize("tie", [False, True])
def test_export_loads_in_transformers_and_reimports_bitwise(tmp_path, tie):
  config, plan = _ffnjax_config(tie_embeddings=tie)
  params = _random_params(config, plan)
  summary = export_hf(params, config, plan, str(tmp_path / "hf"))
  assert summary["params_padding"] == 0 and summary["params_exported"] == plan.param_count()
  hf_cfg = json.load(open(tmp_path / "hf" / "config.json"))
  assert hf_cfg["architectures"] == ["LlamaForCausalLM"] and hf_cfg["intermediate_size"] == 256
  assert hf_cfg["num_key_value_heads"] == 2 and hf_cfg["tie_word_embeddings"] == tie

  toks = tokens(2, 24)
  ours = _logits(config, plan, params, toks)
  theirs = hf_logits(load_hf_dir(tmp_path / "hf"), toks)
  assert np.abs(ours).max() > 1.0
  assert np.abs(ours - theirs).max() < TOL

  params2, config2, plan2 = load_hf(str(tmp_path / "hf"))
  assert plan2 == plan
  for field in (
    "vocab_size",
    "num_layers",
    "d_model",
    "d_ff",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "rope_theta",
    "norm_eps",
    "tie_embeddings",
    "param_dtype",
    "ffn_pad_multiple",
  ):
    assert config2.model[field] == config.model[field], field
  _assert_bitwise(params2, params)


def test_heterogeneous_export_is_exact_with_zero_ffns(tmp_path):
  """final_50 on 4 layers: layers 1-2 deactivated, 3-4 expanded (d_ff'=513). Exported all-standard at width 513."""
  torch, _ = require_hf()
  config, plan = _ffnjax_config("final_50_tiny_4l")
  assert plan.layer_types == ("deactivated",) * 2 + ("expanded",) * 2
  width = plan.d_ff_expanded
  params = _random_params(config, plan)
  out = tmp_path / "hf"
  summary = export_hf(params, config, plan, str(out))
  d = config.model.d_model
  assert summary["intermediate_size"] == width == 513
  assert summary["params_padding"] == 2 * (3 * d * width + d)  # the two zero FFNs and their dummy norms
  assert summary["params_exported"] == plan.param_count() + summary["params_padding"]
  assert summary["bytes_padding"] == 4 * summary["params_padding"]

  hf_model = load_hf_dir(out)
  state = hf_model.state_dict()
  assert not torch.any(state["model.layers.0.mlp.down_proj.weight"])
  assert torch.all(state["model.layers.1.post_attention_layernorm.weight"] == 1)
  toks = tokens(2, 24)
  ours = _logits(config, plan, params, toks)
  assert np.abs(ours - hf_logits(hf_model, toks)).max() < TOL

  params2, config2, plan2 = load_hf(str(out))  # the "ffnjax" block restores the plan
  assert plan2 == plan and config2.name == "final_50_tiny_4l"
  _assert_bitwise(params2, params)

  flat, _, flat_plan = load_hf(str(out), use_metadata=False)  # every layer standard at width 513: same function
  assert flat_plan.layer_types == ("standard",) * 4 and flat_plan.d_ff == width
  assert np.abs(_logits(config2, flat_plan, flat, toks) - ours).max() < TOL


def test_cli_import_run_dir_and_export(tmp_path):
  hf_model = build_hf("llama", tie_word_embeddings=True)
  src = save_hf(hf_model, tmp_path / "src")
  with open(os.path.join(src, "tokenizer_config.json"), "w") as f:
    json.dump({"model_max_length": 64}, f)
  run = tmp_path / "run"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, "-m", "ffnjax.convert", f"--hf_model={src}", f"--output={run}", "--mesh=data:1,fsdp:2"]
  res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "imported" in res.stdout and "src" in res.stdout
  assert {"config.json", "plan.json", "checkpoints", "tokenizer"} <= set(os.listdir(run))

  from ffnjax.train.checkpoint import manager, read_meta, restore_params

  params, config, plan = restore_params(str(run))
  direct, _, _ = load_hf(src)
  _assert_bitwise(params, direct)
  assert config.data.tokenizer == "hf:tokenizer"  # relative to the run directory: a moved run still evaluates
  meta = read_meta(manager(str(run), read_only=True), 0)
  assert meta["hf_import"]["source"] == os.path.abspath(src) and meta["plan"] == plan.to_json()

  out = tmp_path / "exported"
  cmd = [sys.executable, "-m", "ffnjax.convert", f"--workdir={run}", f"--export_hf={out}"]
  res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "LlamaForCausalLM" in res.stdout
  assert os.path.exists(out / "tokenizer_config.json")
  toks = tokens(2, 16)
  assert np.abs(hf_logits(load_hf_dir(out), toks) - hf_logits(hf_model, toks)).max() < TOL

  res = subprocess.run(
    [sys.executable, "-m", "ffnjax.convert", f"--hf_model={src}", f"--output={run}"],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert res.returncode != 0 and "already has checkpoints" in res.stderr


def test_import_api_checkpoint_has_params_and_meta_only(tmp_path):
  """Orbax refuses an empty opt_state item, so an import writes params + meta (all that restore_params reads)."""
  path = save_hf(build_hf("llama", num_hidden_layers=2), tmp_path / "src")
  out = import_to_run_dir(path, str(tmp_path / "run"))
  assert out["step"] == 0 and out["plan"] == "baseline_2l"
  items = set(os.listdir(tmp_path / "run" / "checkpoints" / "0"))
  assert {"params", "meta"} <= items and "opt_state" not in items


def test_bfloat16_checkpoint_keeps_its_dtype_or_upcasts_exactly(tmp_path):
  torch, _ = require_hf()
  hf_model = build_hf("llama", num_hidden_layers=2)
  path = save_hf(hf_model.to(torch.bfloat16), tmp_path / "bf16")
  params, config, _ = load_hf(path)
  assert config.model.param_dtype == config.model.dtype == "bfloat16"
  want = hf_model.state_dict()["model.layers.1.self_attn.o_proj.weight"].float().numpy()  # [d, H*hd]
  wo = np.asarray(params["group_0"]["attn"]["wo"][1]).astype(np.float32)  # [H, hd, d]
  assert np.array_equal(wo.reshape(-1, 64).T, want)
  up, config32, _ = load_hf(path, param_dtype="float32")
  assert config32.model.param_dtype == config32.model.dtype == "float32"
  _assert_bitwise(up, jax.tree.map(lambda a: np.asarray(a).astype(np.float32), params))

  from ffnjax.convert.safetensors_io import CheckpointReader

  with CheckpointReader(path) as reader:  # the byte-level fallback for a safetensors without numpy bfloat16
    name = "model.layers.0.mlp.down_proj.weight"
    assert reader.dtype(name) == "bfloat16"
    assert np.array_equal(reader._read_memmap(name)[3:9, 10:20], reader.read(name, (slice(3, 9), slice(10, 20))))


def test_transformers_4_config_layout(tmp_path):
  """rope_theta/torch_dtype at the top level and no head_dim (transformers 4.x checkpoints) read the same."""
  hf_model = build_hf("llama", rope_theta=500000.0)
  path = save_hf(hf_model, tmp_path / "v4")
  with open(os.path.join(path, "config.json")) as f:
    cfg = json.load(f)
  for key in ("rope_parameters", "dtype", "head_dim"):
    cfg.pop(key, None)
  cfg.update(rope_theta=500000.0, rope_scaling=None, torch_dtype="float32", transformers_version="4.46.0")
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(cfg, f)
  params, config, plan = load_hf(path)
  assert config.model.rope_theta == 500000.0 and plan.dims.head_size == 16
  toks = tokens(2, 24)
  assert np.abs(_logits(config, plan, params, toks) - hf_logits(hf_model, toks)).max() < TOL
