"""Placement grid, parameter parity and counts against the paper's worked examples (method.md §1-2)."""

import pytest

from ffnjax.core import placement
from ffnjax.core.placement import LayerPlan, ModelDims, PlanError

PAPER = {
  "285m_12l": ModelDims(50257, 12, 1280, 4480, 20),
  "570m_24l": ModelDims(50257, 24, 1280, 4480, 20),
  "570m_40l": ModelDims(50257, 40, 992, 3472, 16),
  "1b_40l": ModelDims(50257, 40, 1440, 5040, 20),
}


def one_based(plan, layer_type):
  return [i + 1 for i, t in enumerate(plan.layer_types) if t == layer_type]


def test_middle_12_layers_30_percent():
  plan = LayerPlan(PAPER["285m_12l"], "middle", 30)
  assert one_based(plan, "expanded") == [6, 7, 8]


def test_final_40_layers_50_percent_deactivates_first_half():
  plan = LayerPlan(PAPER["570m_40l"], "final", 50)
  assert one_based(plan, "deactivated") == list(range(1, 21))
  assert one_based(plan, "expanded") == list(range(21, 41))


def test_first_places_expanded_layers_at_the_bottom():
  plan = LayerPlan(PAPER["285m_12l"], "first", 50)
  assert one_based(plan, "expanded") == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
  "num_layers,n,expected",
  [
    (12, 4, [5, 6, 7, 8]),  # even n: symmetric about the 6|7 boundary
    (12, 1, [7]),  # odd n: the extra layer goes to the latter half
    (12, 5, [5, 6, 7, 8, 9]),
    (7, 2, [4, 5]),
    (1, 1, [1]),
  ],
)
def test_middle_rule(num_layers, n, expected):
  ratio = -(-n * 100 // num_layers)  # smallest ratio giving n layers
  assert placement.num_expanded(num_layers, ratio) == n
  assert [i + 1 for i in placement.expanded_layers(num_layers, "middle", ratio)] == expected


def test_expanded_width_examples():
  assert LayerPlan(PAPER["285m_12l"], "middle", 30).d_ff_expanded == 17921
  assert LayerPlan(PAPER["570m_40l"], "middle", 70).d_ff_expanded == 4961


def test_expanded_width_is_the_smallest_with_parity():
  for dims in PAPER.values():
    for plan in placement.grid(dims)[1:]:
      n, w, d = plan.num_expanded, plan.d_ff_expanded, dims.d_model
      budget = dims.num_layers * (3 * d * dims.d_ff + d)
      assert n * (3 * d * w + d) >= budget > n * (3 * d * (w - 1) + d)


@pytest.mark.parametrize("name,millions", [("285m_12l", 285), ("570m_24l", 570), ("570m_40l", 570), ("1b_40l", 1200)])
def test_baseline_non_embedding_params(name, millions):
  count = LayerPlan(PAPER[name]).param_count(non_embedding=True)
  assert abs(count / 1e6 - millions) / millions < 0.01


def test_285m_total_with_untied_embeddings():
  assert round(LayerPlan(PAPER["285m_12l"]).param_count() / 1e6) == 414  # "about 413 M"


@pytest.mark.parametrize("name", list(PAPER))
def test_every_grid_point_within_002_percent(name):
  plans = placement.grid(PAPER[name])
  assert len(plans) == 16
  for plan in plans:
    assert abs(plan.to_json()["param_rel_diff"]) < 2e-4, plan.name


def test_names_and_groups():
  plan = LayerPlan(PAPER["285m_12l"], "middle", 70, size="285m")
  assert plan.name == "middle_70_285m_12l"
  assert LayerPlan(PAPER["285m_12l"], size="285m").name == "baseline_285m_12l"
  assert [(g.type, g.count) for g in plan.groups] == [("deactivated", 2), ("expanded", 8), ("deactivated", 2)]
  assert sum(g.count for g in plan.groups) == 12


def test_deactivated_layers_have_no_ffn_parameters():
  dims = ModelDims(100, 4, 8, 16, 2)
  plan = LayerPlan(dims, "first", 50)
  attn = 4 * 8 * 8 + 8
  assert plan.param_count(non_embedding=True) == 4 * attn + 2 * (3 * 8 * plan.d_ff_expanded + 8)


def test_flops_count_layers_as_they_are():
  dims = PAPER["285m_12l"]
  base, deact = LayerPlan(dims), LayerPlan(dims, "final", 50)
  assert base.flops_per_token(1024) == pytest.approx(deact.flops_per_token(1024), rel=1e-3)
  assert base.flops_per_token(1024) > 6 * base.param_count(non_embedding=True)


@pytest.mark.parametrize(
  "kwargs,field",
  [
    (dict(dims=ModelDims(100, 12, 64, 128, 4), position="middle", ratio=5), "placement.ratio"),
    (dict(dims=ModelDims(100, 12, 64, 128, 4), position="center", ratio=50), "placement.position"),
    (dict(dims=ModelDims(100, 12, 64, 128, 4), position="first", ratio=0), "placement.ratio"),
    (dict(dims=ModelDims(100, 12, 64, 128, 4), position="first", ratio=150), "placement.ratio"),
    (dict(dims=ModelDims(100, 12, 64, 128, 4), position="baseline", ratio=50), "placement.ratio"),
  ],
)
def test_bad_placements_name_the_field(kwargs, field):
  with pytest.raises(PlanError, match=field):
    LayerPlan(**kwargs)


@pytest.mark.parametrize(
  "kwargs,field",
  [
    (dict(num_layers=0), "model.num_layers"),
    (dict(d_model=-8), "model.d_model"),
    (dict(d_ff=0), "model.d_ff"),
    (dict(num_heads=3), "model.num_heads"),  # 3 does not divide 64
    (dict(num_kv_heads=3), "model.num_kv_heads"),
    (dict(vocab_size=0), "model.vocab_size"),
  ],
)
def test_bad_dims_name_the_field(kwargs, field):
  args = dict(vocab_size=100, num_layers=12, d_model=64, d_ff=128, num_heads=4) | kwargs
  with pytest.raises(PlanError, match=field):
    ModelDims(**args)
