"""The results table: one row per (model, seed, task, metric), plus per-model metadata.

Two sources build the same table:
- a study directory, `STUDY/<run>/eval/results.json` (+ `plan.json`, `config.json`), via `load_study`;
- a CSV or JSON table given directly (e.g. published numbers), via `load_table`, with columns
  `model, position, ratio, seed, task, metric, value` and optional `num_layers, chance, higher_is_better,
  stderr, family`. `position`/`ratio`/`num_layers` may be left out when the model name follows the paper's
  grammar (`final_50_570m_40l`); `seed` defaults to 0.

A model's *family* is the baseline it is compared with: its name without the `POSITION_PCT_` / `baseline_`
prefix (`final_50_570m_40l` -> `570m_40l`), or an explicit `family` column. A run trained on a token budget of
the over-training study (config `placement.budget`, e.g. "2x") is model `NAME@2x` in family `SIZE_NL@2x`: it is
compared with the baseline of its own budget.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence

from ffnjax.analysis import results as results_lib
from ffnjax.analysis.results import AnalysisError
from ffnjax.core import placement, rundir
from ffnjax.core.config import NAME

BASELINE = placement.BASELINE
POSITIONS = placement.POSITIONS
TABLE_COLUMNS = ("model", "position", "ratio", "seed", "task", "metric", "value")
OPTIONAL_COLUMNS = ("num_layers", "chance", "higher_is_better", "stderr", "family")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """One trained model (one seed). `layer_types[0]` is layer 1 of the paper."""

  name: str
  seed: int
  family: str
  position: str
  ratio: int
  num_layers: int | None = None
  layer_types: tuple[str, ...] | None = None
  run: str | None = None  # run directory name inside a study, when loaded from one
  params_total: int | None = None

  @property
  def is_baseline(self) -> bool:
    return self.position == BASELINE or self.ratio == 100

  @property
  def key(self) -> tuple[str, int]:
    return (self.name, self.seed)

  @property
  def deactivated(self) -> tuple[int, ...]:
    """0-based indices of the deactivated layers (empty for a baseline)."""
    if self.layer_types is None:
      return ()
    return tuple(i for i, t in enumerate(self.layer_types) if t == placement.DEACTIVATED)


@dataclasses.dataclass(frozen=True)
class Row:
  model: str
  seed: int
  task: str
  metric: str
  value: float
  higher_is_better: bool
  chance: float | None = None
  stderr: float | None = None

  @property
  def key(self) -> tuple[str, int]:
    return (self.model, self.seed)


@dataclasses.dataclass
class ResultsTable:
  """Rows plus model metadata, keyed by (model name, seed)."""

  rows: list[Row]
  models: dict[tuple[str, int], ModelInfo]
  source: str = ""
  skipped: list[str] = dataclasses.field(default_factory=list)  # runs without results, with the reason

  def __post_init__(self):
    if not self.rows:
      raise AnalysisError(f"{self.source or 'results table'}: empty input (no metric rows)")
    seen = set()
    for row in self.rows:
      if row.key not in self.models:
        raise AnalysisError(f"{self.source}: row for model {row.model!r} seed {row.seed} has no model metadata")
      k = (row.model, row.seed, row.task, row.metric)
      if k in seen:
        raise AnalysisError(
          f"{self.source}: duplicate row for model={row.model!r} seed={row.seed} "
          f"task={row.task!r} metric={row.metric!r}"
        )
      seen.add(k)
    self._index = {(r.model, r.seed, r.task, r.metric): r for r in self.rows}

  def get(self, model: ModelInfo, task: str, metric: str) -> Row | None:
    return self._index.get((model.name, model.seed, task, metric))

  @property
  def task_metrics(self) -> set[tuple[str, str]]:
    return {(r.task, r.metric) for r in self.rows}

  @property
  def families(self) -> list[str]:
    return sorted({m.family for m in self.models.values()})

  def models_in(self, family: str) -> list[ModelInfo]:
    return sorted((m for m in self.models.values() if m.family == family), key=_model_order)

  def baseline_for(self, model: ModelInfo) -> ModelInfo:
    """The same-seed baseline of the model's family; if the family has a baseline for one seed only, that one."""
    baselines = [m for m in self.models.values() if m.family == model.family and m.is_baseline]
    if not baselines:
      raise AnalysisError(
        f"{self.source}: no baseline for model {model.name!r} (family {model.family!r}); "
        f"add a row set with position='baseline' (or ratio=100) for that family"
      )
    same_seed = [m for m in baselines if m.seed == model.seed]
    if same_seed:
      return same_seed[0]
    if len(baselines) == 1:
      return baselines[0]
    raise AnalysisError(
      f"{self.source}: model {model.name!r} has seed {model.seed} but the {model.family!r} "
      f"baselines have seeds {sorted(b.seed for b in baselines)}; add a seed-{model.seed} baseline"
    )

  # --- export ---------------------------------------------------------------------------------------------
  def records(self) -> list[dict]:
    out = []
    for r in self.rows:
      m = self.models[r.key]
      out.append(
        dict(
          model=r.model,
          position=m.position,
          ratio=m.ratio,
          seed=r.seed,
          task=r.task,
          metric=r.metric,
          value=r.value,
          num_layers=m.num_layers,
          chance=r.chance,
          higher_is_better=r.higher_is_better,
          stderr=r.stderr,
          family=m.family,
        )
      )
    return out

  def write_csv(self, path: str) -> None:
    records = self.records()
    f = io.StringIO(newline="")
    writer = csv.DictWriter(f, fieldnames=list(TABLE_COLUMNS + OPTIONAL_COLUMNS))
    writer.writeheader()
    for rec in records:
      writer.writerow({k: "" if v is None else v for k, v in rec.items()})
    rundir.write_text(path, f.getvalue())


