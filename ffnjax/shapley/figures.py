"""Figures: a bar per player (attention and FFN in two colours, cornerstones marked), the single-ablation drop
per player, one panel per task plus the task mean for a run, and the permutation estimator's convergence. Figure
objects (Agg, no pyplot); `save` writes PNG+SVG.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ffnjax.analysis.figures import save  # re-exported: one PNG+SVG writer for the project
from ffnjax.core import rundir
from ffnjax.shapley.pertask import metric_name
from ffnjax.shapley.players import ATTN, Player

KIND_COLOR = {"attn": "tab:purple", "ffn": "tab:green"}
KIND_NAME = {"attn": "attention", "ffn": "FFN"}


def _player_bars(ax, values: np.ndarray, players: Sequence[Player], yerr=None, ci=None) -> None:
  """Bars coloured by kind; `ci` [[low, high], ...] draws 95 % error bars and pales the bars whose interval
  covers 0 (hatched), `yerr` symmetric ones."""
  if len(values) != len(players):
    raise ValueError(f"values has {len(values)} entries for {len(players)} players")
  x = np.arange(len(players))
  covers = np.zeros(len(players), bool)
  if ci is not None:
    ci = np.asarray(ci, dtype=float)
    yerr = np.stack([values - ci[:, 0], ci[:, 1] - values])
    covers = (ci[:, 0] <= 0) & (ci[:, 1] >= 0)
  for kind in (ATTN, "ffn"):
    for faint in (False, True):
      sel = np.array([p.kind == kind for p in players]) & (covers == faint)
      if sel.any():
        err = None if yerr is None else np.asarray(yerr)[..., sel]
        ax.bar(
          x[sel],
          values[sel],
          color=KIND_COLOR[kind],
          alpha=0.35 if faint else 1.0,
          hatch="//" if faint else None,
          yerr=err,
          capsize=2,
          error_kw={"linewidth": 0.8},
          label=f"{KIND_NAME[kind]} (95 % interval covers 0)" if faint else KIND_NAME[kind],
        )
  ax.axhline(0.0, color="black", linewidth=0.8)
  step = max(1, len(players) // 32)
  ax.set_xticks(x[::step], [p.label for p in players][::step], rotation=90, fontsize=7)
  ax.set_xlim(-0.7, len(players) - 0.3)
  ax.set_xlabel("player (sub-layer, forward order; layers from 1)")
  ax.grid(axis="y", alpha=0.3)


def _mark_cornerstones(ax, values: np.ndarray, cornerstones: Sequence[int], label: str) -> None:
  if len(cornerstones):
    idx = np.asarray(cornerstones, dtype=int)
    top = values[idx] + 0.04 * (np.nanmax(np.abs(values)) or 1.0) * np.sign(np.where(values[idx] == 0, 1, values[idx]))
    ax.scatter(idx, top, marker="*", s=90, color="black", zorder=3, label=label)


def player_values_figure(
  values: Sequence[float],
  players: Sequence[Player],
  *,
  title: str,
  ylabel: str,
  cornerstones: Sequence[int] = (),
  stderr: Sequence[float] | None = None,
) -> Figure:
  """One game's values; the title names model, task, metric and examples, the y label the metric's units."""
  values = np.asarray(values, dtype=float)
  fig = Figure(figsize=(max(6.0, 0.18 * len(players) + 2.5), 4.0), layout="constrained")
  ax = fig.subplots()
  _player_bars(ax, values, players, yerr=stderr)
  _mark_cornerstones(ax, values, cornerstones, "cornerstone (removal -> chance)")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=8)
  return fig


def ablation_figure(
  drop: Sequence[float], players: Sequence[Player], *, title: str, unit: str, chance_drop: float | None = None
) -> Figure:
  """drop_i = v(N) - v(N \\ {i}) in `unit` (e.g. "Δ accuracy"); `chance_drop` = v(N) - chance draws the
  'collapse to chance' level."""
  fig = Figure(figsize=(max(6.0, 0.18 * len(players) + 2.5), 4.0), layout="constrained")
  ax = fig.subplots()
  _player_bars(ax, np.asarray(drop, dtype=float), players)
  if chance_drop is not None:
    ax.axhline(chance_drop, color="tab:red", linestyle="--", linewidth=1, label="drop to chance level")
  ax.set_ylabel(f"drop when removed: v(N) − v(N∖{{i}}) ({unit})")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return fig


def metric_unit(metric: str) -> str:
  """The units a game's values are in: 'Δ accuracy', 'Δ normalised accuracy', 'Δ −log word perplexity'."""
  return "Δ " + metric_name(metric)


def _panel_title(task: str, entry: dict, tolerance: float) -> str:
  chance = "" if entry.get("chance") is None else f", chance {entry['chance']:.3g}"
  if not entry["cornerstones_defined"]:
    corner = f"cornerstones: none claimed ({entry.get('cornerstones_undefined') or 'no chance level'})"
  else:
    corner = (
      f"cornerstones (removal → ≤ chance + {tolerance:g}, drop's interval excludes 0): "
      f"{', '.join(entry['cornerstones']) or 'none'}"
    )
  lo, hi = entry["ci"]["v_full"]
  return (
    f"{task}: {metric_name(entry['metric'])} ({entry['metric']}), n = {entry['num_examples']} examples, "
    f"v(N) = {entry['v_full']:.3g} [{lo:.3g}, {hi:.3g}]{chance}\n{corner}"
  )


