"""Shapley analysis on a real (tiny, trained) ffnjax model: one compiled program for all coalitions, resume from
the on-disk cache, exact values obey efficiency, the CLI's clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import tiny
from ffnjax.shapley.run import run
from ffnjax.train.loop import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  config = tiny.get_config("baseline_tiny_4l")
  config.model.update(dict(num_layers=2, d_model=32, d_ff=64, num_heads=2, ffn_pad_multiple=32))
  config.data.seq_len = 64
  config.train.update(
    dict(global_batch=8, steps=20, warmup_steps=2, checkpoint_every=20, log_every=10, async_checkpoints=False)
  )
  path = str(tmp_path_factory.mktemp("shapley") / "run")
  train(config, path, log=False)
  return path


def shapley(run_dir, out, **kw):
  args = (
    dict(
      checkpoint=run_dir,
      hf_model=None,
      step=None,
      tasks="hellaswag",
      data_dir="embedded",
      method="block",
      level=2,
      permutations=8,
      seed=0,
      limit=12,
      max_length=64,
      token_budget=2048,
      output=str(out),
    )
    | kw
  )
  return run(**args)


def test_block_run_compiles_once_per_shape_not_per_coalition(run_dir, tmp_path):
  small = shapley(run_dir, tmp_path / "k2", level=2)
  large = shapley(run_dir, tmp_path / "k3", level=3)
  assert large["coalitions_evaluated"] > small["coalitions_evaluated"] >= 5
  # One program per bucket shape of the task's requests (fixed by the data), none per coalition.
  assert small["compilations"] == large["compilations"] <= 3
  assert len(small["tasks"]["hellaswag"]["values"]) == 4
  assert small["players"] == ["L1.attn", "L1.ffn", "L2.attn", "L2.ffn"]
  assert os.path.exists(tmp_path / "k3" / "shapley_values.png")


def test_interrupted_analysis_resumes_from_the_cache(run_dir, tmp_path):
  first = shapley(run_dir, tmp_path / "out", method="exact")
  assert first["coalitions_evaluated"] == 16
  again = shapley(run_dir, tmp_path / "out", method="exact")
  assert again["coalitions_evaluated"] == 0 and again["tasks"] == first["tasks"]


def test_exact_values_are_efficient_and_permutations_converge(run_dir, tmp_path):
  exact = shapley(run_dir, tmp_path / "out", method="exact")
  cache = [json.loads(line) for line in open(tmp_path / "out" / "coalitions.jsonl")][1:]
  values = {r["key"]: r["value"] for r in cache}  # key: one bit per player, "1" = kept
  assert len(values) == 16
  v_full, v_empty = values["1111"], values["0000"]
  game = exact["tasks"]["hellaswag"]
  assert v_full == game["v_full"] and v_empty == game["v_empty"]
  assert sum(game["values"]) == pytest.approx(v_full - v_empty, abs=1e-9) and abs(game["efficiency_gap"]) < 1e-9
  perm = shapley(run_dir, tmp_path / "out", method="permutation", permutations=400)
  assert perm["coalitions_evaluated"] == 0  # every coalition of 4 players is already cached
  perm = perm["tasks"]["hellaswag"]
  np.testing.assert_allclose(perm["values"], game["values"], atol=4 * max(perm["stderr"]) + 1e-9)


def cli(*args):
  return subprocess.run(
    [sys.executable, "-m", "ffnjax.shapley", *args], cwd=REPO, capture_output=True, text=True, timeout=300
  )


def test_bad_inputs(run_dir, tmp_path):
  out = cli(f"--checkpoint={run_dir}", "--tasks=nosuchtask", f"--output={tmp_path}")
  assert out.returncode != 0 and "nosuchtask" in out.stderr and "Traceback" not in out.stderr
  out = cli(f"--checkpoint={run_dir}", "--level=9", f"--output={tmp_path}")
  assert out.returncode != 0 and "--level=9" in out.stderr and "Traceback" not in out.stderr
  out = cli(f"--checkpoint={tmp_path}", f"--output={tmp_path / 'o'}")
  assert out.returncode != 0 and "not a run directory" in out.stderr


def test_intervals_in_json_and_table_gold_values_and_a_sub_game(run_dir, tmp_path):
  from ffnjax.core import bootstrap

  out = tmp_path / "out"
  r = shapley(run_dir, out, level=2, resamples=200)
  e = r["tasks"]["hellaswag"]
  assert r["intervals"]["resamples"] == 200 and r["value"] == "acc"
  for key in ("values", "ablation_drop", "v_without"):
    assert len(e["ci"][key]) == 4 and all(lo <= x <= hi for (lo, hi), x in zip(e["ci"][key], e[key])), key
  for key in ("values", "ablation_drop"):
    assert e["covers_zero"][key] == [lo <= 0 <= hi for lo, hi in e["ci"][key]]
  assert e["significant_drops"] == [p for p, c in zip(r["players"], e["covers_zero"]["ablation_drop"]) if not c]
  assert set(e["cornerstones"]) <= set(e["cornerstones_point_rule"])
  assert len(r["task_mean"]["ci"]["values"]) == 4
  # v(N)'s interval is the bootstrap of the cached per-example scores with the task's own resamples
  records = [json.loads(line) for line in (out / "coalitions.jsonl").read_text().splitlines()][1:]
  full = next(rec for rec in records if rec["key"] == "1111")
  res = bootstrap.for_documents(12, 200, bootstrap.task_seed(0, "hellaswag"))
  want = bootstrap.interval(
    np.mean(full["examples"]["hellaswag"]),
    bootstrap.mean_replicates(np.array(full["examples"]["hellaswag"], float), res),
    res,
  )
  assert e["ci"]["v_full"] == [want.low, want.high]
  table = (out / "shapley.md").read_text()
  assert "| L1.attn" in table and f"{e['ablation_drop'][0]:+.3f} [" in table
  # the gold log-likelihood game from the same cache; cornerstones still read from accuracy
  g = shapley(run_dir, out, level=2, resamples=200, value="gold_ll")
  assert g["coalitions_evaluated"] == 0
  ge = g["tasks"]["hellaswag"]
  assert ge["metric"] == "gold_ll" and ge["v_full"] == pytest.approx(np.mean(full["gold"]["hellaswag"]["ll"]))
  assert ge["cornerstone_game"]["ablation_drop"] == e["ablation_drop"]
  assert ge["cornerstone_game"]["metric"] == e["metric"] == "acc_norm"
  assert ge["cornerstones_point_rule"] == e["cornerstones_point_rule"]
  # the sub-game of layer 2: layer 1 always kept, so its values are the full game's at the same coalitions
  sub = shapley(run_dir, tmp_path / "sub", method="exact", player_layers="2", resamples=200)
  assert sub["players"] == ["L2.attn", "L2.ffn"] and sub["coalitions_evaluated"] == 4
  s = sub["tasks"]["hellaswag"]
  assert s["v_full"] == e["v_full"] and s["v_without"] == e["v_without"][2:]


def test_target_ci_pilot_sizes_the_run_and_stops(run_dir, tmp_path):
  from ffnjax.shapley.intervals import examples_for_half_width

  out = tmp_path / "out"
  res = cli(
    f"--checkpoint={run_dir}",
    "--tasks=hellaswag",
    "--max_length=64",
    "--token_budget=2048",
    "--limit=12",
    "--target_ci=0.05",
    "--pilot_limit=6",
    "--resamples=100",
    f"--output={out}",
  )
  assert res.returncode == 0, res.stderr[-2000:]
  assert "examples needed for 95 % intervals of half-width 0.05 (from a pilot of 6 examples" in res.stdout
  assert "stopped after the pilot" in res.stdout and not (out / "shapley.json").exists()
  t = json.loads((out / "pilot.json").read_text())["tasks"]["hellaswag"]
  assert t["num_examples"] == 6
  assert t["examples_for_every_drop"] == examples_for_half_width(t["drop_half_width_max"], 6, 0.05)
  assert "hellaswag (acc_norm, n = 6): single-ablation drop half-width median" in res.stdout
  # a run's own cache serves as the pilot once it holds the single ablation
  shapley(run_dir, out, level=1, resamples=100)
  again = shapley(run_dir, out, level=1, resamples=100, target_ci=0.05)
  assert again["stopped_after_pilot"] and again["pilot"]["from"] == "the run's coalition cache"
  assert again["pilot"]["tasks"]["hellaswag"]["num_examples"] == 12