def _model_order(m: ModelInfo):
  pos = {BASELINE: 0, **{p: i + 1 for i, p in enumerate(POSITIONS)}}.get(m.position, 9)
  return (m.family, pos, m.ratio, m.seed, m.name)


def parse_model_name(name: str) -> dict:
  """`final_50_570m_40l` -> {position, ratio, family, num_layers}; missing parts are None."""
  out = dict(position=None, ratio=None, family=None, num_layers=None)
  m = NAME.match(name)
  if m:
    if m["base"]:
      out.update(position=BASELINE, ratio=100)
    elif m["pos"] in POSITIONS:
      out.update(position=m["pos"], ratio=int(m["pct"]))
    if out["position"] is not None:
      out["family"] = m["family"] or None
    if m["layers"]:
      out["num_layers"] = int(m["layers"])
  return out


def make_model(
  name: str,
  *,
  seed: int = 0,
  position: str | None = None,
  ratio: int | None = None,
  num_layers: int | None = None,
  layer_types: Sequence[str] | None = None,
  family: str | None = None,
  run: str | None = None,
  params_total: int | None = None,
  where: str = "",
) -> ModelInfo:
  """Fills what is missing from the name and, for layer_types, from the placement rules (method.md §2)."""
  parsed = parse_model_name(name)
  position = position or parsed["position"]
  ratio = parsed["ratio"] if ratio is None else int(ratio)
  if ratio is None and position == BASELINE:
    ratio = 100
  num_layers = num_layers or parsed["num_layers"] or (len(layer_types) if layer_types else None)
  where = where or f"model {name!r}"
  if position is None or ratio is None:
    raise AnalysisError(
      f"{where}: position and ratio are not given and cannot be read from the name "
      f"(expected e.g. 'final_50_570m_40l' or 'baseline_570m_40l')"
    )
  if position not in (BASELINE,) + POSITIONS:
    raise AnalysisError(f"{where}: position={position!r} must be one of {(BASELINE,) + POSITIONS}")
  if not 1 <= ratio <= 100:
    raise AnalysisError(f"{where}: ratio={ratio} must be a percent in 1..100")
  if ratio == 100:
    position = BASELINE
  if layer_types is None and num_layers:
    if position == BASELINE:
      layer_types = (placement.STANDARD,) * num_layers
    else:
      try:
        expanded = set(placement.expanded_layers(num_layers, position, ratio))
      except placement.PlanError as e:
        raise AnalysisError(f"{where}: {e}") from None
      layer_types = tuple(placement.EXPANDED if i in expanded else placement.DEACTIVATED for i in range(num_layers))
  if layer_types is not None:
    bad = set(layer_types) - set(placement.LAYER_TYPES)
    if bad:
      raise AnalysisError(f"{where}: layer_types has {sorted(bad)}; allowed {placement.LAYER_TYPES}")
    if num_layers and len(layer_types) != num_layers:
      raise AnalysisError(f"{where}: layer_types has {len(layer_types)} entries but num_layers={num_layers}")
    layer_types = tuple(layer_types)
  if family is None:
    family = parsed["family"] or (f"{num_layers}l" if num_layers else "default")
  return ModelInfo(
    name=name,
    seed=int(seed),
    family=family,
    position=position,
    ratio=ratio,
    num_layers=num_layers,
    layer_types=layer_types,
    run=run,
    params_total=params_total,
  )


