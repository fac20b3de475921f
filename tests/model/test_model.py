"""The heterogeneous model: sharded == single device, scanned == unrolled, keep masks are exact ablations."""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import tiny
from ffnjax import model as model_lib
from ffnjax.core.placement import LayerPlan
from ffnjax.parallel import make_mesh
from ffnjax.train.step import loss_fn

# fp32 everywhere: sharded reductions reorder sums, so allow a few ulps of the logits' scale.
ATOL = 2e-5


def small_config(name="middle_50_tiny_4l", **model):
  config = tiny.get_config(name)
  config.model.update(dict(vocab_size=256, d_model=64, d_ff=96, num_heads=4, ffn_pad_multiple=64) | model)
  return config


class Jitted:
  """model.apply under jit (eager linen applies with scans are slow to dispatch on CPU)."""

  def __init__(self, model):
    self.model, self.cfg = model, model.cfg
    self._apply = jax.jit(lambda p, t, keep: model.apply(p, t, keep=keep))

  def apply(self, variables, tokens, keep=None):
    return self._apply(variables, tokens, keep)


def setup(config, mesh=None, seed=0):
  plan = LayerPlan.from_config(config)
  model = model_lib.build(config.model, plan)
  params = model_lib.init_params(model, jax.random.key(seed), mesh)
  tokens = jax.random.randint(jax.random.key(1), (8, 17), 0, config.model.vocab_size)
  return plan, Jitted(model), params, tokens


def test_padding_is_zero_and_counts_are_true():
  config = small_config()
  plan, model, params, _ = setup(config)
  width = plan.d_ff_expanded
  group = next(g for g, grp in enumerate(plan.groups) if grp.type == "expanded")
  ffn = params[f"group_{group}"]["ffn"]
  assert ffn["w_gate"].shape[-1] % 64 == 0 and ffn["w_gate"].shape[-1] > width
  assert float(jnp.abs(ffn["w_gate"][..., width:]).max()) == 0.0
  assert float(jnp.abs(ffn["w_down"][:, width:, :]).max()) == 0.0
  true_count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  pad = sum(3 * g.count * 64 * (model_lib.padded_width(g.width, 64) - g.width) for g in plan.groups if g.width)
  assert true_count - pad == plan.param_count()


def test_deactivated_layers_have_no_ffn_or_norm():
  config = small_config("final_50_tiny_4l")
  plan, _, params, _ = setup(config)
  assert plan.groups[0].type == "deactivated"
  assert set(params["group_0"]) == {"attn", "attn_norm"}


@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 2, 2), (1, 4, 2)])
def test_sharded_forward_and_loss_equal_single_device(shape):
  config = small_config()
  plan, model, params, tokens = setup(config)
  logits = model.apply({"params": params}, tokens[:, :-1])
  loss = jax.jit(lambda p, t: loss_fn(model.model, p, t))(params, tokens)
  mesh = make_mesh(ml_collections.ConfigDict(dict(zip(("data", "fsdp", "tensor"), shape))))
  sharded = model_lib.init_params(model.model, jax.random.key(0), mesh)
  assert any(len(x.sharding.device_set) > 1 for x in jax.tree.leaves(sharded))
  with jax.set_mesh(mesh):
    logits_s = jax.jit(lambda p, t: model.model.apply({"params": p}, t))(sharded, tokens[:, :-1])
    loss_s = jax.jit(lambda p, t: loss_fn(model.model, p, t))(sharded, tokens)
  np.testing.assert_allclose(logits_s, logits, atol=ATOL)
  np.testing.assert_allclose(loss_s, loss, rtol=1e-6)


def test_scanned_equals_unrolled():
  config = small_config()
  plan, model, params, tokens = setup(config)
  config.model.scan_layers = False
  unrolled = Jitted(model_lib.build(config.model, plan))
  flat = model_lib.scanned_to_unrolled(params, plan)
  assert "layer_3" in flat and not any(k.startswith("group_") for k in flat)
  np.testing.assert_allclose(
    unrolled.apply({"params": flat}, tokens), model.apply({"params": params}, tokens), atol=1e-6
  )
  back = model_lib.unrolled_to_scanned(flat, plan)
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), back, params))


