# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Plan the paper-scale grid (no JAX compute)
#
# For each of the paper's four baselines (method.md §1, `configs/paper.py`) and its 16 grid points (the baseline
# and position ∈ {first, middle, final} × ratio ∈ {10, 30, 50, 70, 90} %), this notebook derives the layer plans
# with `ffnjax.core.placement.LayerPlan` and reports the expanded width d_ff', parameter parity with the baseline and
# the training FLOPs, per token and per run (tokens from method.md §3: 5.8 B / 11 B / 11 B / 23 B).
#
# Pure Python: the configs are built (importing the package may import JAX) but nothing is compiled or run.

# %% setup
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from configs import paper  # `pip install -e ".[notebooks]"` from the repository root (notebooks/README.md)
from ffnjax.analysis.report_tables import PlainTable
from ffnjax.core import placement
from ffnjax.core.placement import LayerPlan

SEQ_LEN = 1024  # method.md §3
# Training tokens per run (method.md §3, paper Table 5) and the schedule they come from (20,000 steps).
TOKENS = {"285m_12l": 5.8e9, "570m_24l": 11e9, "570m_40l": 11e9, "1b_40l": 23e9}
STEPS = 20_000


def grid_names(size: str) -> list[str]:
  return [f"baseline_{size}"] + [f"{p}_{r}_{size}" for p in placement.POSITIONS for r in placement.PAPER_RATIOS]


# Every plan goes through the real config path (configs/paper.py -> LayerPlan.from_config).
PLANS = {size: [LayerPlan.from_config(paper.get_config(name)) for name in grid_names(size)] for size in paper.SIZES}
for size, plans in PLANS.items():
  assert len(plans) == 16, (size, len(plans))
  print(
    f"{size}: {len(plans)} grid points, L = {plans[0].num_layers}, d = {plans[0].dims.d_model}, "
    f"d_ff = {plans[0].d_ff}, heads = {plans[0].dims.num_heads}"
  )

# %% [markdown]
# ## Layer plans
#
# One line per grid point, one character per layer (layer 1 first): `S` standard, `E` expanded, `·` deactivated.

# %% layout-text
SYMBOL = {placement.STANDARD: "S", placement.EXPANDED: "E", placement.DEACTIVATED: "·"}
for size, plans in PLANS.items():
  print(f"{size}  (d_ff = {plans[0].d_ff})")
  for plan in plans:
    layout = "".join(SYMBOL[t] for t in plan.layer_types)
    width = plan.d_ff_expanded or plan.d_ff
    print(f"  {plan.name:<22} {layout:<40} n = {plan.num_expanded:>2}  d_ff' = {width}")
  print()

# %% layout-heatmap
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
fig.legend(
  handles=[Patch(facecolor=c, edgecolor="black", label=t) for t, c in zip(CODES, COLORS)],
  loc="outside lower center",
  ncols=3,
)
fig.suptitle("layer plans of the 16 grid points per baseline (red line: L/2)")
plt.show()

# %% [markdown]
# ## Parameters and FLOPs
#
# d_ff' is the smallest width with n · (3 d d_ff' + d) ≥ L · (3 d d_ff + d) (method.md §2). FLOPs are training
# FLOPs (forward + backward = 3× forward, matmuls only, causal attention counted as its triangle:
# `LayerPlan.flops_per_token`). FLOPs per run = FLOPs per token × the run's tokens. `tokens (steps×batch×seq)`
# shows what the schedule actually consumes: 20,000 steps × global batch × 1024.

