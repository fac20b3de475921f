"""The evaluator's output file `RUN/eval/results.json`: its format, a writer and a loader.

This module is the single definition of the format; the evaluator writes it with `make_results` +
`write_results`, analysis reads it with `load_results`. Format (version 1):

```
{
  "format_version": 1,                       # optional on read (absent = 1)
  "model": "final_50_285m_12l",              # the run's model name (LayerPlan.name)
  "plan": {...},                             # LayerPlan.to_json(): name, num_layers, position, ratio,
                                             #   layer_types (index 0 = layer 1), d_ff, d_ff_expanded, params_*
  "seed": 0,                                 # optional: the run's config.seed
  "wall_time_s": 123.4,                      # optional: evaluation wall time
  "checkpoint_step": 20000,                  # optional
  "tasks": {
    "hellaswag": {
      "metrics": {"acc": 0.31, "acc_stderr": 0.004, "acc_norm": 0.35, "acc_norm_stderr": 0.004},
      "chance": 0.25,                        # chance level of the accuracy metrics, null when not defined
      "num_examples": 10042,
      "higher_is_better": {"acc": true, "acc_norm": true}
    },
    "wikitext": {
      "metrics": {"word_perplexity": 31.2, "byte_perplexity": 1.8, "bits_per_byte": 0.85},
      "chance": null, "num_examples": 62,
      "higher_is_better": {"word_perplexity": false, "byte_perplexity": false, "bits_per_byte": false}
    }
  }
}
```
A metric named `X_stderr` is the standard error of metric `X`; it is not a metric of its own. NaN/inf values are
written as null (JSON has no NaN) and read back as "not computable": analysis skips them. Other top-level keys
are allowed and kept (the evaluator may add e.g. "config" or "limit").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from ffnjax.core import rundir
from ffnjax.core.errors import DataError

FORMAT_VERSION = 1
STDERR_SUFFIX = "_stderr"

# Metrics where lower is better (RI sign -1). Any other metric counts as accuracy-like (higher is better).
LOWER_IS_BETTER_NAMES = ("perplexity", "ppl", "bits_per_byte", "loss", "nll")

# Chance levels (1 / number of choices) for tables that carry no `chance` column, e.g. published numbers.
# The evaluator writes its own `chance` per task into results.json; these are only a fallback.
KNOWN_CHANCE = {
  "hellaswag": 0.25,
  "piqa": 0.5,
  "arc_easy": 0.25,
  "arc_challenge": 0.25,
  "winogrande": 0.5,
  "boolq": 0.5,
  "openbookqa": 0.25,
}


class AnalysisError(DataError):
  """Bad analysis input; the message names the file or field and what was expected."""


def default_higher_is_better(metric: str) -> bool:
  """The sign rule by name: perplexity / ppl / bits_per_byte / loss / nll are lower-is-better."""
  name = metric.lower()
  return not any(token in name for token in LOWER_IS_BETTER_NAMES)


def is_stderr(metric: str) -> bool:
  return metric.endswith(STDERR_SUFFIX)


def task_entry(
  metrics: Mapping[str, float],
  *,
  chance: float | None,
  num_examples: int,
  higher_is_better: Mapping[str, bool] | None = None,
) -> dict:
  """One task's record. `higher_is_better` defaults per metric from its name (see default_higher_is_better)."""
  declared = dict(higher_is_better or {})
  metrics = {k: float(v) for k, v in metrics.items()}
  hib = {m: bool(declared.get(m, default_higher_is_better(m))) for m in metrics if not is_stderr(m)}
  unknown = set(declared) - set(hib)
  if unknown:
    raise AnalysisError(f"higher_is_better names metrics {sorted(unknown)} that are not in metrics {sorted(hib)}")
  return {
    "metrics": metrics,
    "chance": None if chance is None else float(chance),
    "num_examples": int(num_examples),
    "higher_is_better": hib,
  }


