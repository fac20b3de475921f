"""Runs a Shapley analysis of a model's sub-layers: single ablation, then the chosen estimator; writes
OUTPUT/shapley.json, the coalition cache OUTPUT/coalitions.jsonl and the figures. `python -m ffnjax.shapley`
is its command line."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ffnjax import shapley
from ffnjax.convert import load_hf
from ffnjax.core import bootstrap, rundir
from ffnjax.data.tokenizers import HFTokenizer
from ffnjax.eval.tasks import parse_tasks
from ffnjax.eval.tasks.base import MultipleChoiceTask, Task
from ffnjax.shapley import block_coalitions, figures, grand_coalition, intervals, pertask, single_ablation, summary
from ffnjax.shapley.players import players_of_layers
from ffnjax.shapley.value import ModelValue, task_value
from ffnjax.train.checkpoint import restore_params
from ffnjax.train.runconfig import load_tokenizer

METHODS = ("block", "exact", "permutation")


def load_model(checkpoint: str | None, hf_model: str | None, step: int | None):
  """(params, config, plan, tokenizer) from an ffnjax run or a Hugging Face directory."""
  if bool(checkpoint) == bool(hf_model):
    raise ValueError("give exactly one of --checkpoint=RUN_DIR or --hf_model=DIR")
  if checkpoint:
    params, config, plan = restore_params(checkpoint, step)
    return params, config, plan, load_tokenizer(config, run_dir=checkpoint)
  params, config, plan = load_hf(hf_model)
  return params, config, plan, HFTokenizer(hf_model)


def parse_chance(spec: str | None, tasks: list[Task]) -> dict[str, float]:
  """--chance "lambada_openai=0,zsre=0" -> {task: level}, for tasks of the game that have no chance level of their
  own (open-vocabulary accuracies: LAMBADA's last word, zsRE's answer tokens); a choice task keeps 1 / choices."""
  out, by_name = {}, {t.name: t for t in tasks}
  for item in filter(None, (spec or "").split(",")):
    name, eq, level = item.partition("=")
    name = name.strip()
    try:
      value = float(level)
    except ValueError:
      value = float("nan")
    if not eq or not 0 <= value <= 1:
      raise ValueError(f"--chance={spec!r}: each item must be TASK=LEVEL with LEVEL in [0, 1] (e.g. lambada_openai=0)")
    if name not in by_name:
      raise ValueError(f"--chance: {name!r} is not one of --tasks ({', '.join(by_name)})")
    if by_name[name].primary_metric is None or isinstance(by_name[name], MultipleChoiceTask):
      raise ValueError(
        f"--chance: {name!r} has a chance level of its own (1 / choices) or no accuracy; only open-vocabulary "
        "accuracy tasks (lambada_openai, zsre) take one"
      )
    out[name] = value
  return out


def needed_coalitions(method: str, n: int, level: int) -> int | None:
  """Distinct coalitions the run evaluates (single ablation + the estimator's), for progress and ETA."""
  full = grand_coalition(n)
  ablation = {full} | {full - {i} for i in range(n)}
  if method == "block":
    return len(ablation | set(block_coalitions(n, level)))
  if method == "exact":
    return 2**n
  return None  # permutation sampling: known only as it goes


def run(
  checkpoint,
  hf_model,
  step,
  tasks,
  data_dir,
  method,
  level,
  permutations,
  seed,
  limit,
  max_length,
  token_budget,
  output,
  chance_tolerance: float = 0.02,
  game: str = "per_task",
  perplexity_value: bool = False,
  value: str = "acc",
  resamples: int = bootstrap.RESAMPLES,
  bootstrap_seed: int = bootstrap.SEED,
  target_ci: float | None = None,
  pilot_limit: int = 50,
  continue_after_pilot: bool = False,
  player_layers: str | None = None,
  chance: str | None = None,
) -> dict:
  """One game per task (the paper); `game="task_mean"` adds cornerstones read from the task-mean game,
  `perplexity_value` admits perplexity tasks with -log(perplexity) as their value and `value` plays the games on
  the gold continuation's log-likelihood (our extensions). Every value, drop and share gets a bootstrap interval
  (`resamples`, `bootstrap_seed`). With `target_ci`, a pilot first estimates the examples each task needs for
  that half-width, and the run stops there unless `continue_after_pilot`. `player_layers` ("1-2") plays the
  sub-game of those layers' sub-layers, every other sub-layer kept (ours: a cheaper, different game). `chance`
  ("lambada_openai=0,zsre=0") gives tasks without a chance level one, so their cornerstones can be read (ours)."""
  if method not in METHODS:
    raise ValueError(f"--method={method!r}: must be one of {METHODS}")
  if game not in pertask.GAMES:
    raise ValueError(f"--game={game!r}: must be one of {pertask.GAMES}")
  if value not in pertask.VALUES:
    raise ValueError(f"--value={value!r}: must be one of {pertask.VALUES}")
  if chance_tolerance < 0:
    raise ValueError(f"--chance_tolerance={chance_tolerance}: must be >= 0")
  if resamples < 10:
    raise ValueError(f"--resamples={resamples}: must be >= 10")
  if target_ci is not None and target_ci <= 0:
    raise ValueError(f"--target_ci={target_ci}: must be > 0 (the wanted half-width of a 95 % interval)")
  if target_ci is not None and pilot_limit < 2:
    raise ValueError(f"--pilot_limit={pilot_limit}: must be >= 2 examples")
  task_list = parse_tasks(tasks)
  pertask.check_game_tasks(task_list, perplexity_value)  # before loading any model
  chance_given = parse_chance(chance, task_list)
  params, config, plan, tokenizer = load_model(checkpoint, hf_model, step)
  players = shapley.players_from_layer_types(plan.layer_types)
  if player_layers:
    players = players_of_layers(players, player_layers)
  labels = [p.label for p in players]
  n = len(players)
  if method == "block" and not 1 <= level <= n:
    raise ValueError(f"--level={level}: must be in 1..{n} (the number of players)")
  if method == "exact" and n > shapley.MAX_EXACT_PLAYERS:
    raise ValueError(f"--method=exact: {n} players need 2^{n} coalitions; use --method=block or permutation")
  rundir.mkdirs(output)
  source = checkpoint or hf_model

  def open_games(at: str, lim: int, expected: int | None):
    model_value = ModelValue(
      config,
      plan,
      params,
      tokenizer,
      tasks=tasks,
      data_dir=data_dir,
      limit=lim,
      max_length=max_length,
      token_budget=token_budget,
    )
    model_value.players = players  # a sub-game's players: keep masks leave the other sub-layers kept
    names = [p.task.name for p in model_value.prepared]
    cache = shapley.CoalitionCache(
      rundir.join(at, "coalitions.jsonl"),
      n,
      meta={
        "model": plan.name,
        "source": source if rundir.is_remote(source) else os.path.abspath(source),
        "tasks": names,
        "limit": lim,
        "data_dir": data_dir,
        "step": step,
        "players": labels,
        "record": "per_task",
      },
      fields=pertask.CACHE_FIELDS,
    )
    model_value.expected = None if expected is None else max(expected - len(cache), 0)

    def evaluate(coalitions):
      return [
        {
          r.task: (
            task_value(r),
            pertask.example_scores(p.task.primary_metric, r.per_doc),
            pertask.gold_scores(r.per_doc),
          )
          for p, r in zip(model_value.prepared, results)
        }
        for results in model_value.task_results(coalitions)
      ]

    metrics = {p.task.name: pertask.value_metric(p.task) for p in model_value.prepared}
    return model_value, pertask.TaskGames(evaluate, names, cache, metrics, value)

  boot = {"resamples": resamples, "seed": bootstrap_seed}
  pilot = None
  if target_ci is not None:
    pilot = _pilot(open_games, output, limit, pilot_limit, n, labels, target_ci, **boot)
    if not continue_after_pilot:
      return {"pilot": pilot, "players": labels, "tasks": {}, "stopped_after_pilot": True}

  model_value, games = open_games(output, limit, needed_coalitions(method, n, level))
  t0 = time.perf_counter()
  full = shapley.grand_coalition(n)
  ablation_coalitions = [full] + [full - {i} for i in range(n)]
  reports, estimates, cis = {}, {}, {}
  for prepared in model_value.prepared:
    name = prepared.task.name
    v = games.task(name)
    ablation = shapley.single_ablation(v, n, v_batch=v.batch)
    stderr = v_empty = None
    if method == "block":
      phi = shapley.block_shapley(v, n, level, v_batch=v.batch)
      coalitions = list(dict.fromkeys(ablation_coalitions + shapley.block_coalitions(n, level)))
      phi_fn = intervals.linear_phi(intervals.linear_map(lambda f: shapley.block_shapley(f, n, level), coalitions))
    elif method == "exact":
      phi = shapley.exact_shapley(v, n, v_batch=v.batch)
      v_empty = v(frozenset())
      coalitions = [frozenset(j for j in range(n) if m >> j & 1) for m in range(2**n)]
      phi_fn = intervals.linear_phi(intervals.exact_map(n, coalitions))
    else:
      estimate = shapley.permutation_shapley(v, n, permutations, seed=seed, v_batch=v.batch)
      phi, stderr, v_empty = estimate.values, estimate.stderr, v(frozenset())
      estimates[name] = estimate
      prefixes = [frozenset(p[:k].tolist()) for p in estimate.permutations for k in range(n + 1)]
      coalitions = list(dict.fromkeys(ablation_coalitions + prefixes))
      phi_fn = intervals.permutation_phi(estimate.permutations, coalitions, bootstrap.task_seed(bootstrap_seed, name))
    res = bootstrap.for_documents(len(prepared.docs), resamples, bootstrap.task_seed(bootstrap_seed, name))
    ci = intervals.task_intervals(coalitions, *games.examples(name, coalitions), n, phi_fn, res)
    corner, corner_ci = None, ci
    if value != "acc":  # cornerstones come from the accuracy game (a log-likelihood has no chance level)
      corner_ci = _ablation_intervals(games, name, ablation_coalitions, n, res, "acc")
      c_ablation = shapley.single_ablation(games.task(name, "acc"), n)
      corner = (games.metric(name, "acc"), c_ablation, corner_ci)
    cis[name] = (ci, corner_ci)
    reports[name] = pertask.task_report(
      labels,
      phi,
      ablation,
      ci,
      metric=games.metric(name),
      chance=chance_given.get(name, prepared.task.chance(prepared.docs)),
      tolerance=chance_tolerance,
      corner=corner,
      v_empty=v_empty,
      stderr=stderr,
    )
    if name in estimates:
      reports[name]["convergence"] = json.loads(
        json.dumps(estimates[name].convergence(), default=lambda a: np.asarray(a).tolist())
      )
  assert full in games.cache
  wall = time.perf_counter() - t0
  result = {
    "model": plan.name,
    "source": source,
    "method": method,
    "game": game,
    "value": value,
    "tasks_order": list(reports),
    "limit": limit,
    "players": labels,
    "cornerstone_rule": {
      "collapse": "v_t(N \\ {i}) <= chance_t + tolerance (removing player i alone drops "
      "task t to or below chance; the paper's reading, point values)",
      "significance": "and the drop's 95 % interval excludes 0 (ours)",
      "tolerance": chance_tolerance,
      "game": "the accuracy game (acc_norm where defined, else acc), whatever the value",
      "defined": "only for tasks where v_t(N) > chance_t + tolerance and v_t(N)'s 95 % interval lies above chance_t",
      "chance_given": chance_given,  # --chance: levels given to tasks that have none (ours)
    },
    "intervals": {
      "kind": "percentile bootstrap over each task's examples, the same resamples for every "
      "coalition" + ("; each replicate also redraws the sampled permutations" if method == "permutation" else ""),
      "confidence": bootstrap.CONFIDENCE,
      "resamples": resamples,
      "bootstrap_seed": bootstrap_seed,
    },
    "shares_rule": "max(phi_i, 0) / sum_j max(phi_j, 0) per task, then averaged over tasks",
    "tasks": reports,
  }
  if method == "block":
    result["level"] = level
  if method == "permutation":
    result.update({"permutations": permutations, "seed": seed})
  if pilot is not None:
    result["pilot"] = pilot
  result.update(pertask.summarize(labels, reports, game=game, tolerance=chance_tolerance, ci=cis, **boot))
  result.update(
    {
      "coalitions_cached": len(games.cache),
      "coalitions_evaluated": model_value.done,
      "compilations": model_value.compilations,
      "wall_time_s": wall,
      "coalitions_per_s": model_value.done / max(wall, 1e-9),
    }
  )
  rundir.write_json(rundir.join(output, "shapley.json"), result)
  rundir.write_text(rundir.join(output, "shapley.md"), summary.markdown(result))
  figures.save_run_figures(result, players, output, model=_model_label(checkpoint, hf_model, plan))
  return result


def _ablation_intervals(games, task: str, coalitions: list, n: int, res, value: str):
  """Intervals of v(N) and of the single-ablation drops in task's game under `value`."""

  a = intervals.linear_map(lambda f: single_ablation(f, n).drop, coalitions)
  return intervals.task_intervals(coalitions, *games.examples(task, coalitions, value), n, intervals.linear_phi(a), res)


def _pilot(
  open_games, output: str, limit: int, pilot_limit: int, n: int, labels, target: float, *, resamples: int, seed: int
) -> dict:
  """Examples each task needs for drops (and v(N)) within +-target, from the single ablation of a pilot: the
  run's own cache when it already holds the single ablation (a previous run), else a pilot of `pilot_limit`
  examples cached under OUTPUT/pilot. Writes OUTPUT/pilot.json."""

  full = grand_coalition(n)
  coalitions = [full] + [full - {i} for i in range(n)]
  main_cache = rundir.join(output, "coalitions.jsonl")
  model_value, games = None, None
  if rundir.exists(main_cache):
    model_value, games = open_games(output, limit, None)
    if not all(c in games.cache for c in coalitions):
      model_value = games = None
  source = "the run's coalition cache" if games else f"a pilot of {pilot_limit} examples per task"
  if games is None:
    model_value, games = open_games(rundir.join(output, "pilot"), pilot_limit, len(coalitions))
  out = {"target_half_width": target, "from": source, "tasks": {}}
  for prepared in model_value.prepared:
    name = prepared.task.name
    num_examples = len(prepared.docs)
    res = bootstrap.for_documents(num_examples, resamples, bootstrap.task_seed(seed, name))
    ci = _ablation_intervals(games, name, coalitions, n, res, games.value)
    widths = np.array([intervals.half_width(i) for i in ci.drop])
    worst = int(np.argmax(widths))
    out["tasks"][name] = {
      "metric": games.metric(name),
      "num_examples": num_examples,
      "v_full": ci.full.value,
      "v_full_half_width": intervals.half_width(ci.full),
      "drop_half_width_median": float(np.median(widths)),
      "drop_half_width_max": float(widths[worst]),
      "widest": labels[worst],
      "examples_for_median_drop": intervals.examples_for_half_width(float(np.median(widths)), num_examples, target),
      "examples_for_every_drop": intervals.examples_for_half_width(float(widths[worst]), num_examples, target),
      "examples_for_v_full": intervals.examples_for_half_width(intervals.half_width(ci.full), num_examples, target),
    }
  rundir.write_json(rundir.join(output, "pilot.json"), out)
  return out


def _model_label(checkpoint, hf_model, plan) -> str:
  """What the figures call the model: the directory's name and the layer plan."""
  source = (checkpoint or hf_model or "").rstrip("/")
  return f"{os.path.basename(source)} ({plan.name})" if source else plan.name
