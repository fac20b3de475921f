"""Notebook helpers in the spirit of T5X's `interactive_model`: poke at a trained run or a finished study.

    from ffnjax.notebook import InteractiveModel, open_study

    model = InteractiveModel.from_run("study/tiny/baseline_tiny_8l")
    model.score("To be, or not", " to be")            # (sum log-likelihood, is_greedy), lm-eval semantics
    model.generate("ROMEO:", max_new_tokens=16)        # greedy; temperature > 0 samples
    no_ffn3 = model.drop(ffn=[3])                      # layer 3's FFN removed (layers numbered from 1 here)
    no_ffn3.score("To be, or not", " to be")

    study = open_study("study/tiny")                   # results table, RI, importance, figures, records
    study.top_k_table(5).to_markdown()

Layer numbering: `keep` masks are arrays indexed like the model (row 0 = layer 1 of the paper); the
convenience `InteractiveModel.drop(attention=..., ffn=...)` takes paper layer numbers (1 = closest to the input).

`open_study` is pure Python + numpy (no JAX); JAX is imported only when a model is restored.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from ffnjax.analysis import figures as figures_lib
from ffnjax.analysis import report_tables
from ffnjax.analysis.importance import ImportanceSummary
from ffnjax.analysis.report import Analysis, analyze
from ffnjax.analysis.results import AnalysisError
from ffnjax.analysis.results_table import ResultsTable, load_study, run_dirs
from ffnjax.analysis.ri import ConfigRI, ModelRI, TaskMetric, relative_improvement
from ffnjax.analysis.runs import read_study_json
from ffnjax.core import placement
from ffnjax.eval import engine
from ffnjax.model import make_logits_fn
from ffnjax.shapley.estimators import single_ablation
from ffnjax.shapley.players import ATTN, keep_mask, players_from_layer_types
from ffnjax.train import checkpoint
from ffnjax.train.runconfig import load_tokenizer

__all__ = ["InteractiveModel", "Study", "open_study"]

RECORDS_FILE = os.path.join("eval", "records.jsonl")


# ------------------------------------------------------------------------------------------------------- models


class InteractiveModel:
  """A restored run: tokenizer + a jitted forward, plus scoring, generation and ablation for notebooks.

  Everything runs on one device (no mesh), which is what notebooks on small models want. `ablate` returns a view
  that shares the parameters and the compiled function: one compilation serves every keep mask.
  """

  def __init__(
    self,
    config,
    plan,
    params,
    tokenizer,
    *,
    keep=None,
    run_dir: str | None = None,
    step: int | None = None,
    _forward=None,
  ):
    self.config = config
    self.plan = plan
    self.params = params
    self.tokenizer = tokenizer
    self.run_dir = run_dir
    self.step = step
    self.keep = None if keep is None else _check_keep(keep, plan.num_layers)
    if _forward is None:
      _forward = make_logits_fn(config, plan, params, with_keep=True)
    self._forward = _forward  # (tokens [B, T], keep [L, 2] | None) -> logits [B, T, V]

  # --- construction ---------------------------------------------------------------------------------------
  @classmethod
  def from_run(cls, run_dir: str, step: int | None = None, tokenizer_dir: str | None = None) -> InteractiveModel:
    """Restores the parameters (no optimizer state) of checkpoint `step` (default: the newest) of a run directory.

    The tokenizer is the run's: GPT-2 BPE, or a trained `bpe:N` found in `tokenizer_dir` / the run's data.path /
    the prepared-data cache ($FFNJAX_CACHE), as the evaluator finds it.
    """
    if step is None:
      available = checkpoint.steps(run_dir)
      step = max(available) if available else None  # restore_params names the missing checkpoints
    params, config, plan = checkpoint.restore_params(run_dir, step)
    tokenizer = load_tokenizer(config, tokenizer_dir, run_dir=run_dir)
    return cls(config, plan, params, tokenizer, run_dir=run_dir, step=step)

  # --- facts ----------------------------------------------------------------------------------------------
  @property
  def name(self) -> str:
    return self.config.get("name") or self.plan.name

  @property
  def max_length(self) -> int:
    """The context length scoring uses: config.eval.max_length, else data.seq_len (as the evaluator)."""
    ev = self.config.get("eval", {}) or {}
    return int(ev.get("max_length", 0) or self.config.data.seq_len)

  def __repr__(self) -> str:
    where = f", run_dir={self.run_dir!r}, step={self.step}" if self.run_dir else ""
    ablated = "" if self.keep is None else f", ablated={self.describe_keep()}"
    return f"InteractiveModel({self.name!r}{where}{ablated})"

  # --- tokens ---------------------------------------------------------------------------------------------
  def encode(self, text: str) -> list[int]:
    return list(self.tokenizer.encode(text))

  def decode(self, tokens: Sequence[int]) -> str:
    return self.tokenizer.decode([int(t) for t in tokens])

  def _tokens(self, text_or_tokens) -> np.ndarray:
    if isinstance(text_or_tokens, str):
      tokens = np.asarray(self.encode(text_or_tokens), np.int32)
    else:
      tokens = np.asarray(text_or_tokens, np.int32)
    if tokens.ndim not in (1, 2) or tokens.shape[-1] == 0:
      raise ValueError(f"expected text, or tokens of shape [T] or [B, T] with T >= 1; got shape {tokens.shape}")
    if tokens.min() < 0 or tokens.max() >= self.config.model.vocab_size:
      raise ValueError(f"token ids must be in [0, {self.config.model.vocab_size}); got {tokens.min()}..{tokens.max()}")
    return tokens

  # --- forward --------------------------------------------------------------------------------------------
  def _logits_fn(self):
    """`tokens [B, T] -> logits` with this view's keep mask (the engine's LogitsFn)."""
    if self.keep is None:
      return functools.partial(self._forward, keep=None)

    return functools.partial(self._forward, keep=jnp.asarray(self.keep, jnp.float32))

  def logits(self, text_or_tokens) -> np.ndarray:
    """float32 logits: [T, V] for text or a token list, [B, T, V] for a [B, T] token array.

    Text is encoded as is (no end-of-text token is prepended); position t predicts token t + 1.
    """
    tokens = self._tokens(text_or_tokens)
    batched = tokens[None] if tokens.ndim == 1 else tokens
    out = np.asarray(self._logits_fn()(batched))
    return out[0] if tokens.ndim == 1 else out

  def score(self, context: str, continuation: str) -> tuple[float, bool]:
    """(sum of the continuation's log-probs, is_greedy), exactly as the evaluator scores a request
    (lm-evaluation-harness semantics, ffnjax.eval.engine.loglikelihood). Start the continuation with a space."""
    return self.score_many([(context, continuation)])[0]

  def score_many(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
    """`score` for many (context, continuation) pairs, batched as the evaluator batches them."""
    return engine.loglikelihood(self._logits_fn(), self.tokenizer, list(requests), max_length=self.max_length)

  def perplexity(self, text: str) -> float:
    """exp(-rolling LL / tokens) of a text (the first token conditioned on end-of-text), as WikiText scores."""
    ll = engine.loglikelihood_rolling(self._logits_fn(), self.tokenizer, [text], max_length=self.max_length)[0]
    return float(np.exp(-ll / max(1, len(self.encode(text)))))

  def generate(
    self,
    prompt: str,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    seed: int = 0,
    *,
    stop_at_eot: bool = True,
    return_tokens: bool = False,
  ):
    """Decodes `max_new_tokens` tokens after `prompt`; returns the new text (or token ids with return_tokens).

    temperature 0 = greedy (deterministic); > 0 samples from softmax(logits / temperature) with a numpy
    generator seeded by `seed` (so a seed reproduces a sample). There is no KV cache: every new token re-runs
    the full forward pass over the (right-padded) sequence, which is fine for the tiny models notebooks use and
    slow for paper-scale ones. Inputs are padded to a power-of-two length (>= 32, at most max_length), so only a
    few programs are compiled; a sequence longer than max_length keeps its last max_length tokens. An empty
    prompt is conditioned on end-of-text.
    """
    if max_new_tokens < 0:
      raise ValueError(f"max_new_tokens={max_new_tokens}: must be >= 0")
    if temperature < 0:
      raise ValueError(f"temperature={temperature}: must be >= 0 (0 = greedy)")
    prompt_tokens = self.encode(prompt) if prompt else [self.tokenizer.prefix_token_id]
    tokens, new = list(prompt_tokens), []
    rng = np.random.default_rng(seed)
    fn = self._logits_fn()
    for _ in range(max_new_tokens):
      window = tokens[-self.max_length :]
      n = len(window)
      length = min(self.max_length, max(32, 1 << (n - 1).bit_length()))
      batch = np.zeros((1, length), np.int32)
      batch[0, :n] = window
      last = np.asarray(fn(batch)[0, n - 1], np.float64)  # causal: right padding does not change position n-1
      if temperature == 0:
        token = int(np.argmax(last))
      else:
        z = last / temperature
        p = np.exp(z - z.max())
        token = int(rng.choice(len(p), p=p / p.sum()))
      if stop_at_eot and token == self.tokenizer.eot_id:
        break
      tokens.append(token)
      new.append(token)
    return new if return_tokens else self.decode(new)

  # --- ablation -------------------------------------------------------------------------------------------
  def ablate(self, keep_mask) -> InteractiveModel:
    """A view of the same parameters whose forward multiplies layer l's attention output by keep_mask[l, 0] and
    its FFN output by keep_mask[l, 1] (row 0 = layer 1; 0 removes the sub-layer, the residual passes through;
    the FFN entry of a deactivated layer is ignored). Views compose by multiplying their masks."""
    keep = _check_keep(keep_mask, self.plan.num_layers)
    if self.keep is not None:
      keep = keep * self.keep
    return InteractiveModel(
      self.config,
      self.plan,
      self.params,
      self.tokenizer,
      keep=keep,
      run_dir=self.run_dir,
      step=self.step,
      _forward=self._forward,
    )

  def drop(self, attention: Sequence[int] = (), ffn: Sequence[int] = ()) -> InteractiveModel:
    """`ablate` by paper layer numbers (1 = closest to the input): removes those attention / FFN sub-layers."""
    keep = np.ones((self.plan.num_layers, 2), np.float32)
    for column, layers, what in ((0, attention, "attention"), (1, ffn, "ffn")):
      for layer in layers:
        if not 1 <= int(layer) <= self.plan.num_layers:
          raise ValueError(
            f"drop({what}={list(layers)}): layer {layer} is not in 1..{self.plan.num_layers} "
            f"(layers are numbered from 1 here)"
          )
        keep[int(layer) - 1, column] = 0.0
    return self.ablate(keep)

  def ablation_table(self, context: str, continuation: str) -> report_tables.PlainTable:
    """The single ablation (paper B, `shapley.single_ablation`) on one request: the change in this view's
    LL(continuation | context) when each attention / FFN sub-layer alone is removed; one row per layer (paper
    numbering), None for the FFN of a deactivated layer (it has none)."""
    players = players_from_layer_types(self.plan.layer_types)
    num_layers = self.plan.num_layers

    def ll(coalition) -> float:
      return self.ablate(keep_mask(players, coalition, num_layers)).score(context, continuation)[0]

    ablation = single_ablation(ll, len(players))
    rows = [[layer + 1, t, None, None] for layer, t in enumerate(self.plan.layer_types)]
    for p, without in zip(players, ablation.without):
      rows[p.layer][2 if p.kind == ATTN else 3] = float(without - ablation.full)
    return report_tables.PlainTable(["layer", "type", "ΔLL without attention", "ΔLL without FFN"], rows, digits=3)

  def describe_keep(self) -> str:
    """The removed sub-layers, paper numbering: e.g. 'L1.attn, L3.ffn' ('none' when nothing is removed)."""
    if self.keep is None:
      return "none"
    removed = [
      f"L{i + 1}.{'attn' if j == 0 else 'ffn'}"
      for i in range(self.plan.num_layers)
      for j in (0, 1)
      if self.keep[i, j] != 1.0
    ]
    return ", ".join(removed) or "none"


def _check_keep(keep, num_layers: int) -> np.ndarray:
  keep = np.asarray(keep, np.float32)
  if keep.shape != (num_layers, 2):
    raise ValueError(
      f"keep mask has shape {keep.shape}; expected [num_layers={num_layers}, 2] "
      f"(column 0 = attention, column 1 = FFN; row 0 = layer 1)"
    )
  if not np.all(np.isfinite(keep)):
    raise ValueError("keep mask has non-finite entries")
  return keep


# ------------------------------------------------------------------------------------------------------ studies


@dataclasses.dataclass
class Study:
  """A study directory, analysed: what `python -m ffnjax.analysis` reports, as objects for a notebook."""

  path: str
  analysis: Analysis
  runs: dict[str, str]  # run name -> run directory
  figures: dict[str, str]  # figure file stem (e.g. 'ri_vs_ratio_tiny_4l') -> PNG path
  records: dict[str, str]  # run name -> RUN/eval/records.jsonl, for the runs that have one
  study_json: dict  # STUDY/study.json ({} when absent)
  report: str | None  # STUDY/report.md when present

  # --- the analysis, by name ------------------------------------------------------------------------------
  @property
  def table(self) -> ResultsTable:
    return self.analysis.table

  @property
  def tasks(self) -> tuple[TaskMetric, ...]:
    return self.analysis.tasks

  @property
  def ri(self) -> list[ConfigRI]:
    """RI per configuration (mean/std over seeds)."""
    return self.analysis.configs

  @property
  def ris(self) -> list[ModelRI]:
    """RI per experimental model and seed (with the excluded tasks and why)."""
    return self.analysis.ris

  @property
  def importance(self) -> dict[str, ImportanceSummary]:
    return self.analysis.importance

  @property
  def families(self) -> list[str]:
    return self.table.families

  def _family(self, family: str | None) -> str:
    if family is None:
      if len(self.families) != 1:
        raise AnalysisError(f"{self.path}: {len(self.families)} families {self.families}; pass family=...")
      return self.families[0]
    if family not in self.families:
      raise AnalysisError(f"{self.path}: unknown family {family!r}; the study has {self.families}")
    return family

  # --- tables (PlainTable: .to_markdown(), .records()) -----------------------------------------------------
  def metrics_table(self, family: str | None = None) -> report_tables.PlainTable:
    return report_tables.metrics_table(self.table, self.tasks, self._family(family))

  def ri_table(self, family: str | None = None) -> report_tables.PlainTable:
    family = self._family(family)
    return report_tables.ri_table([c for c in self.ri if c.family == family], self.tasks)

  def top_k_table(self, k: int = 5, family: str | None = None) -> report_tables.PlainTable:
    family = self._family(family)
    return report_tables.ri_table([c for c in self.ri if c.family == family], self.tasks, k=k)

  def importance_table(self, family: str | None = None) -> report_tables.PlainTable:
    family = self._family(family)
    if family not in self.importance:
      raise AnalysisError(f"{self.path}: no layer importance for {family!r}: {self.analysis.importance_error}")
    return report_tables.importance_table(self.importance[family])

  def exclusions_table(self, family: str | None = None) -> report_tables.PlainTable:
    family = self._family(family)
    return report_tables.exclusions_table([c for c in self.ri if c.family == family])

  def drilldown(self, task: str, metric: str, family: str | None = None) -> report_tables.PlainTable:
    """One task's metric for every model of a family (mean over seeds), with the baseline and the RI %."""
    family = self._family(family)
    if (task, metric) not in self.table.task_metrics:
      known = ", ".join(f"{t}:{m}" for t, m in sorted(self.table.task_metrics))
      raise AnalysisError(f"{self.path}: no metric {task}:{metric}; the study has {known}")
    by_name: dict[str, list] = {}
    for m in self.table.models_in(family):
      by_name.setdefault(m.name, []).append(m)
    rows = []
    for name, members in by_name.items():
      values = [r.value for r in (self.table.get(m, task, metric) for m in members) if r is not None]
      bases = [
        r.value for r in (self.table.get(self.table.baseline_for(m), task, metric) for m in members) if r is not None
      ]
      hib = next((r.higher_is_better for r in (self.table.get(m, task, metric) for m in members) if r), True)
      value = float(np.mean(values)) if values else None
      base = float(np.mean(bases)) if bases else None
      ri = None
      if value is not None and base not in (None, 0.0):
        ri = relative_improvement(value, base, hib) + 0.0  # + 0.0: no '-0.0' for the baseline itself
      m0 = members[0]
      rows.append([m0.position, m0.ratio, name, len(values), value, base, ri])
    return report_tables.PlainTable(
      ["position", "ratio", "model", "seeds", f"{task} {metric}", "baseline", "RI %"], rows, digits=4
    )

  def drilldown_figure(self, task: str, metric: str, family: str | None = None) -> Figure:
    """`drilldown` as a figure: the metric against the expanded-FFN ratio, one line per position, the baseline
    dashed (log scale for a perplexity)."""
    family = self._family(family)
    rows = self.drilldown(task, metric, family).records()
    key = f"{task} {metric}"
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.subplots()
    for position in placement.POSITIONS:
      color, marker = figures_lib.POSITION_STYLE[position]
      pts = sorted((r["ratio"], r[key]) for r in rows if r["position"] == position and r[key] is not None)
      if pts:
        ax.plot(*zip(*pts), color=color, marker=marker, label=position)
    base = [r[key] for r in rows if r["position"] == placement.BASELINE and r[key] is not None]
    if base:
      ax.axhline(base[0], color="black", linestyle="--", label="baseline")
    if "perplexity" in metric and rows and all(r[key] is not None and r[key] > 0 for r in rows):
      ax.set_yscale("log")
    ax.set_xticks(sorted({r["ratio"] for r in rows if r["position"] != placement.BASELINE}))
    ax.set_xlabel("expanded-FFN ratio r (%)")
    ax.set_ylabel(key)
    ax.set_title(f"{family}: {key} by position and ratio (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig

  # --- runs, records, models -------------------------------------------------------------------------------
  def baseline_run(self, family: str | None = None, seed: int | None = None) -> str:
    """The run directory of a family's baseline (the lowest seed unless `seed` is given)."""
    family = self._family(family)
    baselines = [m for m in self.table.models_in(family) if m.is_baseline and (seed is None or m.seed == seed)]
    if not baselines or baselines[0].run is None:
      raise AnalysisError(
        f"{self.path}: no baseline run for family {family!r}" + (f" and seed {seed}" if seed is not None else "")
      )
    return self.runs[sorted(baselines, key=lambda m: m.seed)[0].run]

  def load_records(self, run: str, task: str | None = None) -> list[dict]:
    """Per-document records of a run (`RUN/eval/records.jsonl`, written by `ffnjax.eval --records`)."""
    if run not in self.records:
      raise FileNotFoundError(
        f"{self.path}/{run}: no {RECORDS_FILE} (write one with `python -m ffnjax.eval "
        f"--workdir={self.path}/{run} --records={self.path}/{run}/{RECORDS_FILE}`)"
      )
    out = []
    with open(self.records[run], encoding="utf-8") as f:
      for line in f:
        if line.strip():
          rec = json.loads(line)
          if task is None or rec.get("task") == task:
            out.append(rec)
    return out

  def compare_records(self, run_a: str, run_b: str, task: str | None = None) -> report_tables.PlainTable:
    """The documents both runs scored (their records), with each run's total LL over the document's requests."""
    a, b = ({(r["task"], r["doc_id"]): r for r in self.load_records(run, task)} for run in (run_a, run_b))

    def total_ll(rec: dict) -> float:
      return sum(q["ll"] for q in rec.get("requests", []))

    rows = [
      [t, doc, total_ll(a[t, doc]), total_ll(b[t, doc]), total_ll(b[t, doc]) - total_ll(a[t, doc])]
      for t, doc in sorted(set(a) & set(b))
    ]
    return report_tables.PlainTable(["task", "doc", f"LL {run_a}", f"LL {run_b}", "Δ LL"], rows, digits=3)

  def model(self, run: str | None = None, step: int | None = None, **kw) -> InteractiveModel:
    """InteractiveModel of a run (a run name or directory; default: the baseline)."""
    run_dir = self.baseline_run() if run is None else self.runs.get(run, run)
    return InteractiveModel.from_run(run_dir, step=step, **kw)


def open_study(study_dir: str, tasks: str | Sequence[TaskMetric] | None = None) -> Study:
  """Loads and analyses a study directory (STUDY/<run>/eval/results.json, ...) without touching JAX.

  `tasks` is the task set of the average RI; default: the study's own (study.json `study.analysis_tasks`), else
  the paper's Table 1 set.
  """
  table = load_study(study_dir)
  study_json = read_study_json_full(study_dir)
  if tasks is None:
    tasks = (study_json.get("study") or {}).get("analysis_tasks") or "table1"
  analysis = analyze(table, tasks)
  runs = {os.path.basename(d): d for d in run_dirs(study_dir)}
  figures = {
    os.path.splitext(os.path.basename(p))[0]: p for p in sorted(glob.glob(os.path.join(study_dir, "figures", "*.png")))
  }
  records = {
    name: os.path.join(d, RECORDS_FILE) for name, d in runs.items() if os.path.exists(os.path.join(d, RECORDS_FILE))
  }
  report = os.path.join(study_dir, "report.md")
  return Study(
    path=study_dir,
    analysis=analysis,
    runs=runs,
    figures=figures,
    records=records,
    study_json=study_json,
    report=report if os.path.exists(report) else None,
  )


def read_study_json_full(study_dir: str) -> dict:
  """STUDY/study.json as written by the study runner ({"study": ..., "runs": ...}); {} when absent/unreadable."""
  path = os.path.join(study_dir, "study.json")
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError):
    return {}
  if not isinstance(data, dict):
    return {"runs": read_study_json(study_dir)}
  return data
