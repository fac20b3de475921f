"""The JAX-free half of the experiment config: its error type, its sections that need no component, and the
run-name grammar.

Names follow the paper's grammar `[pos]_[pct]_[size]_[layers]` (e.g. `middle_70_285m_12l`) or
`baseline_[size]_[layers]`. The layer plan is derived from the config on use (`LayerPlan.from_config`), never
stored, so command-line overrides re-derive d_ff'. The whole ConfigDict is assembled in
`ffnjax.train.experiment.default_config()` from each component's section.
"""

from __future__ import annotations

import re

import ml_collections

from ffnjax.core import placement
from ffnjax.core.errors import ConfigError

# The run-name grammar, its one regex: `baseline_FAMILY` or `POSITION_PCT_FAMILY`. A config's family is exactly
# `SIZE_NLl` (parse_name insists); a results table's may carry a suffix, e.g. the budget of `baseline_570m_40l_2x`.
NAME = re.compile(
  r"^(?:(?P<base>baseline)|(?P<pos>[a-z]+)_(?P<pct>\d+))_"
  r"(?P<family>(?:(?P<size>[0-9a-z.]+)_(?P<layers>\d+)l)?(?P<suffix>.*))$"
)


def placement_config() -> ml_collections.ConfigDict:
  # budget: token-budget label of the over-training study (e.g. "2x"); "" = the paper's standard run length.
  return ml_collections.ConfigDict(dict(position=placement.BASELINE, ratio=100, size="", budget=""))


def eval_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      tasks="lambada_openai,wikitext,hellaswag,zsre",  # comma-separated ffnjax.eval task names
      data_dir="embedded",  # "embedded" = the held-out default-corpus sets; else a directory of upstream files
      limit=0,  # examples per task, 0 = all
      max_length=0,  # 0 = data.seq_len
      token_budget=16384,  # tokens per scoring batch: bounds evaluator memory
    )
  )


# One line per field of the sections above (and of the config's top level); `--show_config` prints it.
PLACEMENT_HELP = {
  "position": "where the FFN capacity goes: baseline | first | middle | final (arXiv 2508.17734)",
  "ratio": "percent of layers keeping an FFN (1..100; 100 = baseline); their d_ff' grows to keep parameters",
  "size": "size label used in run names, e.g. 285m",
  "budget": 'token-budget label of the over-training study, e.g. 2x ("" = the paper\'s run length)',
}
EVAL_HELP = {
  "tasks": "comma-separated evaluation tasks (python -m ffnjax.eval)",
  "data_dir": "embedded (held-out default-corpus sets) or a directory from python -m ffnjax.data.fetch --what=eval",
  "limit": "examples per task (0 = all)",
  "max_length": "evaluation context in tokens (0 = data.seq_len)",
  "token_budget": "tokens per scoring batch: bounds evaluator memory",
}
TOP_HELP = {
  "name": "run name [pos]_[pct]_[size]_[layers], e.g. middle_70_285m_12l (set by the config file)",
  "seed": "parameter-initialisation seed",
}


def parse_name(name: str) -> dict:
  """`middle_70_285m_12l` -> {position, ratio, size, num_layers}; clear error otherwise."""
  m = NAME.match(name)
  if not m or not m["size"] or m["suffix"]:
    raise ConfigError(
      f"config name {name!r}: expected 'baseline_SIZE_NL' or 'POSITION_PCT_SIZE_NL' with POSITION in "
      f"{placement.POSITIONS}, e.g. 'middle_70_285m_12l'"
    )
  if m["base"]:
    position, ratio = placement.BASELINE, 100
  else:
    position, ratio = m["pos"], int(m["pct"])
    if position not in placement.POSITIONS:
      raise ConfigError(f"config name {name!r}: position {position!r} must be one of {placement.POSITIONS}")
    if ratio == 100:
      position = placement.BASELINE
  return dict(position=position, ratio=ratio, size=m["size"], num_layers=int(m["layers"]))


def apply_name(config: ml_collections.ConfigDict, name: str, sizes: dict) -> ml_collections.ConfigDict:
  """Sets placement and model size from a name; `sizes` maps 'SIZE_NL' -> dict of model fields (+ train)."""
  parsed = parse_name(name)
  key = f"{parsed['size']}_{parsed['num_layers']}l"
  if key not in sizes:
    raise ConfigError(f"config name {name!r}: unknown size {key!r}; known sizes: {sorted(sizes)}")
  spec = dict(sizes[key])
  train_overrides = spec.pop("train", {})
  config.model.update(spec)
  config.train.update(train_overrides)
  config.placement.position = parsed["position"]
  config.placement.ratio = parsed["ratio"]
  config.placement.size = parsed["size"]
  config.name = name
  return config


def decay_start_step(train_cfg) -> int:
  """First step of the WSD decay: a checkpoint before it can be extended to a longer run."""
  return int(round(train_cfg.steps * (1.0 - train_cfg.decay_fraction)))


def run_name(config) -> str:
  """The name of the run a config describes, re-derived so that overrides show (e.g. a changed ratio)."""
  return placement.LayerPlan.from_config(config).name
