"""AdamW with global-norm clipping and the paper's schedules (method.md §3).

Schedules are functions of the absolute step and the configured total, so a Warmup-Stable-Decay run extended
from a pre-decay checkpoint (a larger `train.steps`) follows exactly the schedule of a run configured for the
longer length from the start (paper App. G).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ffnjax.core.config import decay_start_step


def schedule(train_cfg) -> optax.Schedule:
  peak, warmup, total = train_cfg.peak_lr, train_cfg.warmup_steps, train_cfg.steps
  floor = peak * train_cfg.min_lr_ratio

  def warm(step):
    return peak * jnp.minimum(1.0, (step + 1) / max(warmup, 1))

  if train_cfg.schedule == "constant":
    return lambda step: jnp.where(step < warmup, warm(step), peak)
  if train_cfg.schedule == "cosine":

    def cosine(step):
      frac = jnp.clip((step - warmup) / max(total - warmup, 1), 0.0, 1.0)
      return floor + (peak - floor) * 0.5 * (1 + jnp.cos(jnp.pi * frac))

    return lambda step: jnp.where(step < warmup, warm(step), cosine(step))
  decay_start = decay_start_step(train_cfg)

  def wsd(step):  # linear decay over the last decay_fraction of steps
    frac = jnp.clip((step - decay_start) / max(total - decay_start, 1), 0.0, 1.0)
    return peak + (floor - peak) * frac

  return lambda step: jnp.where(step < warmup, warm(step), wsd(step))


def decay_mask(params, decay_norms_and_embeddings: bool):
  """Weight decay on matrices only (not norm scales, not embeddings) unless configured otherwise."""

  def keep(path, leaf):
    if decay_norms_and_embeddings:
      return True
    names = [getattr(p, "key", "") for p in path]
    return not (names[-1] == "scale" or names[0] == "embed")

  return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
  parts = []
  if train_cfg.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(train_cfg.grad_clip))
  parts.append(
    optax.adamw(
      schedule(train_cfg),
      b1=train_cfg.b1,
      b2=train_cfg.b2,
      eps=train_cfg.eps,
      weight_decay=train_cfg.weight_decay,
      mask=lambda p: decay_mask(p, train_cfg.decay_norms_and_embeddings),
    )
  )
  return optax.chain(*parts)
