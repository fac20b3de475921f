"""The full model with Pallas kernels (interpret mode on CPU) == with the jnp references: forward and a train step."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import tiny
from ffnjax import model as model_lib
from ffnjax.core.placement import LayerPlan
from ffnjax.parallel import make_mesh
from ffnjax.train.optimizer import make_optimizer
from ffnjax.train.step import make_train_step

# Kernels accumulate in other orders (blocked online softmax, chunked log-sum-exp): fp32 within 1e-4 relative.
RTOL = 1e-4


def configs():
  ref = tiny.get_config("middle_50_tiny_4l")
  ref.model.update(dict(vocab_size=256, d_model=64, d_ff=80, num_heads=4, ffn_pad_multiple=32))
  ref.data.seq_len = 24
  ref.train.update(dict(global_batch=4, warmup_steps=0))
  pallas = ml_collections.ConfigDict(ref.to_dict())
  for op in ("ffn", "attention", "rmsnorm", "cross_entropy"):
    pallas.model.kernels[op] = "pallas"
  return ref, pallas


def rel(a, b):
  return float(jnp.abs(a - b).max() / (jnp.abs(b).max() + 1e-12))


@pytest.mark.parametrize("mesh_shape", [None, (2, 2, 2)])
def test_forward_matches(mesh_shape):
  ref_cfg, pal_cfg = configs()
  plan = LayerPlan.from_config(ref_cfg)
  mesh = make_mesh(ml_collections.ConfigDict(dict(zip(("data", "fsdp", "tensor"), mesh_shape)))) if mesh_shape else None
  params = model_lib.init_params(model_lib.build(ref_cfg.model, plan), jax.random.key(0), mesh)
  tokens = jax.random.randint(jax.random.key(1), (4, 24), 0, 256)
  ref = model_lib.make_logits_fn(ref_cfg, plan, params, mesh)(tokens)
  pal = model_lib.make_logits_fn(pal_cfg, plan, params, mesh)(tokens)
  assert rel(pal, ref) < RTOL


def test_train_step_matches():
  ref_cfg, pal_cfg = configs()
  plan = LayerPlan.from_config(ref_cfg)
  tokens = jax.random.randint(jax.random.key(1), (4, 25), 0, 256)
  results = []
  for cfg in (ref_cfg, pal_cfg):
    model = model_lib.build(cfg.model, plan)
    optimizer = make_optimizer(cfg.train)
    params = model_lib.init_params(model, jax.random.key(0))
    state = {"params": params, "opt_state": optimizer.init(params), "step": jnp.zeros((), jnp.int32)}
    results.append(jax.jit(make_train_step(model, optimizer, cfg.train))(state, tokens))
  (ref_state, ref_m), (pal_state, pal_m) = results
  assert float(pal_m["loss"]) == pytest.approx(float(ref_m["loss"]), rel=1e-5)
  assert float(pal_m["grad_norm"]) == pytest.approx(float(ref_m["grad_norm"]), rel=RTOL)
  # Compare the updates rather than the weights: Adam's first step is ~lr * sign(g) for every entry.
  start = model_lib.init_params(model_lib.build(ref_cfg.model, plan), jax.random.key(0))
  for s, r, p in zip(
    jax.tree.leaves(start), jax.tree.leaves(ref_state["params"]), jax.tree.leaves(pal_state["params"])
  ):
    du_r, du_p = np.asarray(r - s), np.asarray(p - s)
    agree = np.isclose(du_r, du_p, atol=1e-6 * ref_cfg.train.peak_lr * 1e3)
    assert agree.mean() > 0.99
