"""Figures: RI against ratio (paper Fig. 4), standardised layer importance (Fig. 5), training-loss curves.

Built on `matplotlib.figure.Figure` directly (Agg, no pyplot state), so they work headless and in threads.
Each builder returns the Figure (tests inspect axes, labels, legends); `save` writes PNG and SVG.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ffnjax.analysis.importance import ImportanceSummary
from ffnjax.analysis.ri import ConfigRI, TaskMetric
from ffnjax.core import placement, rundir

POSITION_STYLE = {"first": ("tab:blue", "o"), "middle": ("tab:green", "s"), "final": ("tab:red", "^")}
POSITIVE_COLOR, NEGATIVE_COLOR = "tab:blue", "tab:orange"
AVERAGE = ("average", "RI")  # pseudo task: the average-RI panel


def save(fig: Figure, path_stem: str) -> list[str]:
  """Writes PATH_STEM.png and PATH_STEM.svg; returns both paths."""
  paths = []
  for ext in ("png", "svg"):
    path = f"{path_stem}.{ext}"
    buf = io.BytesIO()  # then one atomic write, local or gs://
    fig.savefig(buf, format=ext, dpi=150, bbox_inches="tight")
    rundir.write_bytes(path, buf.getvalue())
    paths.append(path)
  return paths


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
  cols = min(max_cols, n)
  return math.ceil(n / cols), cols


def ri_vs_ratio_figure(
  configs: Sequence[ConfigRI], tasks: Sequence[TaskMetric], family: str, include_average: bool = True, unc=None
) -> Figure:
  """One panel per (task, metric) [+ the average], one line per position; mean over seeds; bars = the bootstrap
  interval with `unc` (analysis/uncertainty.py), else the std over seeds."""
  configs = [c for c in configs if c.family == family]
  panels = list(tasks) + ([AVERAGE] if include_average else [])
  rows, cols = _grid(len(panels))
  fig = Figure(figsize=(3.6 * cols, 3.0 * rows + 0.6), layout="constrained")
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  ratios = sorted({c.ratio for c in configs})
  for ax, panel in zip(axes, panels):
    for position in placement.POSITIONS:
      color, marker = POSITION_STYLE[position]
      pts = sorted((c for c in configs if c.position == position), key=lambda c: c.ratio)
      xs, ys, lo, hi = [], [], [], []
      for c in pts:
        if panel == AVERAGE:
          mean, std = c.average_mean, c.average_std
        elif panel in c.per_task_mean:
          mean, std = c.per_task_mean[panel], c.per_task_std[panel]
        else:
          continue  # excluded (below chance) or missing for this configuration
        if math.isnan(mean):
          continue
        iv = unc.ri_interval(c.family, c.name, "average" if panel == AVERAGE else panel) if unc else None
        xs.append(c.ratio)
        ys.append(mean)
        if iv is not None:
          lo.append(max(mean - iv.low, 0.0))
          hi.append(max(iv.high - mean, 0.0))
        else:
          lo.append(0.0 if math.isnan(std) else std)
          hi.append(lo[-1])
      if xs:
        ax.errorbar(
          xs, ys, yerr=[lo, hi] if any(lo) or any(hi) else None, color=color, marker=marker, capsize=2, label=position
        )
    ax.axhline(0.0, color="black", linestyle="--", linewidth=1, label="baseline (RI = 0)")
    if not ax.lines[:-1]:  # only the baseline line: every configuration left this task out
      ax.text(
        0.5,
        0.5,
        "left out of every comparison\n(chance rule, no signal or missing;\nsee the report's Exclusions)",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=8,
        color="gray",
      )
    ax.set_title("average RI" if panel == AVERAGE else f"{panel[0]} ({panel[1]})", fontsize=10)
    ax.set_xlabel("expanded-FFN ratio r (%)")
    ax.set_ylabel("RI (%)")
    if ratios:
      ax.set_xticks(ratios)
    ax.grid(alpha=0.3)
  for ax in axes[len(panels) :]:
    ax.set_visible(False)
  handles, labels = axes[0].get_legend_handles_labels()
  if not handles:  # the first panel may have no point at all; take the legend from any panel that has one
    for ax in axes[: len(panels)]:
      handles, labels = ax.get_legend_handles_labels()
      if len(handles) > 1:
        break
  fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), title="position of expanded FFNs")
  bars = f"bars: {unc.confidence:.0%} paired bootstrap interval" if unc else "bars: std over seeds"
  fig.suptitle(f"{family}: relative improvement over the baseline (positive = better; {bars})")
  return fig


def importance_figure(summary: ImportanceSummary, intervals=None) -> Figure:
  """Standardised importance per layer (1-based x), bars coloured by sign, dashed line at the L/2 boundary;
  error bars = bootstrap intervals (one per layer, None for never-deactivated layers) or the std over seeds."""
  L = summary.num_layers
  x = np.arange(1, L + 1)
  score, std = summary.score_mean, summary.score_std
  fig = Figure(figsize=(max(6.0, 0.22 * L + 2.5), 3.8), layout="constrained")
  ax = fig.subplots()
  defined = np.isfinite(score)
  height = np.where(defined, score, 0.0)
  if intervals is not None:
    err = np.array(
      [[0.0, 0.0] if iv is None else [max(h - iv.low, 0.0), max(iv.high - h, 0.0)] for h, iv in zip(height, intervals)]
    ).T
  else:
    err = np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any() else None
  colors = [POSITIVE_COLOR if h >= 0 else NEGATIVE_COLOR for h in height]
  bars = ax.bar(
    x[defined],
    height[defined],
    color=np.array(colors, dtype=object)[defined],
    yerr=None if err is None else err[..., defined],
    capsize=2,
  )
  pos = next((b for b, h in zip(bars, height[defined]) if h >= 0), None)
  neg = next((b for b, h in zip(bars, height[defined]) if h < 0), None)
  handles = []
  if pos is not None:
    pos.set_label("more important than average (> 0)")
    handles.append(pos)
  if neg is not None:
    neg.set_label("less important than average (< 0)")
    handles.append(neg)
  if (~defined).any():
    handles.append(
      ax.scatter(
        x[~defined], np.zeros((~defined).sum()), marker="x", color="gray", label="never deactivated (no score)"
      )
    )
  # The middle of the stack is the boundary between layers L/2 and L/2+1 (method.md §2), i.e. x = L/2 + 0.5.
  handles.append(ax.axvline(L / 2 + 0.5, color="black", linestyle="--", linewidth=1, label="L/2 (middle)"))
  ax.axhline(0.0, color="black", linewidth=0.8)
  ax.set_xlabel("layer (1 = closest to the input)")
  ax.set_ylabel("standardised FFN importance (z-score)")
  ax.set_xticks(x if L <= 24 else x[(x - 1) % 2 == 0] if L <= 48 else x[(x - 1) % 4 == 0])
  ax.set_xlim(0.3, L + 0.7)
  seeds = f", mean ± std over {len(summary.seeds)} seeds" if len(summary.seeds) > 1 else ""
  if intervals is not None:
    seeds = ", bars: 95 % bootstrap interval" + (f" ({len(summary.seeds)} seeds)" if len(summary.seeds) > 1 else "")
  ax.set_title(f"{summary.family}: layerwise FFN importance (App. H){seeds}")
  ax.legend(handles=handles, fontsize=8, loc="best")
  ax.grid(axis="y", alpha=0.3)
  return fig


def loss_curves_figure(
  curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str = "training loss"
) -> Figure:
  """One line per run: (steps, losses)."""
  if not curves:
    raise ValueError("loss_curves_figure: no curves (no run has metrics.jsonl with step and loss)")
  fig = Figure(figsize=(8.0, 4.8), layout="constrained")
  ax = fig.subplots()
  cmap = _colors(len(curves))
  for color, (name, (steps, losses)) in zip(cmap, sorted(curves.items())):
    style = "-" if not name.startswith("baseline") else "--"
    ax.plot(steps, losses, style, color="black" if style == "--" else color, linewidth=1.2, label=name)
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (nats / token)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncols=max(1, math.ceil(len(curves) / 14)), loc="upper right")
  return fig


def _colors(n: int) -> list:
  cmap = colormaps["tab20" if n > 10 else "tab10"]
  return [cmap(i % cmap.N) for i in range(n)]
