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
  config.train.update(dict(global_batch=8, steps=20, warmup_steps=2, checkpoint_every=20, log_every=10,
                           async_checkpoints=False))
  path = str(tmp_path_factory.mktemp("shapley") / "run")
  train(config, path, log=False)
  return path


def shapley(run_dir, out, **kw):
  args = dict(checkpoint=run_dir, hf_model=None, step=None, tasks="hellaswag", data_dir="embedded", method="block",
              level=2, permutations=8, seed=0, limit=12, max_length=64, token_budget=2048, output=str(out)) | kw
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
  return subprocess.run([sys.executable, "-m", "ffnjax.shapley", *args], cwd=REPO, capture_output=True, text=True,
                        timeout=300)


def test_bad_inputs(run_dir, tmp_path):
  out = cli(f"--checkpoint={run_dir}", "--tasks=nosuchtask", f"--output={tmp_path}")
  assert out.returncode != 0 and "nosuchtask" in out.stderr and "Traceback" not in out.stderr
  out = cli(f"--checkpoint={run_dir}", "--level=9", f"--output={tmp_path}")
  assert out.returncode != 0 and "--level=9" in out.stderr and "Traceback" not in out.stderr
  out = cli(f"--checkpoint={tmp_path}", f"--output={tmp_path / 'o'}")
  assert out.returncode != 0 and "not a run directory" in out.stderr
