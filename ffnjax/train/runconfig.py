"""The run directory's config: config.json and plan.json, and the tokenizer the config names (the unit tools exchange).

Local or gs://: every read and write goes through ffnjax.core.rundir.
"""

from __future__ import annotations

import json
import os

import ml_collections

from ffnjax.core import rundir
from ffnjax.core.placement import LayerPlan
from ffnjax.data import tokenizers
from ffnjax.data.prepare import default_dir


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def load_config(run_dir: str) -> ml_collections.ConfigDict:
  path = rundir.join(run_dir, "config.json")
  if not rundir.exists(path):
    raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
  raw = rundir.read_json(path)
  if not (isinstance(raw, dict) and isinstance(raw.get("model"), dict) and isinstance(raw.get("data"), dict)):
    if isinstance(raw, dict) and ("architectures" in raw or "model_type" in raw):  # a Hugging Face model dir
      raise ValueError(
        f"{run_dir}: a Hugging Face model directory, not an ffnjax run; pass --hf_model={run_dir} "
        "(or import it first: python -m ffnjax.convert --hf_model=DIR --output=RUN_DIR)"
      )
    raise ValueError(
      f"{path}: not an ffnjax run config (no 'model'/'data' sections); expected a run directory "
      "written by ffnjax.train or ffnjax.convert"
    )
  return ml_collections.ConfigDict(raw)


def init_run_dir(run_dir: str, config, plan: LayerPlan) -> None:
  """Writes config.json and plan.json. Callers check a resume first: this is the run directory's first change."""
  rundir.check_writable(run_dir)
  rundir.write_json(rundir.join(run_dir, "config.json"), config_to_dict(config))
  rundir.write_json(rundir.join(run_dir, "plan.json"), plan.to_json())


def tokenizer_spec(config, run_dir: str | None = None) -> str:
  """data.tokenizer with an `hf:PATH` made usable: a relative PATH (what ffnjax.convert writes: `hf:tokenizer`) is
  relative to the run directory, so a moved or copied run still finds its tokenizer."""

  spec = config.data.tokenizer
  if tokenizers.parse_spec(spec)[0] == "hf" and not os.path.isabs(spec[3:]) and "://" not in spec:
    if not run_dir:
      raise ValueError(f"data.tokenizer={spec!r} is relative to its run directory; pass the run directory")
    return "hf:" + rundir.join(run_dir, spec[3:])
  return spec


def load_tokenizer(config, tokenizer_dir: str | None = None, run_dir: str | None = None):
  """The run's tokenizer (see tokenizer_spec for `hf:` paths; a `bpe:N` lives next to the training data)."""

  spec = tokenizer_spec(config, run_dir)
  if tokenizers.parse_spec(spec)[0] in ("gpt2", "hf"):  # neither lives next to the training data
    return tokenizers.get_tokenizer(spec)
  if not tokenizer_dir:
    tokenizer_dir = config.data.path or default_dir(config.data)
  return tokenizers.get_tokenizer(spec, tokenizer_dir)
