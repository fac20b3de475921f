import os

import numpy as np
from matplotlib.colors import to_rgba

from ffnjax.analysis import TABLE1_TASKS, compute_ri, figures, importance_by_family, load_study, runs, summarize_seeds


def test_ri_vs_ratio_figure(study, tmp_path):
  configs = summarize_seeds(compute_ri(load_study(study), TABLE1_TASKS))
  fig = figures.ri_vs_ratio_figure(configs, TABLE1_TASKS, "tiny_4l")
  visible = [ax for ax in fig.axes if ax.get_visible()]
  assert len(visible) == len(TABLE1_TASKS) + 1
  assert [ax.get_title() for ax in visible][:3] == [
    "wikitext (word_perplexity)",
    "lambada_openai (acc)",
    "hellaswag (acc)",
  ]
  assert visible[-1].get_title() == "average RI"
  for ax in visible:
    assert ax.get_xlabel() == "expanded-FFN ratio r (%)" and ax.get_ylabel() == "RI (%)"
    zero = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(zero) == 1 and list(zero[0].get_ydata()) == [0.0, 0.0]
  legend = [t.get_text() for t in fig.legends[0].get_texts()]
  assert set(legend) == {"first", "middle", "final", "baseline (RI = 0)"}
  hellaswag = visible[2]
  first = next(c for c in hellaswag.containers if c.get_label() == "first").lines[0]  # errorbar's data line
  np.testing.assert_array_equal(first.get_xdata(), [25, 50])
  np.testing.assert_allclose(np.asarray(first.get_ydata(), float), [-1.0, 2.0])  # quality 0.99 and 1.02 in the fixture
  paths = figures.save(fig, str(tmp_path / "figs" / "ri"))
  assert all(os.path.getsize(p) > 1000 for p in paths) and paths[0].endswith(".png") and paths[1].endswith(".svg")


def test_importance_figure(study, tmp_path):
  summary = importance_by_family(compute_ri(load_study(study), TABLE1_TASKS))["tiny_4l"]
  fig = figures.importance_figure(summary)
  ax = fig.axes[0]
  assert ax.get_xlabel().startswith("layer (1 =") and "standardised" in ax.get_ylabel()
  bars = ax.containers[0]
  heights = [b.get_height() for b in bars]
  np.testing.assert_allclose(heights, summary.score_mean)
  assert [b.get_x() + b.get_width() / 2 for b in bars] == [1, 2, 3, 4]  # 1-based layers
  for b, h in zip(bars, heights):
    assert b.get_facecolor() == to_rgba(figures.POSITIVE_COLOR if h >= 0 else figures.NEGATIVE_COLOR)
  assert min(heights) < 0 < max(heights)  # both colours are exercised
  middle = [ln for ln in ax.get_lines() if ln.get_label() == "L/2 (middle)"]
  assert len(middle) == 1 and list(middle[0].get_xdata()) == [2.5, 2.5]
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert "L/2 (middle)" in labels and "more important than average (> 0)" in labels
  assert all(os.path.getsize(p) > 1000 for p in figures.save(fig, str(tmp_path / "imp")))


def test_loss_curves_figure(study):
  curves = {name: runs.loss_curve(os.path.join(study, name)) for name in os.listdir(study)}
  fig = figures.loss_curves_figure(curves)
  ax = fig.axes[0]
  assert len(ax.get_lines()) == 7
  assert ax.get_xlabel() == "step" and "loss" in ax.get_ylabel()
  assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(curves)
