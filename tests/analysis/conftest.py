"""Synthetic studies and tables for the analysis tests (no training: results.json written directly)."""

import json
import os

import pytest

from ffnjax.analysis import results as results_lib
from ffnjax.core import placement

DIMS = placement.ModelDims(vocab_size=64, num_layers=4, d_model=16, d_ff=32, num_heads=2)
CHANCE = {"hellaswag": 0.25, "arc_easy": 0.25, "piqa": 0.5, "lambada_openai": None, "zsre": None, "wikitext": None}


def metric_values(quality: float) -> dict:
  """Table-1 metrics of a model whose 'quality' scales every metric (perplexity inversely)."""
  return {
    "wikitext": {"word_perplexity": 40.0 / quality},
    "lambada_openai": {"acc": 0.30 * quality, "perplexity": 60.0 / quality},
    "hellaswag": {"acc": 0.29 * quality, "acc_norm": 0.30 * quality},
    "zsre": {"acc": 0.10 * quality},
    "arc_easy": {"acc": 0.40 * quality, "acc_norm": 0.38 * quality},
    "piqa": {"acc": 0.60 * quality, "acc_norm": 0.61 * quality},
  }


def write_run(
  study,
  plan: placement.LayerPlan,
  quality: float,
  seed: int = 0,
  run_name: str | None = None,
  losses=(5.0, 4.0, 3.5),
  wall_time_s=12.0,
):
  run = os.path.join(str(study), run_name or plan.name)
  os.makedirs(os.path.join(run, "eval"), exist_ok=True)
  with open(os.path.join(run, "plan.json"), "w") as f:
    json.dump(plan.to_json(), f)
  config = {
    "seed": seed,
    "placement": {"position": plan.position, "ratio": plan.ratio, "size": plan.size},
    "model": {"num_layers": plan.num_layers, "d_model": DIMS.d_model},
    "train": {"steps": 30},
  }
  with open(os.path.join(run, "config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(run, "metrics.jsonl"), "w") as f:
    for i, loss in enumerate(losses):
      f.write(json.dumps({"step": 10 * (i + 1), "loss": loss, "step_time_s": 0.5}) + "\n")
  tasks = {
    task: results_lib.task_entry(metrics, chance=CHANCE[task], num_examples=100)
    for task, metrics in metric_values(quality).items()
  }
  results = results_lib.make_results(plan.name, plan.to_json(), tasks, seed=seed, wall_time_s=wall_time_s)
  results_lib.write_results(os.path.join(run, "eval", "results.json"), results)
  return run


QUALITY = {
  ("first", 50): 1.02,
  ("middle", 50): 0.97,
  ("final", 50): 0.95,
  ("first", 25): 0.99,
  ("middle", 25): 0.96,
  ("final", 25): 0.93,
}


@pytest.fixture
def study(tmp_path):
  """A 4-layer study: baseline + {first, middle, final} x {25, 50} %, one seed."""
  d = tmp_path / "study"
  write_run(d, placement.LayerPlan(DIMS, size="tiny"), 1.0)
  for (pos, ratio), q in QUALITY.items():
    write_run(d, placement.LayerPlan(DIMS, position=pos, ratio=ratio, size="tiny"), q)
  return str(d)


@pytest.fixture
def make_run():
  """write_run, for tests that add runs to a study (test modules import no helpers: rootdir-less layout)."""
  return write_run
