"""The run directory: config.json, plan.json, metrics.jsonl, checkpoints/ (the unit tools exchange)."""

from __future__ import annotations

import json
import os
import tempfile

import ml_collections

from ffnjax.placement import LayerPlan


def write_json_atomic(path: str, obj) -> None:
  """Temporary file + rename: a reader never sees half a file."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
  with os.fdopen(fd, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def load_config(run_dir: str) -> ml_collections.ConfigDict:
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
  with open(path) as f:
    raw = json.load(f)
  if not (isinstance(raw, dict) and isinstance(raw.get("model"), dict) and isinstance(raw.get("data"), dict)):
    if isinstance(raw, dict) and ("architectures" in raw or "model_type" in raw):  # a Hugging Face model dir
      raise ValueError(f"{run_dir}: a Hugging Face model directory, not an ffnjax run; pass --hf_model={run_dir} "
                       "(or import it first: python -m ffnjax.convert --hf_model=DIR --output=RUN_DIR)")
    raise ValueError(f"{path}: not an ffnjax run config (no 'model'/'data' sections); expected a run directory "
                     "written by ffnjax.train or ffnjax.convert")
  return ml_collections.ConfigDict(raw)


def init_run_dir(run_dir: str, config, plan: LayerPlan) -> None:
  try:
    os.makedirs(run_dir, exist_ok=True)
    probe = os.path.join(run_dir, ".write-test")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f"--workdir={run_dir} is not writable: {e.strerror}") from None
  write_json_atomic(os.path.join(run_dir, "config.json"), config_to_dict(config))
  write_json_atomic(os.path.join(run_dir, "plan.json"), plan.to_json())
