"""Per-run side information for reports: loss curves, wall times, configs, study.json. Tolerant of absences.

metrics.jsonl is appended across restarts, so a step can appear twice (re-run after resuming from a checkpoint);
the last record of each step wins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ffnjax.core import rundir

# Keys that, in a metrics.jsonl record, study.json entry or results.json, hold an elapsed wall time in seconds.
ELAPSED_KEYS = ("wall_time_s", "elapsed_s", "train_wall_time_s", "time_s")


def read_metrics(run_dir: str) -> list[dict]:
  """Records of RUN/metrics.jsonl with a numeric step (malformed or partial lines are skipped)."""
  text = rundir.read_text(rundir.join(run_dir, "metrics.jsonl"), default="")
  by_step: dict[int, dict] = {}
  for line in text.splitlines():
    try:
      rec = json.loads(line)
    except json.JSONDecodeError:
      continue  # a line cut by a crash
    if isinstance(rec, dict) and isinstance(rec.get("step"), (int, float)):
      by_step[int(rec["step"])] = rec
  return [by_step[s] for s in sorted(by_step)]


def loss_curve(run_dir: str, key: str = "loss") -> tuple[list[int], list[float]] | None:
  recs = [r for r in read_metrics(run_dir) if isinstance(r.get(key), (int, float))]
  if not recs:
    return None
  return [int(r["step"]) for r in recs], [float(r[key]) for r in recs]


def train_wall_time(run_dir: str) -> tuple[float | None, bool]:
  """(seconds, estimated): an elapsed key of the last record if logged, else the sum of step_time_s * steps."""
  recs = read_metrics(run_dir)
  if not recs:
    return None, False
  for key in ELAPSED_KEYS:
    if isinstance(recs[-1].get(key), (int, float)):
      return float(recs[-1][key]), False
  total, prev, seen = 0.0, 0, False
  for r in recs:
    if isinstance(r.get("step_time_s"), (int, float)):
      total += float(r["step_time_s"]) * max(0, int(r["step"]) - prev)
      seen = True
    prev = int(r["step"])
  return (total, True) if seen else (None, False)


def read_study_json(study_dir: str) -> dict:
  """STUDY/study.json as {run name: entry}; accepts {"runs": {...}}, {"runs": [...]} or a list; {} if absent."""
  try:
    data = rundir.read_json(rundir.join(study_dir, "study.json"), default={})
  except (json.JSONDecodeError, OSError):
    return {}
  runs = data.get("runs", data) if isinstance(data, dict) else data
  if isinstance(runs, list):
    return {str(r.get("name", r.get("run", i))): r for i, r in enumerate(runs) if isinstance(r, dict)}
  if isinstance(runs, dict):
    return {k: v for k, v in runs.items() if isinstance(v, dict)}
  return {}


def times_in(entry: Mapping) -> dict[str, float]:
  """Every numeric field whose name says it is a time in seconds (ends in `_s` and mentions time/wall)."""
  return {
    k: float(v)
    for k, v in entry.items()
    if isinstance(v, (int, float)) and not isinstance(v, bool) and k.endswith("_s") and ("time" in k or "wall" in k)
  }


def read_config(run_dir: str) -> dict:
  try:
    return rundir.read_json(rundir.join(run_dir, "config.json"))
  except (OSError, json.JSONDecodeError):
    return {}


def config_summary(config: Mapping) -> dict:
  """The fields a reader needs to compare runs (the full config.json stays in the run directory)."""
  out = {}
  for section, fields in (
    ("placement", ("position", "ratio", "size")),
    ("model", ("num_layers", "d_model", "d_ff", "num_heads", "num_kv_heads", "vocab_size")),
    ("train", ("steps", "global_batch", "peak_lr", "warmup_steps", "schedule")),
    ("data", ("source", "tokenizer", "seq_len")),
  ):
    sub = config.get(section)
    if isinstance(sub, Mapping):
      for f in fields:
        if f in sub:
          out[f"{section}.{f}"] = sub[f]
  if "seed" in config:
    out["seed"] = config["seed"]
  return out
