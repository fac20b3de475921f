"""Configs: the paper grammar, overrides re-deriving the plan, validation errors naming the field."""

import json
import subprocess
import sys

import pytest

from configs import paper, tiny
from ffnjax.core.config import ConfigError, run_name
from ffnjax.core.placement import LayerPlan
from ffnjax.train.experiment import validate


@pytest.mark.parametrize("size", list(paper.SIZES))
def test_every_paper_grid_point_parses(size):
  names = [f"baseline_{size}"] + [f"{p}_{r}_{size}" for p in ("first", "middle", "final") for r in (10, 30, 50, 70, 90)]
  for name in names:
    config = paper.get_config(name)
    plan = validate(config)
    assert plan.name == name == config.name


def test_override_rederives_the_plan():
  config = paper.get_config("middle_30_285m_12l")
  assert LayerPlan.from_config(config).d_ff_expanded == 17921
  config.model.num_layers = 24  # what --config.model.num_layers=24 does
  plan = LayerPlan.from_config(config)
  assert plan.num_layers == 24 and plan.num_expanded == 7
  assert plan.d_ff_expanded == -(-(24 * (3 * 1280 * 4480 + 1280) - 7 * 1280) // (7 * 3 * 1280))
  assert run_name(config) == "middle_30_285m_24l"


def test_tiny_config_is_cpu_sized():
  plan = validate(tiny.get_config("final_50_tiny_8l"))
  assert plan.param_count() < 5_000_000
  assert plan.layer_types[:4] == ("deactivated",) * 4


@pytest.mark.parametrize("name", ["middle_285m_12l", "center_50_285m_12l", "middle_70_999m_12l", "middle_70"])
def test_bad_names(name):
  with pytest.raises(ConfigError, match="config name"):
    paper.get_config(name)


@pytest.mark.parametrize(
  "field,value,needle",
  [
    ("model.dtype", "float8", "model.dtype"),
    ("model.remat", "sometimes", "model.remat"),
    ("model.num_heads", 7, "model.num_heads"),
    ("model.rope_theta", -1.0, "model.rope_theta"),
    ("train.schedule", "linear", "train.schedule"),
    ("train.steps", 0, "train.steps"),
    ("train.micro_batches", 5, "train.micro_batches"),
    ("train.warmup_steps", 10**9, "train.warmup_steps"),
    ("train.nan_policy", "ignore", "train.nan_policy"),
    ("mesh.data", 0, "mesh.data"),
    ("placement.ratio", 3, "placement.ratio"),
    ("placement.position", "top", "placement.position"),
    ("model.kernels.ffn", "cuda", "ffn"),
    ("data.tokenizer", "sentencepiece", "data.tokenizer"),
  ],
)
def test_invalid_fields_are_named(field, value, needle):
  config = tiny.get_config("middle_50_tiny_8l")
  section, key = field.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  node[key] = value
  with pytest.raises(ValueError, match=needle):
    validate(config)


def run_plan(*args):
  return subprocess.run([sys.executable, "-m", "ffnjax.plan", *args], capture_output=True, text=True, timeout=120)


def test_plan_cli_json():
  out = run_plan("--config=configs/paper.py:middle_70_1b_40l", "--json")
  assert out.returncode == 0, out.stderr
  plan = json.loads(out.stdout)
  for key in (
    "name",
    "num_layers",
    "layer_types",
    "d_ff",
    "d_ff_expanded",
    "params_total",
    "params_non_embedding",
    "baseline_params_total",
  ):
    assert key in plan
  assert plan["layer_types"].count("expanded") == 28 and len(plan["layer_types"]) == 40
  assert abs(plan["params_total"] / plan["baseline_params_total"] - 1) < 2e-4


def test_plan_cli_table_and_override():
  out = run_plan("--config=configs/paper.py:first_50_285m_12l", "--config.model.num_layers=24")
  assert out.returncode == 0, out.stderr
  assert "first_50_285m_24l" in out.stdout and "   12  expanded" in out.stdout and "   13  deactivated" in out.stdout


def test_plan_cli_bad_config_is_one_line():
  out = run_plan("--config=configs/paper.py:middle_70_285m_12l", "--config.placement.ratio=5")
  assert out.returncode != 0
  assert "placement.ratio" in out.stderr and "Traceback" not in out.stderr
