"""Generates the notebooks of this directory from the cell sources below, so they stay diff-able and regenerable.

    python notebooks/build_notebooks.py           # (re)writes notebooks/*.ipynb, without outputs
    python notebooks/build_notebooks.py --check   # exit 1 if a committed notebook differs from its source here

Edit the cells here, not in Jupyter (or copy changes made in Jupyter back here). Cell ids are fixed names, so a
regenerated notebook is byte-identical when nothing changed. tests/notebooks/ executes both notebooks.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

import nbformat
from nbformat import v4

HERE = os.path.dirname(os.path.abspath(__file__))

# Finds the repository root from the notebook's working directory (notebooks/ or the root itself) and makes
# `ffnjax` and `configs` importable even without `pip install -e .`.
_SETUP = '''
import os
import pathlib
import sys


def find_repo_root() -> pathlib.Path:
    here = pathlib.Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "ffnjax" / "__init__.py").exists() and (d / "configs").is_dir():
            return d
    return here


ROOT = find_repo_root()
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
'''


def md(cell_id: str, text: str):
  return v4.new_markdown_cell(textwrap.dedent(text).strip(), id=cell_id)


def code(cell_id: str, *parts: str):
  """A code cell from source parts, each dedented on its own (so shared snippets can be prepended)."""
  return v4.new_code_cell("\n\n".join(textwrap.dedent(p).strip() for p in parts), id=cell_id)


# ----------------------------------------------------------------------------------------------- explore_study


def explore_study_cells() -> list:
  return [
      md("title", """
      # Explore a placement study

      Opens a study directory written by `python -m ffnjax.study` (one run directory per grid point, `report.md`,
      `figures/`) and shows what the report shows, as live objects: the results table, relative improvement (RI),
      the top configurations, layerwise FFN importance (paper App. H), the figures, a per-task drill-down and
      per-example records. It then loads the baseline checkpoint with `ffnjax.notebook.InteractiveModel` to score,
      generate and ablate.

      The study directory comes from the environment variable `FFNJAX_STUDY_DIR` (default `study/tiny`, relative to
      the repository root). Make one with

      ```
      python -m ffnjax.study --config=configs/study.py:tiny --workdir=study/tiny     # ~15 min on a CPU
      python -m ffnjax.study --config=configs/study.py:smoke --workdir=study/smoke   # ~1 min, 3 tiny runs
      ```

      Layers are numbered from 1 (layer 1 = closest to the input) in every table and figure.
      """),
      code("setup", _SETUP, '''
      from absl import logging as absl_logging
      from IPython.display import Image, Markdown, display

      absl_logging.set_verbosity(absl_logging.ERROR)  # checkpoint restores log read-only warnings otherwise

      STUDY_DIR = os.environ.get("FFNJAX_STUDY_DIR", "study/tiny")
      if not os.path.isabs(STUDY_DIR) and not os.path.isdir(STUDY_DIR):
          STUDY_DIR = str(ROOT / STUDY_DIR)
      if not os.path.isdir(STUDY_DIR):
          raise FileNotFoundError(
              f"no study directory at {STUDY_DIR}; run `python -m ffnjax.study --config=configs/study.py:tiny "
              f"--workdir=study/tiny` or point FFNJAX_STUDY_DIR at a study")


      def show(table):
          """A PlainTable (ffnjax.analysis.report_tables) as a rendered markdown table."""
          display(Markdown(table.to_markdown()))
      '''),
      code("open", '''
      from ffnjax.notebook import open_study

      study = open_study(STUDY_DIR)
      FAMILY = study.families[0]
      print("study:   ", study.path)
      print("runs:    ", ", ".join(study.runs))
      print("families:", ", ".join(study.families))
      print("task set of the average RI:", ", ".join(f"{t}:{m}" for t, m in study.tasks))
      if study.table.skipped:
          print("not evaluated:", "; ".join(study.table.skipped))
      '''),
      md("h-results", """
      ## Results table

      Raw metric values per model (mean over seeds), baseline first. `study.table.records()` gives every row
      (model, seed, task, metric, value, ...) as dicts.
      """),
      code("results", '''
      for family in study.families:
          display(Markdown(f"**{family}**"))
          show(study.metrics_table(family))
      '''),
      md("h-ri", """
      ## Relative improvement

      RI(m, T) = s(T) · (metric(m, T) − metric(baseline, T)) / metric(baseline, T) · 100 %, with s = −1 for
      perplexity-like metrics, so positive is better. `excl.` = left out (below chance, or a zero baseline).
      """),
      code("ri", '''
      for family in study.families:
          display(Markdown(f"**{family}**: all configurations, best average RI first"))
          show(study.ri_table(family))
          excluded = study.exclusions_table(family)
          if excluded.rows:
              display(Markdown("Left out of the comparison:"))
              show(excluded)
      '''),
      code("topk", '''
      TOP_K = 5
      for family in study.families:
          display(Markdown(f"**{family}**: top {TOP_K} configurations by average RI (paper Table 1/2 style)"))
          show(study.top_k_table(TOP_K, family))
      '''),
      md("h-importance", """
      ## Layerwise FFN importance (paper App. H)

      I_(p,r)(l) = −RI(p, r) / |D_(p,r)| for every configuration that deactivates layer l; Raw(l) is their mean and
      the score is Raw standardised over layers. A positive score: removing that layer's FFN hurt more than average.
      """),
      code("importance", '''
      if not study.importance:
          print("importance not computed:", study.analysis.importance_error)
      for family in study.importance:
          display(Markdown(f"**{family}**"))
          show(study.importance_table(family))
      '''),
      md("h-figures", "## Figures (as written by the study's report)"),
      code("figures", '''
      if not study.figures:
          print(f"no figures under {STUDY_DIR}/figures; run `python -m ffnjax.analysis --study={STUDY_DIR}`")
      for stem, png in study.figures.items():
          display(Markdown(f"**{stem}** (`{os.path.relpath(png, STUDY_DIR)}`)"))
          display(Image(filename=png, width=720))
      '''),
      md("h-drilldown", """
      ## Drill-down: one task across positions and ratios

      Change `TASK, METRIC` to any pair of the results table (`study.table.task_metrics`).
      """),
      code("drilldown", '''
      import math

      import matplotlib.pyplot as plt

      TASK, METRIC = study.tasks[0]
      drill = study.drilldown(TASK, METRIC, FAMILY)
      show(drill)

      rows = drill.records()
      value_key = f"{TASK} {METRIC}"
      fig, ax = plt.subplots(figsize=(6, 3.5))
      for position, marker in (("first", "o"), ("middle", "s"), ("final", "^")):
          pts = sorted((r["ratio"], r[value_key]) for r in rows if r["position"] == position and r[value_key] is not None)
          if pts:
              ax.plot(*zip(*pts), marker=marker, label=position)
      base = [r[value_key] for r in rows if r["position"] == "baseline" and r[value_key] is not None]
      if base:
          ax.axhline(base[0], color="black", linestyle="--", label="baseline")
      if rows and all(r[value_key] and r[value_key] > 0 for r in rows) and "perplexity" in METRIC:
          ax.set_yscale("log")
      ax.set_xticks(sorted({r["ratio"] for r in rows if r["position"] != "baseline"}))
      ax.set_xlabel("expanded-FFN ratio r (%)")
      ax.set_ylabel(f"{TASK} {METRIC}")
      ax.set_title(f"{FAMILY}: {TASK} {METRIC} by position and ratio")
      ax.grid(alpha=0.3)
      ax.legend()
      plt.show()

      # RI of this task for each configuration (mean over seeds; NaN = excluded for that configuration)
      for c in study.ri:
          if c.family == FAMILY:
              ri = c.per_task_mean.get((TASK, METRIC), math.nan)
              print(f"{c.name:<28} RI {ri:+8.2f} %   average RI {c.average_mean:+8.2f} %")
      '''),
      md("h-records", """
      ## Per-example records

      `RUN/eval/records.jsonl`, written by `python -m ffnjax.eval --workdir=RUN --records=RUN/eval/records.jsonl`:
      one line per document with its requests (context, continuation, LL, is_greedy), gold, prediction and metrics.
      """),
      code("records", '''
      import json

      if not study.records:
          print("no run of this study has eval/records.jsonl; write one with\\n"
                f"  python -m ffnjax.eval --workdir={study.baseline_run()} "
                f"--records={study.baseline_run()}/eval/records.jsonl")
      else:
          RUN = next(iter(study.records))
          records = study.load_records(RUN)
          print(f"{RUN}: {len(records)} records, tasks {sorted({r['task'] for r in records})}")
          for rec in records[:3]:
              short = {k: v for k, v in rec.items() if k != "requests"}
              print(json.dumps(short, ensure_ascii=False)[:300])
              for req in rec.get("requests", [])[:2]:
                  print("   ", repr(req.get("context", ""))[-60:], "->", repr(req.get("continuation", ""))[:40],
                        "LL", round(req.get("ll", float("nan")), 3), "greedy", req.get("is_greedy"))
          if len(study.records) > 1:  # the same documents scored by two runs
              a, b = list(study.records)[:2]
              ra = {(r["task"], r["doc_id"]): r for r in study.load_records(a)}
              rb = {(r["task"], r["doc_id"]): r for r in study.load_records(b)}
              both = sorted(set(ra) & set(rb))
              print(f"\\n{a} vs {b}: {len(both)} documents in both")
              for key in both[:5]:
                  lla = sum(q["ll"] for q in ra[key].get("requests", []))
                  llb = sum(q["ll"] for q in rb[key].get("requests", []))
                  print(f"  {key[0]} doc {key[1]}: total LL {lla:9.3f} vs {llb:9.3f}")
      '''),
      md("h-model", """
      ## The baseline model, interactively

      `InteractiveModel` restores a checkpoint's parameters on one device. `score` uses the evaluator's exact
      loglikelihood semantics; `generate` re-runs the full forward pass per token (no KV cache: fine for tiny models,
      slow for paper-scale ones); `drop`/`ablate` remove sub-layers through the model's `keep` mask (one compiled
      program for every mask).
      """),
      code("model", '''
      from ffnjax.notebook import InteractiveModel

      model = InteractiveModel.from_run(study.baseline_run(FAMILY))
      print(model)
      print(model.plan.describe())
      '''),
      code("score", '''
      CONTEXT, CONTINUATION = "To be, or not to be, that is the", " question"
      ll, greedy = model.score(CONTEXT, CONTINUATION)
      print(f"{model.name}: LL({CONTINUATION!r} | {CONTEXT!r}) = {ll:.3f}, greedy = {greedy}")
      print("greedy continuation:", repr(model.generate(CONTEXT, max_new_tokens=16)))
      print("sampled (T=0.8):    ", repr(model.generate(CONTEXT, max_new_tokens=16, temperature=0.8, seed=0)))
      '''),
      code("ablation", '''
      # Single-sub-layer ablation on this one line: LL change when each attention / FFN sub-layer is removed.
      rows = []
      for layer in range(1, model.plan.num_layers + 1):
          row = [layer, model.plan.layer_types[layer - 1]]
          for part in ("attention", "ffn"):
              if part == "ffn" and model.plan.layer_types[layer - 1] == "deactivated":
                  row.append(None)
                  continue
              ablated = model.drop(**{part: [layer]})
              row.append(ablated.score(CONTEXT, CONTINUATION)[0] - ll)
          rows.append(row)

      from ffnjax.analysis.report_tables import PlainTable

      show(PlainTable(["layer", "type", "ΔLL without attention", "ΔLL without FFN"], rows, digits=3))
      '''),
  ]


# --------------------------------------------------------------------------------------------- plan_paper_grid


def plan_paper_grid_cells() -> list:
  return [
      md("title", """
      # Plan the paper-scale grid (no JAX compute)

      For each of the paper's four baselines (method.md §1, `configs/paper.py`) and its 16 grid points (the baseline
      and position ∈ {first, middle, final} × ratio ∈ {10, 30, 50, 70, 90} %), this notebook derives the layer plans
      with `ffnjax.core.placement.LayerPlan` and reports the expanded width d_ff', parameter parity with the baseline and
      the training FLOPs, per token and per run (tokens from method.md §3: 5.8 B / 11 B / 11 B / 23 B).

      Pure Python: the configs are built (importing the package may import JAX) but nothing is compiled or run.
      """),
      code("setup", _SETUP, '''
      from IPython.display import Markdown, display

      from configs import paper
      from ffnjax.core import placement
      from ffnjax.analysis.report_tables import PlainTable
      from ffnjax.core.placement import LayerPlan

      SEQ_LEN = 1024  # method.md §3
      # Training tokens per run (method.md §3, paper Table 5) and the schedule they come from (20,000 steps).
      TOKENS = {"285m_12l": 5.8e9, "570m_24l": 11e9, "570m_40l": 11e9, "1b_40l": 23e9}
      STEPS = 20_000


      def show(table):
          display(Markdown(table.to_markdown()))


      def grid_names(size: str) -> list[str]:
          return [f"baseline_{size}"] + [f"{p}_{r}_{size}" for p in placement.POSITIONS for r in placement.PAPER_RATIOS]


      # Every plan goes through the real config path (configs/paper.py -> LayerPlan.from_config).
      PLANS = {size: [LayerPlan.from_config(paper.get_config(name)) for name in grid_names(size)] for size in paper.SIZES}
      for size, plans in PLANS.items():
          assert len(plans) == 16, (size, len(plans))
          print(f"{size}: {len(plans)} grid points, L = {plans[0].num_layers}, d = {plans[0].dims.d_model}, "
                f"d_ff = {plans[0].d_ff}, heads = {plans[0].dims.num_heads}")
      '''),
      md("h-layout", """
      ## Layer plans

      One line per grid point, one character per layer (layer 1 first): `S` standard, `E` expanded, `·` deactivated.
      """),
      code("layout-text", '''
      SYMBOL = {placement.STANDARD: "S", placement.EXPANDED: "E", placement.DEACTIVATED: "·"}
      for size, plans in PLANS.items():
          print(f"{size}  (d_ff = {plans[0].d_ff})")
          for plan in plans:
              layout = "".join(SYMBOL[t] for t in plan.layer_types)
              width = plan.d_ff_expanded or plan.d_ff
              print(f"  {plan.name:<22} {layout:<40} n = {plan.num_expanded:>2}  d_ff' = {width}")
          print()
      '''),
      code("layout-heatmap", '''
      import matplotlib.pyplot as plt
      import numpy as np
      from matplotlib.colors import ListedColormap
      from matplotlib.patches import Patch

      CODES = {placement.STANDARD: 0, placement.EXPANDED: 1, placement.DEACTIVATED: 2}
      COLORS = ["#9e9e9e", "#1f77b4", "#ffffff"]
      fig, axes = plt.subplots(1, len(PLANS), figsize=(4.2 * len(PLANS), 5.2), constrained_layout=True)
      for ax, (size, plans) in zip(axes, PLANS.items()):
          grid = np.array([[CODES[t] for t in p.layer_types] for p in plans])
          L = grid.shape[1]
          ax.imshow(grid, cmap=ListedColormap(COLORS), vmin=0, vmax=2, aspect="auto", interpolation="nearest")
          ax.set_yticks(range(len(plans)), [p.name.replace(f"_{size}", "") for p in plans], fontsize=7)
          ticks = [t for t in range(L) if (t + 1) % (1 if L <= 12 else 4) == 0 or t == 0]
          ax.set_xticks(ticks, [t + 1 for t in ticks], fontsize=7)
          ax.set_xticks(np.arange(-0.5, L, 1), minor=True)
          ax.set_yticks(np.arange(-0.5, len(plans), 1), minor=True)
          ax.grid(which="minor", color="black", linewidth=0.3)
          ax.tick_params(which="minor", length=0)
          ax.axvline(L / 2 - 0.5, color="red", linewidth=1)  # the L/2 boundary
          ax.set_xlabel("layer")
          ax.set_title(size)
      fig.legend(handles=[Patch(facecolor=c, edgecolor="black", label=t) for t, c in zip(CODES, COLORS)],
                 loc="outside lower center", ncols=3)
      fig.suptitle("layer plans of the 16 grid points per baseline (red line: L/2)")
      plt.show()
      '''),
      md("h-counts", """
      ## Parameters and FLOPs

      d_ff' is the smallest width with n · (3 d d_ff' + d) ≥ L · (3 d d_ff + d) (method.md §2). FLOPs are training
      FLOPs (forward + backward = 3× forward, matmuls only, causal attention counted as its triangle:
      `LayerPlan.flops_per_token`). FLOPs per run = FLOPs per token × the run's tokens. `tokens (steps×batch×seq)`
      shows what the schedule actually consumes: 20,000 steps × global batch × 1024.
      """),
      code("counts", '''
      ROWS = []
      for size, plans in PLANS.items():
          base = plans[0]
          base_flops = base.flops_per_token(SEQ_LEN)
          batch = paper.SIZES[size]["train"]["global_batch"]
          rows = []
          for plan in plans:
              j = plan.to_json()
              flops = plan.flops_per_token(SEQ_LEN)
              rec = dict(size=size, name=plan.name, position=plan.position, ratio=plan.ratio, n=plan.num_expanded,
                         d_ff_expanded=plan.d_ff_expanded, params=j["params_total"],
                         params_non_embedding=j["params_non_embedding"], rel_diff=j["param_rel_diff"],
                         flops_per_token=flops, flops_rel=flops / base_flops - 1.0, flops_run=flops * TOKENS[size])
              ROWS.append(rec)
              rows.append([plan.name, plan.num_expanded, plan.d_ff_expanded or plan.d_ff, f"{j['params_total']:,}",
                           f"{j['params_non_embedding']:,}", f"{100 * j['param_rel_diff']:+.4f}", f"{flops:.3e}",
                           f"{100 * (flops / base_flops - 1):+.4f}", f"{flops * TOKENS[size]:.3e}"])
          display(Markdown(f"**{size}**: {TOKENS[size] / 1e9:g} B tokens per run (method.md §3); "
                           f"steps×batch×seq = {STEPS * batch * SEQ_LEN / 1e9:.2f} B"))
          show(PlainTable(["model", "n expanded", "d_ff'", "params", "non-embedding", "Δparams %", "FLOPs/token",
                           "ΔFLOPs/token %", "FLOPs/run"], rows))
      '''),
      code("checks", '''
      # The worked examples of method.md §2 and its parity bound.
      by_name = {r["name"]: r for r in ROWS}
      assert by_name["middle_30_285m_12l"]["d_ff_expanded"] == 17921
      assert by_name["final_70_570m_40l"]["d_ff_expanded"] == 4961
      assert all(abs(r["rel_diff"]) <= 2e-4 for r in ROWS), "parameter parity within 0.02 % (method.md §2)"
      assert abs(by_name["baseline_285m_12l"]["params"] / 1e6 - 413) < 2, "285m_12l: about 413 M parameters in all"
      worst = max(ROWS, key=lambda r: abs(r["rel_diff"]))
      print("middle_30_285m_12l d_ff' =", by_name["middle_30_285m_12l"]["d_ff_expanded"],
            "| final_70_570m_40l d_ff' =", by_name["final_70_570m_40l"]["d_ff_expanded"])
      print(f"largest parameter difference: {worst['name']} {100 * worst['rel_diff']:+.5f} %")
      '''),
      code("plots", '''
      fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
      for size in PLANS:
          rows = sorted((r for r in ROWS if r["size"] == size and r["position"] == "first"), key=lambda r: r["ratio"])
          ratios = [r["ratio"] for r in rows]
          axes[0].plot(ratios, [r["d_ff_expanded"] / PLANS[size][0].d_ff for r in rows], marker="o", label=size)
          axes[1].plot(ratios, [100 * r["rel_diff"] for r in rows], marker="o", label=size)
          axes[2].plot(ratios, [100 * r["flops_rel"] for r in rows], marker="o", label=size)
      axes[0].set_yscale("log")
      axes[0].set_ylabel("d_ff' / d_ff")
      axes[1].set_ylabel("parameters vs baseline (%)")
      axes[2].set_ylabel("training FLOPs/token vs baseline (%)")
      for ax in axes:
          ax.set_xlabel("expanded-FFN ratio r (%)")
          ax.set_xticks(list(placement.PAPER_RATIOS))
          ax.grid(alpha=0.3)
          ax.legend()
      axes[0].set_title("expanded width (same for every position)")
      axes[1].set_title("parameter parity")
      axes[2].set_title("per-token cost (same for every position)")
      plt.show()
      '''),
      md("h-budget", """
      ## Compute budget of the whole replication

      Training FLOPs per run and summed over a baseline's 16 runs. The device-time estimate assumes a peak rate and a
      model-FLOPs utilisation (MFU); edit both for your hardware (989 TFLOP/s is the H100 SXM dense bf16 peak).
      """),
      code("budget", '''
      PEAK_FLOPS = 989e12  # per device, dense bf16
      MFU = 0.40
      fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
      rows, total = [], 0.0
      for i, size in enumerate(PLANS):
          runs = [r for r in ROWS if r["size"] == size]
          study_flops = sum(r["flops_run"] for r in runs)
          total += study_flops
          base_run = runs[0]["flops_run"]
          lo, hi = min(r["flops_run"] for r in runs), max(r["flops_run"] for r in runs)
          device_days = study_flops / (PEAK_FLOPS * MFU) / 86400
          rows.append([size, f"{TOKENS[size] / 1e9:g} B", f"{base_run:.3e}", f"{lo:.3e} – {hi:.3e}",
                       f"{study_flops:.3e}", f"{device_days:,.1f}"])
          ax.bar(i, study_flops, color="tab:blue")
          ax.text(i, study_flops, f"{study_flops:.2e}", ha="center", va="bottom", fontsize=8)
      rows.append(["all four", "", "", "", f"{total:.3e}", f"{total / (PEAK_FLOPS * MFU) / 86400:,.1f}"])
      show(PlainTable(["baseline", "tokens/run", "FLOPs baseline run", "FLOPs/run range", "FLOPs 16 runs",
                       f"device-days at {PEAK_FLOPS / 1e12:g} TFLOP/s × {MFU:.0%} MFU"], rows))
      ax.set_xticks(range(len(PLANS)), list(PLANS))
      ax.set_yscale("log")
      ax.set_ylabel("training FLOPs, 16 runs")
      ax.set_title("compute per study (one seed)")
      plt.show()
      '''),
  ]


NOTEBOOKS = {
    "explore_study.ipynb": explore_study_cells,
    "plan_paper_grid.ipynb": plan_paper_grid_cells,
}


def build(name: str) -> nbformat.NotebookNode:
  nb = v4.new_notebook(cells=NOTEBOOKS[name]())
  nb.metadata = {
      "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
      "language_info": {"name": "python"},
  }
  nbformat.validate(nb)
  return nb


def render(name: str) -> str:
  return nbformat.writes(build(name)) + "\n"


def content(nb) -> str:
  """What --check compares: metadata and each cell's type, id, source and outputs (not the JSON layout, which
  may differ between nbformat versions)."""
  cells = [(c.cell_type, c.get("id"), c.source, c.get("outputs"), c.get("execution_count")) for c in nb.cells]
  return repr((sorted(nb.metadata.items(), key=str), cells))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
  parser.add_argument("--output_dir", default=HERE, help="where to write the notebooks (default: notebooks/)")
  args = parser.parse_args(argv)
  stale = []
  for name in NOTEBOOKS:
    path = os.path.join(args.output_dir, name)
    text = render(name)
    if args.check:
      try:
        current = content(nbformat.read(path, as_version=4))
      except (OSError, ValueError):
        current = None
      if current != content(nbformat.reads(text, as_version=4)):
        stale.append(path)
    else:
      with open(path, "w", encoding="utf-8") as f:
        f.write(text)
      print(f"wrote {path}")
  if stale:
    print("out of date (run `python notebooks/build_notebooks.py`): " + ", ".join(stale), file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
