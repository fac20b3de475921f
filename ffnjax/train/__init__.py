"""Training: optimizer and schedules, the jitted step, Orbax checkpoints, metrics, the loop."""

from __future__ import annotations

import importlib.util

import ml_collections

from ffnjax.core.errors import ConfigError

SCHEDULES = ("cosine", "wsd", "constant")
NAN_POLICIES = ("stop", "skip")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      steps=20_000,
      global_batch=288,  # sequences per optimizer step, over all processes
      micro_batches=1,  # gradient accumulation: global_batch is split into this many sequential micro-batches
      peak_lr=3e-4,
      warmup_steps=1_000,
      schedule="cosine",  # cosine | wsd (warmup-stable-decay) | constant
      min_lr_ratio=0.1,  # final lr = peak_lr * min_lr_ratio
      decay_fraction=0.1,  # wsd: the last fraction of steps decays
      b1=0.9,
      b2=0.95,
      eps=1e-8,
      weight_decay=0.1,
      decay_norms_and_embeddings=False,  # AdamW decay applies to matrices only unless set
      grad_clip=1.0,  # global-norm clipping; 0 = off
      nan_policy="stop",  # stop | skip: what a non-finite loss does
      checkpoint_every=1_000,  # temporary checkpoints; the newest keep_last are kept
      keep_last=2,
      keep_every=0,  # permanent checkpoints every this many steps (0 = none besides the final one)
      log_every=10,
      eval_every=0,  # validation loss on held-out data every N steps (0 = off)
      eval_batches=4,
      profile_start=-1,  # trace steps [profile_start, profile_start + profile_steps) with jax.profiler
      profile_steps=3,
      async_checkpoints=True,
      wandb_project="",  # Weights & Biases project to log the metrics to as well ("" = off; needs the [wandb] extra)
    )
  )


# One line per field of default_config(): `python -m ffnjax.plan --show_config` prints it.
HELP = {
  "steps": "optimizer steps of the run (the schedule's length)",
  "global_batch": "sequences per optimizer step, over all processes",
  "micro_batches": "gradient accumulation: global_batch is split into this many sequential micro-batches",
  "peak_lr": "peak learning rate (after warmup)",
  "warmup_steps": "linear warmup steps from 0 to peak_lr",
  "schedule": "learning-rate schedule: cosine | wsd (warmup-stable-decay) | constant",
  "min_lr_ratio": "final learning rate = peak_lr * min_lr_ratio",
  "decay_fraction": "wsd: the last fraction of steps decays",
  "b1": "AdamW beta1",
  "b2": "AdamW beta2",
  "eps": "AdamW epsilon",
  "weight_decay": "AdamW weight decay (decoupled)",
  "decay_norms_and_embeddings": "also weight-decay norm scales and embeddings (default: matrices only)",
  "grad_clip": "global-norm gradient clipping (0 = off)",
  "nan_policy": "what a non-finite loss does: stop | skip (the step)",
  "checkpoint_every": "temporary checkpoint every N steps (the newest keep_last are kept)",
  "keep_last": "temporary checkpoints kept",
  "keep_every": "permanent checkpoint every N steps (0 = none besides the final one)",
  "log_every": "metrics (loss, tokens/s, MFU) every N steps",
  "eval_every": "validation loss on held-out data every N steps (0 = off)",
  "eval_batches": "batches per validation",
  "profile_start": "first step traced with jax.profiler (-1 = no trace)",
  "profile_steps": "steps traced from profile_start",
  "async_checkpoints": "write checkpoints in the background while training continues",
  "wandb_project": "Weights & Biases project that also gets the metrics ('' = off; the [wandb] extra)",
}


def validate(train_cfg) -> None:
  if train_cfg.schedule not in SCHEDULES:
    raise ConfigError(f"train.schedule={train_cfg.schedule!r}: must be one of {SCHEDULES}")
  if train_cfg.nan_policy not in NAN_POLICIES:
    raise ConfigError(f"train.nan_policy={train_cfg.nan_policy!r}: must be one of {NAN_POLICIES}")
  for field in ("steps", "global_batch", "micro_batches", "checkpoint_every", "keep_last", "log_every"):
    if train_cfg[field] < 1:
      raise ConfigError(f"train.{field}={train_cfg[field]}: must be >= 1")
  if not 0 <= train_cfg.warmup_steps <= train_cfg.steps:
    raise ConfigError(f"train.warmup_steps={train_cfg.warmup_steps}: must be in 0..train.steps={train_cfg.steps}")
  if not 0 < train_cfg.decay_fraction <= 1:
    raise ConfigError(f"train.decay_fraction={train_cfg.decay_fraction}: must be in (0, 1]")
  if train_cfg.peak_lr <= 0:
    raise ConfigError(f"train.peak_lr={train_cfg.peak_lr}: must be > 0")
  if not 0 <= train_cfg.min_lr_ratio <= 1:
    raise ConfigError(f"train.min_lr_ratio={train_cfg.min_lr_ratio}: must be in [0, 1]")
  if train_cfg.get("wandb_project") and importlib.util.find_spec("wandb") is None:
    raise ConfigError(
      f"train.wandb_project={train_cfg.wandb_project!r} needs Weights & Biases: pip install -e "
      f"'.[wandb]' (or leave train.wandb_project empty)"
    )
