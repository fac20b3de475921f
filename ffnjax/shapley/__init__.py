"""Layer ablation and Shapley values over sub-layers (method.md §6): players, keep masks, a coalition cache,
estimators (single ablation, contiguous block, exact, permutation sampling), cornerstones and figures.

Pure numpy over a value function `v(frozenset of kept player indices) -> float`; `value.py` connects the model
and evaluator, `python -m ffnjax.shapley` is the command line.
"""

from ffnjax.shapley.cache import CachedValue, CoalitionCache, cached
from ffnjax.shapley.cornerstones import find_cornerstones, shares
from ffnjax.shapley.estimators import (
  MAX_EXACT_PLAYERS,
  Ablation,
  PermutationEstimate,
  block_coalitions,
  block_sets,
  block_shapley,
  check_efficiency,
  exact_shapley,
  permutation_shapley,
  single_ablation,
)
from ffnjax.shapley.game import evaluate
from ffnjax.shapley.players import (
  Player,
  coalition_from_mask,
  grand_coalition,
  keep_mask,
  keep_masks,
  players_from_layer_types,
)

__all__ = [
  "Ablation",
  "CachedValue",
  "CoalitionCache",
  "MAX_EXACT_PLAYERS",
  "PermutationEstimate",
  "Player",
  "block_coalitions",
  "block_sets",
  "block_shapley",
  "cached",
  "check_efficiency",
  "coalition_from_mask",
  "evaluate",
  "exact_shapley",
  "find_cornerstones",
  "grand_coalition",
  "keep_mask",
  "keep_masks",
  "permutation_shapley",
  "players_from_layer_types",
  "shares",
  "single_ablation",
]
