"""Expands a study config into its runs. Pure Python: the study runner and launch/sweep.py share it."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

from ffnjax.core import placement
from ffnjax.core.config import decay_start_step
from ffnjax.core.errors import ConfigError


class StudyError(ConfigError):
  """An invalid study config; the message names the field."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  name: str  # run directory name inside the study directory
  config_file: str  # e.g. configs/tiny.py
  config_arg: str  # e.g. middle_50_tiny_8l
  seed: int
  overrides: tuple[tuple[str, object], ...]  # (dotted field, value), applied in order

  @property
  def config_flag(self) -> str:
    return f"{self.config_file}:{self.config_arg}"

  def override_flags(self) -> list[str]:
    return [f"--config.{k}={v}" for k, v in self.overrides]


def _ints(text, field: str) -> list[int]:
  try:
    return [int(x) for x in str(text).split(",") if x.strip()]
  except ValueError:
    raise StudyError(f"study.{field}={text!r}: must be comma-separated integers") from None


CHINCHILLA_TOKENS_PER_PARAM = 20


def _budgets(study) -> list[float]:
  text = str(study.get("budgets", "") or "")
  try:
    budgets = [float(x) for x in text.split(",") if x.strip()]
  except ValueError:
    raise StudyError(
      f"study.budgets={text!r}: must be comma-separated multiples of the Chinchilla budget, e.g. '1,2,4,8'"
    ) from None
  if any(b <= 0 for b in budgets) or len(set(budgets)) != len(budgets):
    raise StudyError(f"study.budgets={text!r}: must be distinct positive numbers")
  return budgets


def budget_label(budget: float) -> str:
  return f"{budget:g}x"


def budget_steps(study, budget: float) -> int:
  """Steps for `budget` x Chinchilla (20 tokens per non-embedding parameter of the baseline, method.md §3):
  ceil(budget * 20 * N / (global_batch * seq_len)), with the study's overrides applied to batch and length."""
  config = build_run_config(
    RunSpec("budget", study.config_file, f"baseline_{study.size}", 0, tuple(_flatten(study.overrides.to_dict())))
  )
  n = placement.LayerPlan.from_config(config).param_count(non_embedding=True)
  tokens_per_step = config.train.global_batch * config.data.seq_len
  return max(1, -(-int(budget * CHINCHILLA_TOKENS_PER_PARAM * n) // tokens_per_step))


def _pre_decay(study, steps: int) -> int:
  """The WSD run's last pre-decay step, kept permanently (train.keep_every) so that a longer budget extends it."""
  config = build_run_config(
    RunSpec("budget", study.config_file, f"baseline_{study.size}", 0, tuple(_flatten(study.overrides.to_dict())))
  )
  config.train.steps = steps
  return max(1, decay_start_step(config.train))


def shorter_budget_run(runs: list[RunSpec], run: RunSpec) -> RunSpec | None:
  """The same model and seed on the next smaller token budget: the run that `run` extends (None if none)."""
  budget = dict(run.overrides).get("placement.budget")
  if not budget:
    return None
  same = [
    r
    for r in runs
    if r.config_arg == run.config_arg
    and r.seed == run.seed
    and float(dict(r.overrides)["placement.budget"].rstrip("x")) < float(budget.rstrip("x"))
  ]
  return max(same, key=lambda r: float(dict(r.overrides)["placement.budget"].rstrip("x")), default=None)


def expand_grid(study) -> list[RunSpec]:
  """Baseline first, then every (position, ratio), for every seed. Ratio 100 is the baseline itself.

  With `study.budgets` (over-training study, paper App. G) the grid is repeated per token budget: run names end
  in `_<B>x`, config `placement.budget` labels the budget (analysis compares each run with the baseline of its own
  budget), `train.steps` is `budget_steps` and the schedule is WSD.
  """
  positions = [p.strip() for p in str(study.positions).split(",") if p.strip()]
  for p in positions:
    if p not in placement.POSITIONS:
      raise StudyError(f"study.positions: {p!r} is not one of {placement.POSITIONS}")
  ratios = [r for r in _ints(study.ratios, "ratios") if r != 100]
  seeds = _ints(study.seeds, "seeds")
  if not seeds:
    raise StudyError("study.seeds is empty: give at least one seed, e.g. '0'")
  if not positions or not ratios:
    raise StudyError(f"the study grid is empty: study.positions={study.positions!r}, study.ratios={study.ratios!r}")
  for r in ratios:
    if not 1 <= r < 100:
      raise StudyError(f"study.ratios: {r} is not a percentage in 1..99 (100 is the baseline, always included)")
  names = [f"baseline_{study.size}"] + [f"{p}_{r}_{study.size}" for p in positions for r in ratios]
  base_overrides = tuple(_flatten(study.overrides.to_dict()))
  budgets = _budgets(study)
  variants = (
    [("", ())]
    if not budgets
    else [
      (
        f"_{budget_label(b)}",
        (
          ("placement.budget", budget_label(b)),
          ("train.schedule", "wsd"),
          ("train.steps", budget_steps(study, b)),
          ("train.keep_every", _pre_decay(study, budget_steps(study, b))),
        ),
      )
      for b in budgets
    ]
  )
  runs = []
  for suffix, extra in variants:
    for seed in seeds:
      for name in names:
        run_name = (name if len(seeds) == 1 else f"{name}_s{seed}") + suffix
        overrides = base_overrides + extra + (("seed", seed),)
        runs.append(RunSpec(run_name, study.config_file, name, seed, overrides))
  return runs


def _flatten(tree: dict, prefix: str = ""):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flatten(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def load_config_file(path: str, arg: str):
  """Imports configs/*.py by path (like ml_collections' config flags) and calls get_config(arg)."""
  given = path
  if not os.path.exists(path) and not os.path.isabs(path):  # configs/*.py relative to the checkout, from any cwd
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), path)
  if not os.path.exists(path):
    raise StudyError(f"config file {given} not found")
  spec = importlib.util.spec_from_file_location(f"_ffnjax_config_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def build_run_config(run: RunSpec):
  """The full experiment ConfigDict of one run, overrides applied (with their field names checked)."""
  config = load_config_file(run.config_file, run.config_arg)
  for key, value in run.overrides:
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
      if part not in node:
        raise StudyError(f"study.overrides: {key!r} is not a config field ({part!r} unknown)")
      node = node[part]
    if parts[-1] not in node:
      raise StudyError(f"study.overrides: {key!r} is not a config field")
    node[parts[-1]] = type(node[parts[-1]])(value) if node[parts[-1]] is not None else value
  return config
