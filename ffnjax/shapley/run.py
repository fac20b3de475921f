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
    from ffnjax.evaluate import load_tokenizer
    from ffnjax.train.checkpoint import restore_params
    params, config, plan = restore_params(checkpoint, step)
    return params, config, plan, load_tokenizer(config)
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
        token_budget, output, chance_tolerance: float = 0.02) -> dict:
  from ffnjax import shapley
  from ffnjax.analysis.figures import save
  from ffnjax.shapley import figures
  from ffnjax.shapley.value import ModelValue

  if method not in METHODS:
    raise ValueError(f"--method={method!r}: must be one of {METHODS}")
  params, config, plan, tokenizer = load_model(checkpoint, hf_model, step)
  players = shapley.players_from_layer_types(plan.layer_types)
  n = len(players)
  if method == "block" and not 1 <= level <= n:
    raise ValueError(f"--level={level}: must be in 1..{n} (the number of players)")
  if method == "exact" and n > shapley.MAX_EXACT_PLAYERS:
    raise ValueError(f"--method=exact: {n} players need 2^{n} coalitions; use --method=block or permutation")
  os.makedirs(output, exist_ok=True)
  cache = shapley.CoalitionCache(os.path.join(output, "coalitions.jsonl"), n,
                                 meta={"model": plan.name, "tasks": tasks, "limit": limit, "data_dir": data_dir,
                                       "step": step})
  total = needed_coalitions(method, n, level)
  value = ModelValue(config, plan, params, tokenizer, tasks=tasks, data_dir=data_dir, limit=limit,
                     max_length=max_length, token_budget=token_budget,
                     expected=None if total is None else max(total - len(cache), 0))
  v = shapley.cached(value, cache, v_batch=value.batch)
  t0 = time.perf_counter()
  ablation = shapley.single_ablation(v, n, v_batch=v.batch)
  result = {"model": plan.name, "tasks": tasks, "method": method, "players": [p.label for p in players],
            "v_full": ablation.full, "v_without": list(map(float, ablation.without)),
            "ablation_drop": list(map(float, ablation.drop)), "chance": value.chance}
  stderr = None
  if method == "block":
    phi = shapley.block_shapley(v, n, level, v_batch=v.batch)
    result["level"] = level
  elif method == "exact":
    phi = shapley.exact_shapley(v, n, v_batch=v.batch)
  else:
    estimate = shapley.permutation_shapley(v, n, permutations, seed=seed, v_batch=v.batch)
    phi, stderr = estimate.values, estimate.stderr
    result["convergence"] = json.loads(json.dumps(estimate.convergence(), default=lambda a: np.asarray(a).tolist()))
    result["stderr"] = list(map(float, stderr))
  # Cornerstones need an accuracy value and a full model above chance (else every removal "collapses").
  meaningful = value.chance is not None and ablation.full > value.chance + chance_tolerance
  cornerstones = shapley.find_cornerstones(ablation.without, value.chance, chance_tolerance) if meaningful else []
  result["cornerstones_defined"] = meaningful
  try:
    shares = list(map(float, shapley.shares(phi)))
  except ValueError:  # no player adds value (e.g. an untrained model): shares are undefined
    shares = None
  result.update({"values": list(map(float, phi)), "shares": shares,
                 "cornerstones": [players[i].label for i in cornerstones], "coalitions_cached": len(cache),
                 "coalitions_evaluated": value.done, "compilations": value.compilations,
                 "wall_time_s": time.perf_counter() - t0,
                 "coalitions_per_s": value.done / max(time.perf_counter() - t0, 1e-9)})
  rundir.write_json(rundir.join(output, "shapley.json"), result)
  save(figures.player_values_figure(phi, players, cornerstones=cornerstones, stderr=stderr),
       os.path.join(output, "shapley_values"))
  save(figures.ablation_figure(ablation.drop, players,
                               chance_drop=None if value.chance is None else ablation.full - value.chance),
       os.path.join(output, "single_ablation"))
  return result