def test_remat_policies_do_not_change_values():
  config = small_config()
  plan, model, params, tokens = setup(config)
  grads = jax.jit(jax.grad(lambda p: loss_fn(model.model, p, tokens)))(params)
  for policy in ("full", "save_sublayer_outputs"):
    config.model.remat = policy
    m = model_lib.build(config.model, plan)
    g = jax.jit(jax.grad(lambda p, m=m: loss_fn(m, p, tokens)))(params)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(grads)):
      np.testing.assert_allclose(a, b, atol=1e-6)


def test_keep_all_ones_equals_no_mask():
  config = small_config()
  plan, model, params, tokens = setup(config)
  ones = jnp.ones((plan.num_layers, 2))
  np.testing.assert_array_equal(
    model.apply({"params": params}, tokens, keep=ones), model.apply({"params": params}, tokens)
  )


def _zero_sublayer(params, plan, layer, leaf):
  """The same model with one sub-layer's output projection zeroed: its output removed, residual kept."""
  g = next(i for i, grp in enumerate(plan.groups) if layer in grp.layers)
  idx = layer - plan.groups[g].start
  params = jax.tree.map(lambda x: x, params)
  sub, name = ("ffn", "w_down") if leaf == "ffn" else ("attn", "wo")
  params[f"group_{g}"][sub][name] = params[f"group_{g}"][sub][name].at[idx].set(0.0)
  return params


@pytest.mark.parametrize("layer,column", [(1, 1), (2, 1), (0, 0), (3, 0)])
def test_zero_mask_removes_exactly_that_sublayer(layer, column):
  config = small_config()  # middle_50 of 4 layers: layers 2, 3 (1-based) expanded, 1 and 4 deactivated
  plan, model, params, tokens = setup(config)
  keep = jnp.ones((plan.num_layers, 2)).at[layer, column].set(0.0)
  masked = model.apply({"params": params}, tokens, keep=keep)
  removed = model.apply({"params": _zero_sublayer(params, plan, layer, "ffn" if column else "attn")}, tokens)
  np.testing.assert_allclose(masked, removed, atol=1e-6)
  assert float(jnp.abs(masked - model.apply({"params": params}, tokens)).max()) > 1e-4


def test_one_compilation_for_every_keep_mask():
  config = small_config()
  plan, _, params, tokens = setup(config)
  fn = model_lib.make_logits_fn(config, plan, params, with_keep=True)
  for bits in range(5):
    keep = np.ones((plan.num_layers, 2), np.float32)
    keep[bits % plan.num_layers, bits % 2] = 0.0
    fn(tokens, keep)
  assert fn.jitted._cache_size() == 1


def test_gqa_and_tied_embeddings():
  config = small_config("baseline_tiny_4l", num_kv_heads=2, tie_embeddings=True, rope_theta=500000.0)
  plan, model, params, tokens = setup(config)
  assert params["group_0"]["attn"]["wk"].shape[-2] == 2 and "lm_head" not in params
  pad = 4 * 3 * 64 * (model_lib.padded_width(96, 64) - 96)
  assert plan.param_count() == sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) - pad
  assert bool(jnp.isfinite(model.apply({"params": params}, tokens)).all())


def test_bf16_compute_keeps_fp32_params():
  config = small_config(dtype="bfloat16")
  _, model, params, tokens = setup(config)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  assert model.apply({"params": params}, tokens).dtype == jnp.float32


def test_cpu_train_step_does_not_transpose_activations():
  """The matmuls see [tokens, d] operands (ffnjax.model.layers.dense, swiglu_ffn_reference): with [B, T, d]
  einsums XLA:CPU transposed every FFN cotangent [B, T, d_ff] -> [d_ff, B*T] to form the weight gradients, about
  a quarter of a 27 M model's train step (benchmarks/train_step.py)."""
  config = small_config(
    "baseline_tiny_4l", d_ff=160, ffn_pad_multiple=32
  )  # d_ff 160 differs from every other dimension
  plan, model, params, _ = setup(config)
  tokens = jnp.zeros((6, 11), jnp.int32)  # 6 x 10 inputs: tokens 60
  hlo = jax.jit(jax.grad(lambda p: loss_fn(model.model, p, tokens))).lower(params).compile().as_text()
  transposed = []
  for line in hlo.splitlines():
    match = re.search(r"= f32\[([\d,]+)\]\S* transpose\(", line)
    dims = [int(d) for d in match.group(1).split(",")] if match else []
    if 160 in dims and (60 in dims or {6, 10} <= set(dims)):
      transposed.append(line.strip()[:160])
  assert not transposed, "\n".join(transposed)
