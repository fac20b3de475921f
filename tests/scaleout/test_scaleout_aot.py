"""Ahead-of-time planner: compiles the real train step for an 8-device virtual mesh without running it.

All four paper baselines and their middle_70 variants, at a reduced batch and sequence (one micro-batch of
8 x 128) so each compile takes 5-10 s on 2 cores. `python -P benchmarks/aot_compile.py` plans the same eight at
seq 1024 with the same count checks and reports compile times.
"""

import json
import os
import subprocess
import sys

import pytest

from configs import paper
from ffnjax.core.placement import LayerPlan
from ffnjax.model import padded_width
from ffnjax.plan import aot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = [f"{kind}_{size}" for size in paper.SIZES for kind in ("baseline", "middle_70")]


def ffn_padding(config) -> int:
  """Parameters the model stores beyond LayerPlan.param_count: each FFN's 3 matrices padded with exact zeros from
  its width to a multiple of model.ffn_pad_multiple."""
  plan = LayerPlan.from_config(config)
  return sum(
    3 * g.count * config.model.d_model * (padded_width(g.width, config.model.ffn_pad_multiple) - g.width)
    for g in plan.groups
    if g.width
  )


def plan_json(name: str) -> dict:
  out = subprocess.run(
    [sys.executable, "-m", "ffnjax.plan", f"--config=configs/paper.py:{name}", "--json"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout)


def test_scaleout_plan_json_is_the_layer_plan():
  # `plan --json` prints LayerPlan.to_json() plus the data budget; the parametrised test compares the planner with
  # the in-process object
  config = paper.get_config("middle_70_1b_40l")
  got = plan_json("middle_70_1b_40l")
  budget = got.pop("data_budget")
  assert got == json.loads(json.dumps(LayerPlan.from_config(config).to_json()))
  assert budget["epochs"] == pytest.approx(20_000 * 1152 * 1024 / budget["data_tokens"])


@pytest.mark.parametrize("name", NAMES)
def test_scaleout_planner_counts_match_the_layer_plan(name):
  config = paper.get_config(name)
  expected = LayerPlan.from_config(config).to_json()  # what `plan --json` prints
  r = aot.plan_report(config, mesh_spec="data:1,fsdp:8,tensor:1", devices=8, batch=8, seq_len=128, target="h100")
  assert r["name"] == expected["name"] == name and r["devices"] == 8 and r["per_micro_batch"]
  assert r["params_total"] == expected["params_total"]
  assert r["params_stored"] == expected["params_total"] + ffn_padding(config)
  assert r["param_bytes_per_device"] == 4 * r["params_stored"] // 8  # fp32, every tensor sharded over fsdp=8
  # AdamW: mu and nu shaped and sharded like the parameters, plus small replicated counters
  assert 2 * r["param_bytes_per_device"] <= r["opt_state_bytes_per_device"] < 2 * r["param_bytes_per_device"] + 1024
  # arguments are the state plus this device's tokens; the donated state comes back as outputs
  state = r["param_bytes_per_device"] + r["opt_state_bytes_per_device"]
  assert state <= r["argument_bytes_per_device"] < state + 8 * 129 * 4
  assert r["alias_bytes_per_device"] >= state - 64
  assert 0 < r["temp_bytes_per_device"] < r["total_bytes_per_device"] < 80 * 2**30
  assert r["fits"] == {"h100": True}
  assert r["flops_per_step_plan"] == pytest.approx(LayerPlan.from_config(config).flops_per_token(128) * 8 * 128)
  # XLA counts each scanned group's body once, so its per-device figure is below the plan's per-device FLOPs
  assert 0 < r["flops_per_step_xla"] < r["flops_per_device_plan"]
  print(aot.format_report(r))


def test_scaleout_planner_errors_are_clear():
  config = paper.get_config("baseline_285m_12l")
  with pytest.raises(ValueError, match=r"needs 16 devices but only 8 are available \(--devices=8; raise --devices"):
    aot.plan_report(config, mesh_spec="data:2,fsdp:8,tensor:1", devices=8, batch=16, seq_len=64)
  with pytest.raises(ValueError, match=r"--target='tpu9': unknown accelerator; must be one of \['a100'"):
    aot.plan_report(config, mesh_spec="data:8", devices=8, target="tpu9")
  with pytest.raises(ValueError, match="'pipeline:2' must be AXIS:SIZE"):  # parsed before JAX starts
    aot.plan_report(config, mesh_spec="pipeline:2")
  with pytest.raises(ValueError, match="not divisible by the data axes"):
    aot.plan_report(config, mesh_spec="data:8", devices=8, batch=12, seq_len=64)


def test_scaleout_plan_cli_compile():
  # no --batch: the full step with its micro-batch accumulation, as the trainer compiles it
  cmd = [
    sys.executable,
    "-m",
    "ffnjax.plan",
    "--config=configs/tiny.py:final_50_tiny_8l",
    "--compile",
    "--mesh=data:2,fsdp:2,tensor:2",
    "--target=v5e",
    "--config.train.micro_batches=2",
  ]
  out = subprocess.run(cmd + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  report = json.loads(out.stdout)
  assert report["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2} and report["fits"] == {"v5e": True}
  assert report["micro_batches"] == 2 and report["batch"] == 16 and not report["per_micro_batch"]
  bad = subprocess.run(cmd[:-1] + ["--mesh=data:4,fsdp:4"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and "needs 16 devices but only 8 are available" in bad.stderr, bad.stderr[-2000:]