# --- study directories -------------------------------------------------------------------------------------
def _read_json(path: str):
  try:
    return json.loads(rundir.read_text(path))
  except json.JSONDecodeError as e:
    raise AnalysisError(f"{path}: not valid JSON ({e})") from None


def run_dirs(study_dir: str) -> list[str]:
  """Subdirectories that look like runs (hold a config.json, plan.json or eval/)."""
  if not rundir.isdir(study_dir):
    raise AnalysisError(f"--study={study_dir}: not a directory")
  out = []
  for name in sorted(rundir.listdir(study_dir)):
    d = rundir.join(study_dir, name)
    if rundir.isdir(d) and any(rundir.exists(rundir.join(d, f)) for f in ("config.json", "plan.json", "eval")):
      out.append(d)
  return out


def load_run(run_dir: str) -> tuple[ModelInfo, list[Row], dict]:
  """One run: its model metadata, its rows and the raw results.json."""
  results = results_lib.load_results(rundir.join(run_dir, "eval", "results.json"))
  plan = dict(results.get("plan") or {})
  plan_path = rundir.join(run_dir, "plan.json")
  if rundir.exists(plan_path):
    plan.update(_read_json(plan_path))
  config_path = rundir.join(run_dir, "config.json")
  config = _read_json(config_path) if rundir.exists(config_path) else {}
  place = config.get("placement", {}) if isinstance(config, dict) else {}
  seed = config.get("seed", results.get("seed", 0)) if isinstance(config, dict) else results.get("seed", 0)
  name = plan.get("name") or results["model"]
  size = place.get("size")
  num_layers = plan.get("num_layers")
  family = None
  if size and num_layers:
    family = f"{size}_{num_layers}l"
  budget = place.get("budget")
  if budget:  # over-training study: one baseline per token budget
    name, family = f"{name}@{budget}", (f"{family}@{budget}" if family else None)
  model = make_model(
    name,
    seed=int(seed),
    position=place.get("position", plan.get("position")),
    ratio=place.get("ratio", plan.get("ratio")),
    num_layers=num_layers,
    layer_types=plan.get("layer_types"),
    family=family,
    run=os.path.basename(run_dir),
    params_total=plan.get("params_total"),
    where=run_dir,
  )
  rows = []
  for task, entry in results["tasks"].items():
    for metric, value, stderr, hib in results_lib.metric_items(entry):
      rows.append(Row(model.name, model.seed, task, metric, value, hib, entry.get("chance"), stderr))
  return model, rows, results


def load_study(study_dir: str) -> ResultsTable:
  """Every run of a study that has eval/results.json; runs without it are listed in `skipped`."""
  rows, models, skipped = [], {}, []
  for d in run_dirs(study_dir):
    if not rundir.exists(rundir.join(d, "eval", "results.json")):
      skipped.append(f"{os.path.basename(d)}: no eval/results.json")
      continue
    model, run_rows, _ = load_run(d)
    if model.key in models:
      raise AnalysisError(
        f"{study_dir}: runs {models[model.key].run!r} and {model.run!r} are both model "
        f"{model.name!r} with seed {model.seed}"
      )
    models[model.key] = model
    rows.extend(run_rows)
  if not rows:
    raise AnalysisError(
      f"--study={study_dir}: empty input: no run has eval/results.json with metrics "
      f"({len(skipped)} run directories without results)"
    )
  return ResultsTable(rows, models, source=study_dir, skipped=skipped)


