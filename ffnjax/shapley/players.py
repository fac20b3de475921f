"""Players (attention and FFN sub-layers in forward order) and the model's [L, 2] keep mask.

Layers are 0-based in code (`Player.layer`), 1-based in labels ("L1.attn" is the first layer's attention).
A deactivated layer (method.md §1) has no FFN, so it contributes only its attention player.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

ATTN, FFN = "attn", "ffn"
KINDS = (ATTN, FFN)
LAYER_TYPES = ("standard", "expanded", "deactivated")
DEACTIVATED = "deactivated"
ATTN_COL, FFN_COL = 0, 1  # columns of the keep mask

Coalition = frozenset  # of player indices (the players kept)


@dataclasses.dataclass(frozen=True)
class Player:
  index: int  # position in forward order: the id used in coalitions
  layer: int  # 0-based layer
  kind: str  # "attn" | "ffn"
  label: str  # 1-based, e.g. "L1.attn"


def players_from_layer_types(layer_types: Sequence[str]) -> list[Player]:
  """Layer 1 attention, layer 1 FFN, layer 2 attention, ...; deactivated layers have no FFN player."""
  if not layer_types:
    raise ValueError(f"layer_types: empty; expected one of {LAYER_TYPES} per layer")
  players = []
  for layer, t in enumerate(layer_types):
    if t not in LAYER_TYPES:
      raise ValueError(f"layer_types[{layer}]={t!r}: must be one of {LAYER_TYPES}")
    kinds = (ATTN,) if t == DEACTIVATED else (ATTN, FFN)
    for kind in kinds:
      players.append(Player(len(players), layer, kind, f"L{layer + 1}.{kind}"))
  return players


def grand_coalition(num_players: int) -> Coalition:
  return frozenset(range(num_players))


def check_coalition(coalition: Iterable[int], num_players: int) -> Coalition:
  coalition = frozenset(coalition)
  bad = [i for i in coalition if not isinstance(i, (int, np.integer)) or not 0 <= i < num_players]
  if bad:
    raise ValueError(f"coalition: player indices {sorted(map(str, bad))} are not in 0..{num_players - 1}")
  return frozenset(int(i) for i in coalition)


def keep_mask(players: Sequence[Player], coalition: Iterable[int], num_layers: int) -> np.ndarray:
  """float32 [num_layers, 2]: column 0 attention, column 1 FFN; 1 = kept, 0 = output zeroed.

  A deactivated layer's FFN column is 1: the model ignores it, and 1 keeps masks of equal coalitions equal.
  """
  coalition = check_coalition(coalition, len(players))
  if any(p.layer >= num_layers for p in players):
    raise ValueError(f"num_layers={num_layers}: players reach layer {max(p.layer for p in players) + 1}")
  mask = np.ones((num_layers, 2), np.float32)
  for p in players:
    if p.index not in coalition:
      mask[p.layer, ATTN_COL if p.kind == ATTN else FFN_COL] = 0.0
  return mask


def keep_masks(players: Sequence[Player], coalitions: Sequence[Iterable[int]], num_layers: int) -> np.ndarray:
  """float32 [len(coalitions), num_layers, 2]: one batch for one compiled program."""
  return (
    np.stack([keep_mask(players, c, num_layers) for c in coalitions])
    if coalitions
    else np.zeros((0, num_layers, 2), np.float32)
  )


def coalition_from_mask(players: Sequence[Player], mask: np.ndarray) -> Coalition:
  """The inverse of keep_mask: players whose mask entry is non-zero."""
  mask = np.asarray(mask)
  return frozenset(p.index for p in players if mask[p.layer, ATTN_COL if p.kind == ATTN else FFN_COL] != 0)


def players_of_layers(players: Sequence[Player], layers: str) -> list[Player]:
  """The players of some layers only ("1-2", "1,3,30"; 1-based), renumbered 0..k-1 in forward order: a sub-game
  in which every other sub-layer is always kept (keep_mask leaves sub-layers that are not players at 1)."""
  wanted: set[int] = set()
  try:
    for part in layers.split(","):
      lo, _, hi = part.strip().partition("-")
      wanted.update(range(int(lo), int(hi or lo) + 1))
  except ValueError:
    raise ValueError(f"--player_layers={layers!r}: expected 1-based layers like '1-2' or '1,3,30'") from None
  num_layers = max(p.layer for p in players) + 1
  if not wanted or min(wanted) < 1 or max(wanted) > num_layers:
    raise ValueError(f"--player_layers={layers!r}: layers must lie in 1..{num_layers}")
  chosen = [p for p in players if p.layer + 1 in wanted]
  return [Player(j, p.layer, p.kind, p.label) for j, p in enumerate(chosen)]


def players_from_labels(labels: Sequence[str]) -> list[Player]:
  """Players back from their labels ("L1.attn", as shapley.json lists them), in the order given."""
  out = []
  for j, label in enumerate(labels):
    layer, _, kind = label.partition(".")
    if not layer.startswith("L") or not layer[1:].isdigit() or kind not in (ATTN, FFN):
      raise ValueError(f"player label {label!r}: expected L<layer>.attn or L<layer>.ffn")
    out.append(Player(j, int(layer[1:]) - 1, kind, label))
  return out
