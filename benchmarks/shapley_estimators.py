"""Exact vs block vs permutation Shapley values on a trained tiny model, and coalitions/s on this machine.

Trains a 4-layer tiny model (8 players: exact Shapley needs 2^8 = 256 coalitions) unless --run_dir is given,
then reports the rank correlation of the block estimator (levels 2..4) and of permutation sampling with the
exact values.

    python -P benchmarks/shapley_estimators.py [--run_dir=RUN] [--steps=300] [--limit=100]
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from absl import app, flags

_RUN_DIR = flags.DEFINE_string("run_dir", "", "A trained run; empty = train a tiny_4l model first.")
_STEPS = flags.DEFINE_integer("steps", 300, "Training steps when training here.")
_LIMIT = flags.DEFINE_integer("limit", 100, "hellaswag examples per coalition.")
_TASKS = flags.DEFINE_string("tasks", "hellaswag", "Value tasks.")


def spearman(a, b) -> float:
  ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
  return float(np.corrcoef(ra, rb)[0, 1])


def main(argv):
  del argv
  from configs import tiny
  from ffnjax.shapley.run import run
  from ffnjax.train.loop import train

  run_dir = _RUN_DIR.value
  if not run_dir:
    run_dir = os.path.join(tempfile.mkdtemp(), "baseline_tiny_4l")
    config = tiny.get_config("baseline_tiny_4l")
    config.train.update(dict(steps=_STEPS.value, warmup_steps=_STEPS.value // 10, checkpoint_every=_STEPS.value))
    t = time.perf_counter()
    train(config, run_dir)
    print(f"trained {run_dir} in {time.perf_counter() - t:.0f}s")
  out = tempfile.mkdtemp()
  common = dict(
    checkpoint=run_dir,
    hf_model=None,
    step=None,
    tasks=_TASKS.value,
    data_dir="embedded",
    permutations=0,
    seed=0,
    limit=_LIMIT.value,
    max_length=0,
    token_budget=16384,
    output=out,
  )
  t = time.perf_counter()
  exact = run(method="exact", level=0, **common)
  tm = exact["task_mean"]  # one game per task; the estimators are compared on the task mean of their values
  dt = time.perf_counter() - t
  print(
    f"exact: {exact['coalitions_evaluated']} coalitions in {dt:.1f}s = {exact['coalitions_evaluated'] / dt:.2f} "
    f"coalitions/s, {exact['compilations']} compilation(s); v(N) = {tm['v_full']:.4f}"
  )
  print(f"{'player':<10}{'exact':>9}" + "".join(f"{'block K=' + str(k):>11}" for k in (2, 3, 4)) + f"{'perm.':>9}")
  blocks = {k: run(method="block", level=k, **common)["task_mean"]["values"] for k in (2, 3, 4)}
  perm = run(**(common | dict(permutations=64)), method="permutation", level=0)["task_mean"]
  for i, label in enumerate(exact["players"]):
    print(
      f"{label:<10}{tm['values'][i]:>9.4f}"
      + "".join(f"{blocks[k][i]:>11.4f}" for k in (2, 3, 4))
      + f"{perm['values'][i]:>9.4f}"
    )
  for k in (2, 3, 4):
    print(
      f"block K={k}: Spearman rank correlation with exact = {spearman(blocks[k], tm['values']):+.3f}, "
      f"max abs error = {np.max(np.abs(np.subtract(blocks[k], tm['values']))):.4f}"
    )
  print(
    f"permutation (64): Spearman = {spearman(perm['values'], tm['values']):+.3f}, max abs error = "
    f"{np.max(np.abs(np.subtract(perm['values'], tm['values']))):.4f}"
  )
  print(
    f"single-ablation drops: {np.round(tm['ablation_drop'], 4).tolist()}; cornerstones: {exact['cornerstones_by_task']}"
  )


if __name__ == "__main__":
  app.run(main)
