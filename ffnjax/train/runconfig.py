"""The run directory: config.json, plan.json, metrics.jsonl, checkpoints/ (the unit tools exchange).

Local or gs://: every read and write goes through ffnjax.core.rundir.
"""

from __future__ import annotations

import json

import ml_collections

from ffnjax.core import rundir
from ffnjax.core.placement import LayerPlan


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def load_config(run_dir: str) -> ml_collections.ConfigDict:
  path = rundir.join(run_dir, "config.json")
  if not rundir.exists(path):
    raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
  raw = rundir.read_json(path)
  if not (isinstance(raw, dict) and isinstance(raw.get("model"), dict) and isinstance(raw.get("data"), dict)):
    if isinstance(raw, dict) and ("architectures" in raw or "model_type" in raw):  # a Hugging Face model dir
      raise ValueError(f"{run_dir}: a Hugging Face model directory, not an ffnjax run; pass --hf_model={run_dir} "
                       "(or import it first: python -m ffnjax.convert --hf_model=DIR --output=RUN_DIR)")
    raise ValueError(f"{path}: not an ffnjax run config (no 'model'/'data' sections); expected a run directory "
                     "written by ffnjax.train or ffnjax.convert")
  return ml_collections.ConfigDict(raw)


def init_run_dir(run_dir: str, config, plan: LayerPlan) -> None:
  """Writes config.json and plan.json. Callers check a resume first: this is the run directory's first change."""
  rundir.check_writable(run_dir)
  rundir.write_json(rundir.join(run_dir, "config.json"), config_to_dict(config))
  rundir.write_json(rundir.join(run_dir, "plan.json"), plan.to_json())
