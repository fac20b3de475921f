"""FFN placement: which layers are standard, expanded or deactivated, and how wide the expanded ones are.

This is the only module that knows about positions, ratios and parameter parity (method.md §1-2). It is pure
Python so that configs, notebooks and launchers can plan paper-scale grids without touching JAX.
Layers are indexed from 0 in code (`layer_types[0]` is layer 1 of the paper).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from ffnjax.core.errors import PlanError

STANDARD = "standard"
EXPANDED = "expanded"
DEACTIVATED = "deactivated"
LAYER_TYPES = (STANDARD, EXPANDED, DEACTIVATED)

BASELINE = "baseline"
POSITIONS = ("first", "middle", "final")
PAPER_RATIOS = (10, 30, 50, 70, 90)


def _require(cond: bool, field: str, msg: str) -> None:
  if not cond:
    raise PlanError(f"{field}: {msg}")


@dataclasses.dataclass(frozen=True)
class ModelDims:
  """The shape facts that parameter and FLOP counts need."""

  vocab_size: int
  num_layers: int
  d_model: int
  d_ff: int
  num_heads: int
  num_kv_heads: int = 0  # 0 -> num_heads
  head_dim: int = 0  # 0 -> d_model // num_heads
  tie_embeddings: bool = False

  def __post_init__(self):
    for field in ("vocab_size", "num_layers", "d_model", "d_ff", "num_heads"):
      value = getattr(self, field)
      _require(isinstance(value, int) and value >= 1, f"model.{field}", f"must be an integer >= 1, got {value!r}")
    _require(self.num_kv_heads >= 0, "model.num_kv_heads", f"must be >= 0 (0 = num_heads), got {self.num_kv_heads}")
    _require(self.head_dim >= 0, "model.head_dim", f"must be >= 0 (0 = d_model // num_heads), got {self.head_dim}")
    # The one check of the attention shape (the model and the Hugging Face import use it too).
    if self.head_dim == 0 and self.d_model % self.num_heads:
      raise PlanError(
        f"model.num_heads={self.num_heads} does not divide model.d_model={self.d_model} (or set model.head_dim)"
      )
    if self.kv_heads > self.num_heads or self.num_heads % self.kv_heads:
      raise PlanError(f"model.num_kv_heads={self.kv_heads} must divide model.num_heads={self.num_heads}")
    if self.head_size % 2:
      raise PlanError(f"model.head_dim={self.head_size} must be even for rotary embeddings")

  @classmethod
  def from_config(cls, model_cfg) -> ModelDims:
    """The shape facts of a `model` config section; the one check of heads against d_model (PlanError)."""
    m = model_cfg
    return cls(
      vocab_size=m.vocab_size,
      num_layers=m.num_layers,
      d_model=m.d_model,
      d_ff=m.d_ff,
      num_heads=m.num_heads,
      num_kv_heads=m.num_kv_heads,
      head_dim=m.head_dim,
      tie_embeddings=m.tie_embeddings,
    )

  @property
  def kv_heads(self) -> int:
    return self.num_kv_heads or self.num_heads

  @property
  def head_size(self) -> int:
    return self.head_dim or self.d_model // self.num_heads

  def attention_params(self) -> int:
    q_o = 2 * self.d_model * self.num_heads * self.head_size
    k_v = 2 * self.d_model * self.kv_heads * self.head_size
    return q_o + k_v + self.d_model  # + attention RMSNorm scale

  def ffn_params(self, width: int) -> int:
    """A SwiGLU FFN of this width with its RMSNorm; 0 when deactivated (no FFN, no norm)."""
    return 3 * self.d_model * width + self.d_model if width else 0

  def embedding_params(self) -> int:
    return self.vocab_size * self.d_model * (1 if self.tie_embeddings else 2)


def num_expanded(num_layers: int, ratio: int) -> int:
  """n = floor(r * L / 100)."""
  return (ratio * num_layers) // 100


def expanded_layers(num_layers: int, position: str, ratio: int) -> tuple[int, ...]:
  """0-based indices of the expanded layers (method.md §2)."""
  _require(position in POSITIONS, "placement.position", f"must be one of {POSITIONS + (BASELINE,)}, got {position!r}")
  _require(
    isinstance(ratio, int) and 1 <= ratio <= 100,
    "placement.ratio",
    f"must be an integer percent in 1..100, got {ratio!r}",
  )
  n = num_expanded(num_layers, ratio)
  _require(
    n >= 1,
    "placement.ratio",
    f"ratio {ratio}% of {num_layers} layers gives floor({ratio}*{num_layers}/100) = 0 expanded layers",
  )
  if position == "first":
    start = 0
  elif position == "final":
    start = num_layers - n
  else:
    # Centred on the middle of the stack; when L - n is odd the extra layer goes to the latter half.
    start = -(-(num_layers - n) // 2)
  return tuple(range(start, start + n))


def expanded_width(dims: ModelDims, n: int) -> int:
  """Smallest d_f' with n * (3 d d_f' + d) >= L * (3 d d_f + d)."""
  budget = dims.num_layers * dims.ffn_params(dims.d_ff)
  per_unit = 3 * dims.d_model
  need = budget - n * dims.d_model  # what the n expanded FFN weights must hold
  return -(-need // (n * per_unit))  # ceil division


@dataclasses.dataclass(frozen=True)
class Group:
  """Consecutive layers of one type and width: one scanned module in the model."""

  type: str
  width: int
  start: int
  count: int

  @property
  def layers(self) -> range:
    return range(self.start, self.start + self.count)


@dataclasses.dataclass(frozen=True)
class LayerPlan:
  """The per-layer FFN layout of one model, with exact parameter and FLOP counts."""

  dims: ModelDims
  position: str = BASELINE
  ratio: int = 100
  size: str = ""

  def __post_init__(self):
    _require(
      self.position in POSITIONS + (BASELINE,),
      "placement.position",
      f"must be one of {(BASELINE,) + POSITIONS}, got {self.position!r}",
    )
    if self.position == BASELINE:
      _require(self.ratio == 100, "placement.ratio", f"the baseline has ratio 100, got {self.ratio!r}")
    elif self.ratio != 100:
      expanded_layers(self.dims.num_layers, self.position, self.ratio)  # validates

  # --- construction -------------------------------------------------------------------------------------
  @classmethod
  def from_config(cls, config) -> LayerPlan:
    """Derives the plan from an experiment ConfigDict (never stored in it, so overrides cannot go stale)."""
    p = config.placement
    return cls(ModelDims.from_config(config.model), position=p.position, ratio=p.ratio, size=p.size)

  # --- layout -------------------------------------------------------------------------------------------
  @property
  def is_baseline(self) -> bool:
    return self.position == BASELINE or self.ratio == 100

  @property
  def num_layers(self) -> int:
    return self.dims.num_layers

  @property
  def d_ff(self) -> int:
    return self.dims.d_ff

  @property
  def num_expanded(self) -> int:
    return 0 if self.is_baseline else num_expanded(self.num_layers, self.ratio)

  @property
  def d_ff_expanded(self) -> int | None:
    return None if self.is_baseline else expanded_width(self.dims, self.num_expanded)

  @property
  def layer_types(self) -> tuple[str, ...]:
    if self.is_baseline:
      return (STANDARD,) * self.num_layers
    expanded = set(expanded_layers(self.num_layers, self.position, self.ratio))
    return tuple(EXPANDED if i in expanded else DEACTIVATED for i in range(self.num_layers))

  @property
  def widths(self) -> tuple[int, ...]:
    width = {STANDARD: self.d_ff, EXPANDED: self.d_ff_expanded, DEACTIVATED: 0}
    return tuple(width[t] for t in self.layer_types)

  @property
  def groups(self) -> tuple[Group, ...]:
    groups: list[Group] = []
    for i, (t, w) in enumerate(zip(self.layer_types, self.widths)):
      if groups and groups[-1].type == t and groups[-1].width == w:
        last = groups[-1]
        groups[-1] = dataclasses.replace(last, count=last.count + 1)
      else:
        groups.append(Group(t, w, i, 1))
    return tuple(groups)

  @property
  def name(self) -> str:
    size = f"{self.size}_{self.num_layers}l" if self.size else f"{self.num_layers}l"
    return f"baseline_{size}" if self.is_baseline else f"{self.position}_{self.ratio}_{size}"

  def baseline(self) -> LayerPlan:
    return LayerPlan(self.dims, size=self.size)

  # --- counts -------------------------------------------------------------------------------------------
  def param_count(self, non_embedding: bool = False) -> int:
    body = sum(self.dims.attention_params() + self.dims.ffn_params(w) for w in self.widths)
    if non_embedding:
      return body
    return body + self.dims.embedding_params() + self.dims.d_model  # + final norm

  def flops_per_token(self, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward = 3x forward), matmuls only.

    Causal attention is counted once: the QK^T and AV products cost 2 * 2 * T * H * hd per token over a full
    T x T score matrix, and we count half of it (the causal triangle), as a kernel that skips masked blocks does.
    """
    d, hd = self.dims.d_model, self.dims.head_size
    h, kv = self.dims.num_heads, self.dims.kv_heads
    fwd = 0.0
    for w in self.widths:
      fwd += 2 * d * hd * (2 * h + 2 * kv)  # q, k, v, o projections
      fwd += 2 * 2 * seq_len * h * hd / 2  # scores + weighted values, causal half
      fwd += 2 * 3 * d * w  # SwiGLU gate, up, down
    fwd += 2 * d * self.dims.vocab_size  # LM head
    return 3 * fwd

  def to_json(self) -> dict:
    base = self.baseline()
    return {
      "name": self.name,
      "num_layers": self.num_layers,
      "position": self.position,
      "ratio": self.ratio,
      "layer_types": list(self.layer_types),
      "widths": list(self.widths),
      "d_model": self.dims.d_model,
      "d_ff": self.d_ff,
      "d_ff_expanded": self.d_ff_expanded,
      "num_heads": self.dims.num_heads,
      "num_kv_heads": self.dims.kv_heads,
      "vocab_size": self.dims.vocab_size,
      "params_total": self.param_count(),
      "params_non_embedding": self.param_count(non_embedding=True),
      "baseline_params_total": base.param_count(),
      "baseline_params_non_embedding": base.param_count(non_embedding=True),
      "param_rel_diff": self.param_count() / base.param_count() - 1.0,
    }

  def describe(self) -> str:
    """A human table, layers 1-based."""
    lines = [
      f"{self.name}: L={self.num_layers} d={self.dims.d_model} d_ff={self.d_ff} "
      f"d_ff'={self.d_ff_expanded if self.d_ff_expanded else '-'} heads={self.dims.num_heads}"
    ]
    lines.append(f"{'layer':>5}  {'type':<11}  {'ffn width':>9}")
    for i, (t, w) in enumerate(zip(self.layer_types, self.widths)):
      lines.append(f"{i + 1:>5}  {t:<11}  {w:>9}")
    j = self.to_json()
    lines.append(f"params total        {j['params_total']:>15,}   baseline {j['baseline_params_total']:>15,}")
    lines.append(
      f"params non-embed    {j['params_non_embedding']:>15,}   baseline {j['baseline_params_non_embedding']:>15,}"
    )
    lines.append(f"relative difference {100 * j['param_rel_diff']:+.5f} %")
    return "\n".join(lines)


def grid(
  dims: ModelDims, positions: Iterable[str] = POSITIONS, ratios: Sequence[int] = PAPER_RATIOS, size: str = ""
) -> list[LayerPlan]:
  """The baseline followed by every (position, ratio) point; ratio 100 is the baseline and not repeated."""
  plans = [LayerPlan(dims, size=size)]
  for position in positions:
    for ratio in ratios:
      if ratio != 100:
        plans.append(LayerPlan(dims, position=position, ratio=ratio, size=size))
  return plans