def make_results(
  model: str,
  plan: Mapping,
  tasks: Mapping[str, Mapping],
  *,
  seed: int | None = None,
  wall_time_s: float | None = None,
  **extra,
) -> dict:
  """A complete results.json object; `tasks` maps task name -> task_entry(...)."""
  results = {"format_version": FORMAT_VERSION, "model": model, "plan": dict(plan), "tasks": {}}
  for task, entry in tasks.items():
    results["tasks"][task] = dict(entry)
  if seed is not None:
    results["seed"] = int(seed)
  if wall_time_s is not None:
    results["wall_time_s"] = float(wall_time_s)
  results.update(extra)
  validate_results(results)
  return results


def validate_results(results: Mapping, where: str = "results") -> None:
  """Raises AnalysisError naming the first malformed field."""
  if not isinstance(results, Mapping):
    raise AnalysisError(f"{where}: expected a JSON object, got {type(results).__name__}")
  version = results.get("format_version", FORMAT_VERSION)
  if version != FORMAT_VERSION:
    raise AnalysisError(f"{where}: format_version={version!r}, this code reads version {FORMAT_VERSION}")
  if not isinstance(results.get("model"), str) or not results["model"]:
    raise AnalysisError(f"{where}: field 'model' must be a non-empty string, got {results.get('model')!r}")
  if not isinstance(results.get("plan", {}), Mapping):
    raise AnalysisError(f"{where}: field 'plan' must be an object (LayerPlan.to_json())")
  tasks = results.get("tasks")
  if not isinstance(tasks, Mapping):
    raise AnalysisError(f"{where}: field 'tasks' must be an object mapping task name -> task record")
  for task, entry in tasks.items():
    field = f"{where}: tasks.{task}"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("metrics"), Mapping):
      raise AnalysisError(f"{field}.metrics must be an object mapping metric name -> number")
    for metric, value in entry["metrics"].items():
      if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise AnalysisError(f"{field}.metrics.{metric} must be a number or null, got {value!r}")
    chance = entry.get("chance")
    if chance is not None and (not isinstance(chance, (int, float)) or not 0.0 <= chance <= 1.0):
      raise AnalysisError(f"{field}.chance must be null or a number in [0, 1], got {chance!r}")
    hib = entry.get("higher_is_better", {})
    if not isinstance(hib, Mapping) or not all(isinstance(v, bool) for v in hib.values()):
      raise AnalysisError(f"{field}.higher_is_better must map metric name -> true/false")
  wall = results.get("wall_time_s")
  if wall is not None and not isinstance(wall, (int, float)):
    raise AnalysisError(f"{where}: field 'wall_time_s' must be a number of seconds, got {wall!r}")


def metric_items(entry: Mapping):
  """(metric, value, stderr | None, higher_is_better) for each real metric of a task record."""
  metrics = entry["metrics"]
  declared = entry.get("higher_is_better", {})
  for metric, value in metrics.items():
    if is_stderr(metric) or value is None:  # null = not computable (written for NaN/inf)
      continue
    stderr = metrics.get(metric + STDERR_SUFFIX)
    yield (
      metric,
      float(value),
      (None if stderr is None else float(stderr)),
      bool(declared.get(metric, default_higher_is_better(metric))),
    )


def write_results(path: str, results: Mapping) -> None:
  """Validates, then writes atomically (temporary file + rename) so a reader never sees half a file."""
  validate_results(results, where=path)
  rundir.write_json(path, _finite_or_none(results))


def load_results(path: str) -> dict:
  if not rundir.exists(path):
    raise AnalysisError(f"{path}: no such results file")
  try:
    results = json.loads(rundir.read_text(path))
  except json.JSONDecodeError as e:
    raise AnalysisError(f"{path}: not valid JSON ({e})") from None
  validate_results(results, where=path)
  return results


def _finite_or_none(obj):
  """NaN/inf are not JSON; the evaluator may produce them (e.g. an overflowing perplexity). Store as null."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, Mapping):
    return {k: _finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite_or_none(v) for v in obj]
  return obj
