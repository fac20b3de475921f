"""Paper-B rehearsal (arXiv 2409.14381): a tiny 4-layer model trained here, exported to Hugging Face format,
played with `--hf_model` on the paper's six tasks from upstream-format files, one game per task; plus
`evaluate --hf_model` against `convert` then `evaluate`, a moved imported run, and the directory-kind errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import paper_tasks
import pytest
from matplotlib.container import ErrorbarContainer

from configs import tiny
from ffnjax.shapley.pertask import PAPER_TASKS
from ffnjax.shapley.run import run as shapley_run
from ffnjax.train.loop import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 16  # examples per task
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def cli(module, *args):
  return subprocess.run(
    [sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600
  )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("rehearsal")
  config = tiny.get_config("baseline_tiny_4l")
  # vocabulary 512: the exact game scores 256 coalitions, and on CPU the output layer dominates their cost
  config.model.update(dict(d_model=32, d_ff=64, num_heads=2, ffn_pad_multiple=32, vocab_size=512))
  config.data.update(dict(seq_len=64, tokenizer="bpe:512"))
  config.train.update(
    dict(global_batch=8, steps=60, warmup_steps=6, checkpoint_every=60, log_every=30, async_checkpoints=False)
  )
  train(config, str(root / "run"), log=False)
  res = cli("ffnjax.convert", f"--workdir={root / 'run'}", f"--export_hf={root / 'hf'}")
  assert res.returncode == 0, res.stderr[-3000:]
  assert "tokenizer files: tokenizer.json" in res.stdout
  return {
    "root": root,
    "run": str(root / "run"),
    "hf": str(root / "hf"),
    "data": paper_tasks.write(str(root / "data"), n=N),
  }


def test_export_carries_the_runs_tokenizer(setup):
  from ffnjax.data.tokenizers import HFTokenizer
  from ffnjax.train.runconfig import load_config, load_tokenizer

  ours = load_tokenizer(load_config(setup["run"]), run_dir=setup["run"])
  exported = HFTokenizer(setup["hf"])
  text = "To be, or not to be: that is the question.\n<|endoftext|> Naïve!"
  assert exported.encode(text) == ours.encode(text) and exported.eot_id == ours.eot_id


def test_six_task_games_from_hf_model(setup, tmp_path):
  out = tmp_path / "shapley"
  common = dict(
    checkpoint=None,
    hf_model=setup["hf"],
    step=None,
    tasks=",".join(PAPER_TASKS),
    data_dir=setup["data"],
    permutations=0,
    seed=0,
    limit=N,
    max_length=0,
    token_budget=4096,
    output=str(out),
  )
  exact = shapley_run(method="exact", level=0, **common)
  assert list(exact["tasks"]) == list(PAPER_TASKS) and exact["coalitions_evaluated"] == 2**8
  for name, game in exact["tasks"].items():
    assert game["num_examples"] == N and len(game["values"]) == 8
    # efficiency of the exact game, per task: sum(phi) = v(N) - v(empty)
    assert abs(sum(game["values"]) - (game["v_full"] - game["v_empty"])) < 1e-9, name
    assert game["metric"] == ("acc" if name in ("boolq", "winogrande") else "acc_norm")
  # the paper's reading: shares per task, then averaged; the task mean is a labelled summary
  with_shares = [exact["tasks"][t]["shares"] for t in exact["shares_mean_over"]]
  np.testing.assert_allclose(exact["shares_mean"], np.mean(with_shares, axis=0))
  np.testing.assert_allclose(
    exact["task_mean"]["values"], np.mean([g["values"] for g in exact["tasks"].values()], axis=0)
  )
  assert "summary" in exact["task_mean"]["what"] and exact["cornerstone_rule"]["tolerance"] == 0.02
  # the model learnt English: above chance on the choice tasks, and its sub-layers matter (a non-trivial game)
  assert all(exact["tasks"][t]["v_full"] > exact["tasks"][t]["chance"] for t in ("arc_easy", "piqa", "openbookqa"))
  assert max(abs(x) for x in exact["tasks"]["arc_easy"]["values"]) > 0.01
  # cornerstones: defined only where v(N) is above chance + 0.02 and its interval above chance; the paper's point
  # rule, then only those whose drop interval excludes 0
  for name, game in exact["tasks"].items():
    defined = game["v_full"] > game["chance"] + 0.02 and game["ci"]["v_full"][0] > game["chance"]
    assert game["cornerstones_defined"] == defined and (name in exact["cornerstones_defined_for"]) == defined, name
    want = [p for p, w in zip(exact["players"], game["v_without"]) if w <= game["chance"] + 0.02]
    assert game["cornerstones_point_rule"] == (want if game["v_full"] > game["chance"] + 0.02 else [])
    significant = [p for p, (lo, _) in zip(exact["players"], game["ci"]["ablation_drop"]) if lo > 0]
    assert game["cornerstones"] == ([p for p in want if p in significant] if defined else [])
  # every coalition record holds each task's value and per-example scores (for a later bootstrap)
  lines = (out / "coalitions.jsonl").read_text().splitlines()
  rec = json.loads(lines[1])
  assert set(rec["tasks"]) == set(PAPER_TASKS) and all(len(rec["examples"][t]) == N for t in PAPER_TASKS)
  assert rec["value"] == pytest.approx(np.mean(list(rec["tasks"].values())))

  # the paper's estimator, level 3, through the command line: every coalition comes from the cache
  res = cli(
    "ffnjax.shapley",
    f"--hf_model={setup['hf']}",
    f"--data_dir={setup['data']}",
    "--method=block",
    "--level=3",
    f"--limit={N}",
    "--token_budget=4096",
    f"--output={out}",
  )
  assert res.returncode == 0, res.stderr[-3000:]
  for name in PAPER_TASKS:
    assert f"  {name}: " in res.stdout and "cornerstones" in res.stdout
  block = json.loads((out / "shapley.json").read_text())
  assert block["coalitions_evaluated"] == 0 and block["level"] == 3 and block["method"] == "block"
  for name in PAPER_TASKS:
    assert block["tasks"][name]["ablation_drop"] == exact["tasks"][name]["ablation_drop"]
  for stem in ("shapley_values", "single_ablation"):
    assert os.path.getsize(out / f"{stem}.png") > 10_000


def test_per_task_figure_says_what_it_shows(setup, tmp_path):
  from ffnjax.shapley import figures, players_from_layer_types

  res = shapley_run(
    checkpoint=setup["run"],
    hf_model=None,
    step=None,
    tasks="piqa,winogrande",
    data_dir=setup["data"],
    method="block",
    level=2,
    permutations=0,
    seed=0,
    limit=N,
    max_length=0,
    token_budget=4096,
    output=str(tmp_path),
  )
  players = players_from_layer_types(["standard"] * 4)
  fig = figures.per_task_figure(res, players, model="run (baseline_tiny_4l)")
  titles = [ax.get_title() for ax in fig.axes]
  assert len(fig.axes) == 3 and titles[0].startswith("piqa: normalised accuracy (acc_norm), n = 16 examples")
  assert titles[1].startswith("winogrande: accuracy (acc), n = 16 examples") and "mean over the 2 tasks" in titles[2]
  assert fig.axes[0].get_ylabel() == "Shapley value\n(Δ normalised accuracy)"
  assert "Δ accuracy" in fig.axes[1].get_ylabel()
  assert "baseline_tiny_4l" in fig._suptitle.get_text() and "level K = 2" in fig._suptitle.get_text()
  lo, hi = res["tasks"]["piqa"]["ci"]["v_full"]
  assert f"v(N) = {res['tasks']['piqa']['v_full']:.3g} [{lo:.3g}, {hi:.3g}], chance 0.5" in titles[0]
  assert "error bars: 95 % bootstrap intervals" in fig._suptitle.get_text()
  # error bars: one per player and panel (the task panels and the mean)
  bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
  assert sum(len(c.lines[2][0].get_segments()) for c in bars) == 8
  # a cornerstone is starred in its task's panel only
  res["tasks"]["piqa"].update(cornerstones=["L2.ffn"], cornerstones_defined=True)
  fig = figures.per_task_figure(res, players, model="m")
  stars = [c for c in fig.axes[0].collections if c.get_label().startswith("cornerstone")]
  assert len(stars) == 1 and stars[0].get_offsets()[0][0] == 3 and "L2.ffn" in fig.axes[0].get_title()
  assert "drop's interval excludes 0): L2.ffn" in fig.axes[0].get_title()
  assert not [c for c in fig.axes[1].collections if c.get_label().startswith("cornerstone")]


def test_evaluate_hf_model_equals_convert_then_evaluate_and_a_moved_run(setup, tmp_path):
  from ffnjax.eval import run as evaluate
  from ffnjax.train.runconfig import load_config

  kw = dict(tasks="boolq,openbookqa,piqa", data_dir=setup["data"], limit=N)
  direct = evaluate.run(hf_model=setup["hf"], output=str(tmp_path / "direct.json"), **kw)
  res = cli("ffnjax.convert", f"--hf_model={setup['hf']}", f"--output={tmp_path / 'imported'}")
  assert res.returncode == 0, res.stderr[-3000:]
  assert load_config(str(tmp_path / "imported")).data.tokenizer == "hf:tokenizer"  # relative to the run
  via_run = evaluate.run(str(tmp_path / "imported"), **kw)
  assert direct["tasks"] == via_run["tasks"] and direct["step"] == via_run["step"] == 0
  assert direct["tasks"]["openbookqa"]["num_examples"] == N
  shutil.move(str(tmp_path / "imported"), str(tmp_path / "moved"))  # the tokenizer moves with it
  assert evaluate.run(str(tmp_path / "moved"), **kw)["tasks"] == direct["tasks"]


def test_directory_kind_errors(setup, tmp_path):
  res = cli("ffnjax.eval", f"--workdir={setup['hf']}", "--tasks=piqa")
  assert res.returncode == 2 and "Traceback" not in res.stderr
  assert f"a Hugging Face model directory, not an ffnjax run; pass --hf_model={setup['hf']}" in res.stderr
  assert len(res.stderr.strip().splitlines()) == 1
  res = cli("ffnjax.eval", f"--hf_model={setup['run']}", f"--output={tmp_path / 'r.json'}", "--tasks=piqa")
  assert res.returncode == 2 and "an ffnjax run directory, not a Hugging Face model" in res.stderr
  res = cli("ffnjax.eval", f"--workdir={tmp_path}", "--tasks=piqa")
  assert res.returncode == 2 and "not a run directory (no config.json)" in res.stderr
  res = cli("ffnjax.shapley", f"--checkpoint={setup['hf']}", f"--output={tmp_path / 's'}")
  assert res.returncode == 2 and f"pass --hf_model={setup['hf']}" in res.stderr and "Traceback" not in res.stderr