# --- CSV / JSON tables ---------------------------------------------------------------------------------------
def _parse_bool(value, where: str) -> bool | None:
  if value in (None, ""):
    return None
  if isinstance(value, bool):
    return value
  text = str(value).strip().lower()
  if text in ("1", "true", "yes", "t", "y"):
    return True
  if text in ("0", "false", "no", "f", "n"):
    return False
  raise AnalysisError(f"{where}: higher_is_better={value!r} must be true/false")


def _parse_float(value, field: str, where: str, optional: bool = False) -> float | None:
  if value is None or value == "":
    if optional:
      return None
    raise AnalysisError(f"{where}: column {field!r} is empty")
  try:
    return float(value)
  except (TypeError, ValueError):
    raise AnalysisError(f"{where}: column {field!r}={value!r} is not a number") from None


def table_from_records(records: Iterable[Mapping], source: str = "table") -> ResultsTable:
  """Builds a table from dict rows with the CSV columns (see module docstring)."""
  rows, models = [], {}
  records = list(records)
  if not records:
    raise AnalysisError(f"{source}: empty input (no rows)")
  for n, rec in enumerate(records, start=2 if source.endswith(".csv") else 0):
    where = f"{source}: row {n}"
    missing = [c for c in ("model", "task", "metric", "value") if rec.get(c) in (None, "")]
    if missing:
      raise AnalysisError(
        f"{where}: missing required column(s) {missing}; required {list(TABLE_COLUMNS)} "
        f"(position/ratio may come from the model name, seed defaults to 0)"
      )
    name = str(rec["model"]).strip()
    seed = int(_parse_float(rec.get("seed"), "seed", where, optional=True) or 0)
    ratio = _parse_float(rec.get("ratio"), "ratio", where, optional=True)
    layers = _parse_float(rec.get("num_layers"), "num_layers", where, optional=True)
    model = make_model(
      name,
      seed=seed,
      position=(rec.get("position") or None),
      ratio=None if ratio is None else int(ratio),
      num_layers=None if layers is None else int(layers),
      family=rec.get("family") or None,
      where=where,
    )
    previous = models.setdefault(model.key, model)
    if previous != model:
      raise AnalysisError(f"{where}: model {name!r} seed {seed} has metadata {model} but an earlier row had {previous}")
    task, metric = str(rec["task"]).strip(), str(rec["metric"]).strip()
    value = _parse_float(rec["value"], "value", where)
    hib = _parse_bool(rec.get("higher_is_better"), where)
    if hib is None:
      hib = results_lib.default_higher_is_better(metric)
    chance = _parse_float(rec.get("chance"), "chance", where, optional=True)
    if chance is None and hib:
      chance = results_lib.KNOWN_CHANCE.get(task)
    stderr = _parse_float(rec.get("stderr"), "stderr", where, optional=True)
    if math.isnan(value):
      continue
    rows.append(Row(name, seed, task, metric, value, hib, chance, stderr))
  return ResultsTable(rows, models, source=source)


def load_table(path: str) -> ResultsTable:
  """A CSV file (header row) or a JSON file (a list of row objects, or {"rows": [...]})."""
  if not rundir.exists(path):
    raise AnalysisError(f"--table={path}: no such file")
  if path.endswith(".csv"):
    records = list(csv.DictReader(io.StringIO(rundir.read_text(path), newline="")))
  elif path.endswith(".json"):
    data = _read_json(path)
    records = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(records, list):
      raise AnalysisError(f"{path}: expected a JSON list of row objects or {{'rows': [...]}}")
  else:
    raise AnalysisError(f"--table={path}: the file name must end in .csv or .json")
  return table_from_records(records, source=path)