# %% counts
ROWS = []
for size, plans in PLANS.items():
  base_flops = plans[0].flops_per_token(SEQ_LEN)
  batch = paper.SIZES[size]["train"]["global_batch"]
  rows = []
  for plan in plans:
    j = plan.to_json()
    flops = plan.flops_per_token(SEQ_LEN)
    ROWS.append(
      dict(
        size=size,
        name=plan.name,
        position=plan.position,
        ratio=plan.ratio,
        n=plan.num_expanded,
        d_ff_expanded=plan.d_ff_expanded,
        params=j["params_total"],
        params_non_embedding=j["params_non_embedding"],
        rel_diff=j["param_rel_diff"],
        flops_per_token=flops,
        flops_rel=flops / base_flops - 1.0,
        flops_run=flops * TOKENS[size],
      )
    )
    rows.append(
      [
        plan.name,
        plan.num_expanded,
        plan.d_ff_expanded or plan.d_ff,
        f"{j['params_total']:,}",
        f"{j['params_non_embedding']:,}",
        f"{100 * j['param_rel_diff']:+.4f}",
        f"{flops:.3e}",
        f"{100 * (flops / base_flops - 1):+.4f}",
        f"{flops * TOKENS[size]:.3e}",
      ]
    )
  display(
    Markdown(
      f"**{size}**: {TOKENS[size] / 1e9:g} B tokens per run (method.md §3); "
      f"steps×batch×seq = {STEPS * batch * SEQ_LEN / 1e9:.2f} B"
    ),
    PlainTable(
      [
        "model",
        "n expanded",
        "d_ff'",
        "params",
        "non-embedding",
        "Δparams %",
        "FLOPs/token",
        "ΔFLOPs/token %",
        "FLOPs/run",
      ],
      rows,
    ),
  )

# %% checks
# The worked examples of method.md §2 and its parity bound.
by_name = {r["name"]: r for r in ROWS}
assert by_name["middle_30_285m_12l"]["d_ff_expanded"] == 17921
assert by_name["final_70_570m_40l"]["d_ff_expanded"] == 4961
assert all(abs(r["rel_diff"]) <= 2e-4 for r in ROWS), "parameter parity within 0.02 % (method.md §2)"
assert abs(by_name["baseline_285m_12l"]["params"] / 1e6 - 413) < 2, "285m_12l: about 413 M parameters in all"
worst = max(ROWS, key=lambda r: abs(r["rel_diff"]))
print(
  "middle_30_285m_12l d_ff' =",
  by_name["middle_30_285m_12l"]["d_ff_expanded"],
  "| final_70_570m_40l d_ff' =",
  by_name["final_70_570m_40l"]["d_ff_expanded"],
)
print(f"largest parameter difference: {worst['name']} {100 * worst['rel_diff']:+.5f} %")

# %% plots
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

# %% [markdown]
# ## Compute budget of the whole replication
#
# Training FLOPs per run and summed over a baseline's 16 runs. The device-time estimate assumes a peak rate and a
# model-FLOPs utilisation (MFU); edit both for your hardware (989 TFLOP/s is the H100 SXM dense bf16 peak).

# %% budget
PEAK_FLOPS = 989e12  # per device, dense bf16
MFU = 0.40
fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
rows, total = [], 0.0
for i, size in enumerate(PLANS):
  runs = [r for r in ROWS if r["size"] == size]
  study_flops = sum(r["flops_run"] for r in runs)
  total += study_flops
  lo, hi = min(r["flops_run"] for r in runs), max(r["flops_run"] for r in runs)
  rows.append(
    [
      size,
      f"{TOKENS[size] / 1e9:g} B",
      f"{runs[0]['flops_run']:.3e}",
      f"{lo:.3e} – {hi:.3e}",
      f"{study_flops:.3e}",
      f"{study_flops / (PEAK_FLOPS * MFU) / 86400:,.1f}",
    ]
  )
  ax.bar(i, study_flops, color="tab:blue")
  ax.text(i, study_flops, f"{study_flops:.2e}", ha="center", va="bottom", fontsize=8)
rows.append(["all four", "", "", "", f"{total:.3e}", f"{total / (PEAK_FLOPS * MFU) / 86400:,.1f}"])
display(
  PlainTable(
    [
      "baseline",
      "tokens/run",
      "FLOPs baseline run",
      "FLOPs/run range",
      "FLOPs 16 runs",
      f"device-days at {PEAK_FLOPS / 1e12:g} TFLOP/s × {MFU:.0%} MFU",
    ],
    rows,
  )
)
ax.set_xticks(range(len(PLANS)), list(PLANS))
ax.set_yscale("log")
ax.set_ylabel("training FLOPs, 16 runs")
ax.set_title("compute per study (one seed)")
plt.show()
