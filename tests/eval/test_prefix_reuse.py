"""Prefix reuse for Shapley coalitions (engine.score_packed(reuse=True)): starting each coalition's forward pass at
its first removed sub-layer from the full model's residual streams gives the same scores as full passes and as
the full-logits path, on a heterogeneous plan (deactivated and expanded FFN groups, scanned and unrolled), for
single ablation, the block estimator's coalitions and random coalitions; a bounded number of programs."""

import jax
import numpy as np

from configs import tiny
from ffnjax import model as model_lib
from ffnjax.core.placement import LayerPlan
from ffnjax.eval import engine
from ffnjax.shapley import block_coalitions, grand_coalition, keep_masks, players_from_layer_types

MAX_LENGTH = 48
BUDGET = 4 * MAX_LENGTH  # 4 rows per batch: many batches, several stream blocks


def _model(scan_layers):
  config = tiny.get_config("middle_50_tiny_4l")  # layers: deactivated, expanded, expanded, deactivated
  config.model.update(
    dict(vocab_size=97, d_model=32, d_ff=64, num_heads=4, num_kv_heads=2, ffn_pad_multiple=32, scan_layers=scan_layers)
  )
  plan = LayerPlan.from_config(config)
  params = model_lib.init_params(model_lib.build(config.model, plan), jax.random.key(3))
  params = jax.tree.map(lambda p: p * 8.0 if p.ndim > 1 else p, params)  # clear argmaxes, large ablation effects
  return config, plan, params


def _requests(seed=0, docs=14):
  rng = np.random.RandomState(seed)
  out = []
  for _ in range(docs):
    ctx = tuple(rng.randint(1, 97, rng.randint(4, 30)))
    out += [(ctx, tuple(rng.randint(1, 97, rng.randint(1, 8)))) for _ in range(3)]
  out.append((tuple(range(1, 70)), (5, 6, 7)))  # truncated at max_length: a row of its own
  return out


def _coalition_sets(plan):
  players = players_from_layer_types(plan.layer_types)
  n = len(players)
  full = grand_coalition(n)
  rng = np.random.RandomState(1)
  sets = {
    "single ablation": [full] + [full - {i} for i in range(n)],
    "block level 3": block_coalitions(n, 3),
    "random": [frozenset(np.flatnonzero(rng.rand(n) > 0.5).tolist()) for _ in range(10)],
  }
  return {k: keep_masks(players, v, plan.num_layers) for k, v in sets.items()}


def _check(config, plan, params, sets, logits_sets=()):
  scorer = model_lib.make_scorer(config, plan, params)
  logits = model_lib.make_logits_fn(config, plan, params, with_keep=True)
  requests = _requests()
  packed = engine.plan_packed(requests, MAX_LENGTH)
  batch_plan = engine.plan_batches(requests, MAX_LENGTH, token_budget=BUDGET)
  assert packed.num_rows > engine.rows_per_batch(MAX_LENGTH, BUDGET)  # several blocks of streams
  works = {}
  for name, masks in _coalition_sets(plan).items():
    if name not in sets:
      continue
    work_full, work_reuse = {}, {}
    full = engine.score_packed(
      packed, scorer, masks, token_budget=BUDGET, progress_every_s=-1, fixed_shapes=True, work=work_full
    )
    reused = engine.score_packed(
      packed, scorer, masks, token_budget=BUDGET, progress_every_s=-1, fixed_shapes=True, reuse=True, work=work_reuse
    )
    for k, mask in enumerate(masks):
      np.testing.assert_allclose(reused[k].ll, full[k].ll, rtol=1e-6, atol=1e-5, err_msg=f"{name} #{k}")
      np.testing.assert_array_equal(reused[k].num_greedy, full[k].num_greedy)
      if name in logits_sets:  # the functional scoring stack equals the Flax model's full logits, request by request
        old = engine.score_batches(batch_plan, lambda t, m=mask: logits(t, m), progress_every_s=-1)
        np.testing.assert_allclose(reused[k].ll, old.ll, rtol=2e-5, atol=2e-4, err_msg=f"{name} #{k}")
        np.testing.assert_array_equal(reused[k].num_greedy, old.num_greedy)
    # the ablations matter (a wrong start or a wrongly skipped sub-layer would show)
    assert len({round(float(s.ll.sum()), 3) for s in reused}) > len(masks) // 2
    # deactivated layers' FFN never runs; the heads see the same positions
    assert work_reuse["sublayer_rows"][[1, 7]].sum() == work_full["sublayer_rows"][[1, 7]].sum() == 0
    assert work_reuse["head_positions"] == work_full["head_positions"]
    works[name] = (work_full["sublayer_rows"].sum(), work_reuse["sublayer_rows"].sum())
  # one streams program and one run-from program for every start boundary and coalition set; one head program
  assert scorer.prefix.compilations() == 2
  assert scorer.compilations() == 4  # + the plain hidden-state program of the full passes
  return works


def test_reuse_equals_full_passes_and_the_logits_path():
  works = _check(
    *_model(scan_layers=True), sets=("single ablation", "block level 3", "random"), logits_sets=("single ablation",)
  )
  # the shared prefixes run once per block of rows: less of the model runs for prefix-sharing coalition sets
  for name in ("single ablation", "block level 3"):
    assert works[name][1] < 0.8 * works[name][0], (name, works[name])


def test_reuse_with_unrolled_layers():
  _check(*_model(scan_layers=False), sets=("single ablation",))


def test_first_removed_boundary():
  prefix = engine.PrefixReuse(None, None, has_ffn=(False, True, True, False), row_bytes=lambda t: t)
  masks = np.ones((6, 4, 2), np.float32)
  masks[1, 0, 1] = 0  # a deactivated layer's FFN column: not a player, never a start
  masks[2, 1, 1] = 0  # layer 2's FFN: boundary 3
  masks[3, 2, 0] = masks[3, 3, 0] = 0  # layer 3's attention first: boundary 4
  masks[4, 0, 0] = 0
  masks[5, 2, 1] = 0.5  # a scaled sub-layer differs from the full model too
  assert prefix.first_removed(masks).tolist() == [8, 8, 3, 4, 0, 5]