def per_task_figure(result: dict, players: Sequence[Player], *, model: str, ablation: bool = False) -> Figure:
  """One panel per task plus the task mean, from a shapley.json `result`: Shapley values (or, with ablation,
  single-removal drops with each task's drop-to-chance line), cornerstones starred per task."""
  tasks = result["tasks"]
  names = list(tasks)
  mean = result["task_mean"]
  rows = len(names) + 1
  fig = Figure(figsize=(max(7.0, 0.2 * len(players) + 3.0), 2.6 * rows + 0.8), layout="constrained")
  axes = np.atleast_1d(fig.subplots(rows, 1, sharex=True))
  index = {p.label: p.index for p in players}
  rule = result["cornerstone_rule"]
  star = f"cornerstone: removal → chance + {rule['tolerance']:g}, drop's interval excludes 0"
  for ax, name in zip(axes, names):
    entry = tasks[name]
    values = np.asarray(entry["ablation_drop" if ablation else "values"], dtype=float)
    _player_bars(ax, values, players, ci=entry["ci"]["ablation_drop" if ablation else "values"])
    _mark_cornerstones(ax, values, [index[c] for c in entry["cornerstones"]], star)
    unit = metric_unit(entry["metric"])
    if ablation and entry.get("chance") is not None:
      ax.axhline(
        entry["v_full"] - entry["chance"], color="tab:red", linestyle="--", linewidth=1, label="drop to chance"
      )
    ax.set_ylabel(f"{'drop when removed' if ablation else 'Shapley value'}\n({unit})", fontsize=8)
    ax.set_title(_panel_title(name, entry, rule["tolerance"]), fontsize=9)
    ax.set_xlabel("")
    if name == names[0] or entry["cornerstones"]:
      ax.legend(fontsize=7, loc="best")
  ax = axes[-1]
  values = np.asarray(mean["ablation_drop" if ablation else "values"], dtype=float)
  _player_bars(ax, values, players, ci=mean["ci"]["ablation_drop" if ablation else "values"])
  if mean.get("cornerstones"):  # only with --game=task_mean (our extension)
    _mark_cornerstones(ax, values, [index[c] for c in mean["cornerstones"]], "task-mean cornerstone")
  units = sorted({metric_unit(tasks[t]["metric"]) for t in names})
  ax.set_ylabel(f"{'drop when removed' if ablation else 'Shapley value'}\n(mean of {', '.join(units)})", fontsize=8)
  ax.set_title(f"mean over the {len(names)} tasks (summary, not a game of its own)", fontsize=9)
  if mean.get("cornerstones"):
    ax.legend(fontsize=7, loc="best")
  for a in axes[:-1]:
    a.tick_params(labelbottom=False)
  method = result["method"] + (f", level K = {result['level']}" if "level" in result else "")
  what = "single sub-layer ablation" if ablation else f"layer Shapley values ({method})"
  fig.suptitle(
    f"{model}: {what}, one game per task, ≤ {result['limit']} examples per task\nerror bars: 95 % "
    f"bootstrap intervals over examples",
    fontsize=11,
  )
  return fig


def save_run_figures(result: dict, players: Sequence[Player], output: str, *, model: str) -> list[str]:
  """OUTPUT/shapley_values.{png,svg} and OUTPUT/single_ablation.{png,svg} (one panel per task plus the mean)."""
  paths = save(per_task_figure(result, players, model=model), rundir.join(output, "shapley_values"))
  paths += save(per_task_figure(result, players, model=model, ablation=True), rundir.join(output, "single_ablation"))
  return paths


def convergence_figure(
  estimate, players: Sequence[Player], *, exact: Sequence[float] | None = None, max_players: int = 8
) -> Figure:
  """Running permutation estimates (mean ± stderr) of the players with the largest final |value|."""
  P = estimate.running_mean.shape[0]
  order = np.argsort(-np.abs(estimate.values))[:max_players]
  fig = Figure(figsize=(7.0, 4.2), layout="constrained")
  ax = fig.subplots()
  k = np.arange(1, P + 1)
  for i in order:
    mean, se = estimate.running_mean[:, i], np.nan_to_num(estimate.running_stderr[:, i])
    (line,) = ax.plot(k, mean, label=players[i].label)
    ax.fill_between(k, mean - se, mean + se, color=line.get_color(), alpha=0.15)
    if exact is not None:
      ax.axhline(exact[i], color=line.get_color(), linestyle=":", linewidth=1)
  ax.set_xlabel("permutations sampled")
  ax.set_ylabel("running Shapley estimate (± stderr)")
  ax.set_title("permutation-sampling convergence" + (" (dotted: exact)" if exact is not None else ""))
  ax.legend(fontsize=7, ncols=2)
  ax.grid(alpha=0.3)
  return fig
