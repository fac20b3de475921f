import os

import numpy as np
from matplotlib.colors import to_rgba

from ffnjax.shapley import figures, players_from_layer_types


def test_player_and_ablation_figures(tmp_path):
  players = players_from_layer_types(["standard", "deactivated", "expanded"])
  phi = np.array([0.3, 0.2, -0.05, 0.1, 0.0])
  fig = figures.player_values_figure(phi, players, cornerstones=[0, 1], title="t", ylabel="Shapley value (Δ accuracy)")
  ax = fig.axes[0]
  labels = ax.get_legend().get_texts()
  assert sorted(t.get_text() for t in labels) == ["FFN", "attention", "cornerstone (removal -> chance)"]
  assert [t.get_text() for t in ax.get_xticklabels()] == [p.label for p in players]
  attn_bars = ax.containers[0]
  assert len(attn_bars) == 3 and all(b.get_facecolor() == to_rgba("tab:purple") for b in attn_bars)
  paths = figures.save(fig, str(tmp_path / "phi"))
  assert [os.path.splitext(p)[1] for p in paths] == [".png", ".svg"]
  assert all(os.path.getsize(p) > 1000 for p in paths)

  fig2 = figures.ablation_figure(phi, players, chance_drop=0.4, title="t", unit="Δ accuracy")
  assert "v(N) − v(N∖{i}) (Δ accuracy)" in fig2.axes[0].get_ylabel()
  assert "drop to chance level" in [t.get_text() for t in fig2.axes[0].get_legend().get_texts()]
