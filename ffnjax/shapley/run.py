"""Runs a Shapley analysis of a model's sub-layers: single ablation, then the chosen estimator; writes
OUTPUT/shapley.json, the coalition cache OUTPUT/coalitions.jsonl and the figures. `python -m ffnjax.shapley`
is its command line."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ffnjax.core import rundir

METHODS = ("block", "exact", "permutation")


def load_model(checkpoint: str | None, hf_model: str | None, step: int | None):
  """(params, config, plan, tokenizer) from an ffnjax run or a Hugging Face directory."""
  if bool(checkpoint) == bool(hf_model):
    raise ValueError("give exactly one of --checkpoint=RUN_DIR or --hf_model=DIR")
  if checkpoint:
    from ffnjax.eval.run import load_tokenizer
    from ffnjax.train.checkpoint import restore_params
    params, config, plan = restore_params(checkpoint, step)
    return params, config, plan, load_tokenizer(config, run_dir=checkpoint)
  from ffnjax.convert import load_hf
  from ffnjax.data.tokenizers import HFTokenizer
  params, config, plan = load_hf(hf_model)
  return params, config, plan, HFTokenizer(hf_model)


def needed_coalitions(method: str, n: int, level: int) -> int | None:
  """Distinct coalitions the run evaluates (single ablation + the estimator's), for progress and ETA."""
  from ffnjax.shapley import block_coalitions, grand_coalition
  full = grand_coalition(n)
  ablation = {full} | {full - {i} for i in range(n)}
  if method == "block":
    return len(ablation | set(block_coalitions(n, level)))
  if method == "exact":
    return 2 ** n
  return None  # permutation sampling: known only as it goes


def run(checkpoint, hf_model, step, tasks, data_dir, method, level, permutations, seed, limit, max_length,
        token_budget, output, chance_tolerance: float = 0.02, game: str = "per_task",
        perplexity_value: bool = False) -> dict:
  """One game per task (the paper); `game="task_mean"` adds cornerstones read from the task-mean game and
  `perplexity_value` admits perplexity tasks with -log(perplexity) as their value (both our extensions)."""
  from ffnjax import shapley
  from ffnjax.shapley import figures, pertask
  from ffnjax.shapley.value import ModelValue, task_value

  if method not in METHODS:
    raise ValueError(f"--method={method!r}: must be one of {METHODS}")
  if game not in pertask.GAMES:
    raise ValueError(f"--game={game!r}: must be one of {pertask.GAMES}")
  if chance_tolerance < 0:
    raise ValueError(f"--chance_tolerance={chance_tolerance}: must be >= 0")
  from ffnjax.eval.tasks import parse_tasks
  pertask.check_game_tasks(parse_tasks(tasks), perplexity_value)  # before loading any model
  params, config, plan, tokenizer = load_model(checkpoint, hf_model, step)
  players = shapley.players_from_layer_types(plan.layer_types)
  labels = [p.label for p in players]
  n = len(players)
  if method == "block" and not 1 <= level <= n:
    raise ValueError(f"--level={level}: must be in 1..{n} (the number of players)")
  if method == "exact" and n > shapley.MAX_EXACT_PLAYERS:
    raise ValueError(f"--method=exact: {n} players need 2^{n} coalitions; use --method=block or permutation")
  rundir.mkdirs(output)
  value = ModelValue(config, plan, params, tokenizer, tasks=tasks, data_dir=data_dir, limit=limit,
                     max_length=max_length, token_budget=token_budget)
  task_names = [p.task.name for p in value.prepared]
  source = checkpoint or hf_model
  cache = shapley.CoalitionCache(rundir.join(output, "coalitions.jsonl"), n,
                                 meta={"model": plan.name,
                                       "source": source if rundir.is_remote(source) else os.path.abspath(source),
                                       "tasks": task_names, "limit": limit, "data_dir": data_dir,
                                       "step": step, "players": labels, "record": "per_task"},
                                 fields=pertask.CACHE_FIELDS)
  total = needed_coalitions(method, n, level)
  value.expected = None if total is None else max(total - len(cache), 0)

  def evaluate(coalitions):
    return [{r.task: (task_value(r), pertask.example_scores(p.task.primary_metric, r.per_doc))
             for p, r in zip(value.prepared, results)} for results in value.task_results(coalitions)]

  games = pertask.TaskGames(evaluate, task_names, cache)
  t0 = time.perf_counter()
  full = shapley.grand_coalition(n)
  reports, estimates = {}, {}
  for prepared in value.prepared:
    name = prepared.task.name
    v = games.task(name)
    ablation = shapley.single_ablation(v, n, v_batch=v.batch)
    stderr = v_empty = None
    if method == "block":
      phi = shapley.block_shapley(v, n, level, v_batch=v.batch)
    elif method == "exact":
      phi = shapley.exact_shapley(v, n, v_batch=v.batch)
      v_empty = v(frozenset())
    else:
      estimate = shapley.permutation_shapley(v, n, permutations, seed=seed, v_batch=v.batch)
      phi, stderr, v_empty = estimate.values, estimate.stderr, v(frozenset())
      estimates[name] = estimate
    reports[name] = pertask.task_report(labels, phi, ablation, metric=pertask.value_metric(prepared.task),
                                        chance=prepared.task.chance(prepared.docs), num_examples=len(prepared.docs),
                                        tolerance=chance_tolerance, v_empty=v_empty, stderr=stderr)
    if name in estimates:
      reports[name]["convergence"] = json.loads(json.dumps(estimates[name].convergence(),
                                                           default=lambda a: np.asarray(a).tolist()))
  assert full in cache
  wall = time.perf_counter() - t0
  result = {"model": plan.name, "source": checkpoint or hf_model, "method": method, "game": game,
            "tasks_order": task_names, "limit": limit, "players": labels,
            "cornerstone_rule": {"collapse": "v_t(N \\ {i}) <= chance_t + tolerance (removing player i alone drops "
                                             "task t to or below chance)",
                                 "tolerance": chance_tolerance,
                                 "defined": "only for tasks where v_t(N) > chance_t + tolerance"},
            "shares_rule": "max(phi_i, 0) / sum_j max(phi_j, 0) per task, then averaged over tasks",
            "tasks": reports}
  if method == "block":
    result["level"] = level
  if method == "permutation":
    result.update({"permutations": permutations, "seed": seed})
  result.update(pertask.summarize(labels, reports, game=game, tolerance=chance_tolerance))
  result.update({"coalitions_cached": len(cache), "coalitions_evaluated": value.done,
                 "compilations": value.compilations, "wall_time_s": wall,
                 "coalitions_per_s": value.done / max(wall, 1e-9)})
  rundir.write_json(rundir.join(output, "shapley.json"), result)
  figures.save_run_figures(result, players, output, model=_model_label(checkpoint, hf_model, plan))
  return result


def _model_label(checkpoint, hf_model, plan) -> str:
  """What the figures call the model: the directory's name and the layer plan."""
  source = (checkpoint or hf_model or "").rstrip("/")
  return f"{os.path.basename(source)} ({plan.name})" if source else plan.name
