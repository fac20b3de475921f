"""The training data budget of a config: tokens to train (steps x global batch x sequence length) against the
tokens of the data (a prepared dir's manifest, or the FineWeb-Edu subset named by data.input), in epochs."""

from __future__ import annotations

from ffnjax.data import tokenstore
from ffnjax.data.fetch import FINEWEB_EDU_SUBSETS


def data_budget(config) -> dict:
  """Tokens to train against tokens available (None when the data's size is not known here)."""
  train_tokens = config.train.steps * config.train.global_batch * config.data.seq_len
  data, available = config.data.source, None
  if config.data.path and tokenstore.is_prepared(config.data.path):
    data, available = config.data.path, tokenstore.read_manifest(config.data.path).get("num_tokens")
  elif config.data.source == "fineweb_edu":
    subset = (config.data.input or "").rstrip("/").rsplit("/", 1)[-1]
    if subset in FINEWEB_EDU_SUBSETS:
      data, available = (
        f"FineWeb-Edu {subset} (~{FINEWEB_EDU_SUBSETS[subset][1] / 1e9:g} B tokens)",
        FINEWEB_EDU_SUBSETS[subset][1],
      )
    else:
      data = config.data.input or "(no data.input)"
  epochs = train_tokens / available if available else None
  return {
    "train_tokens": train_tokens,
    "steps": config.train.steps,
    "global_batch": config.train.global_batch,
    "seq_len": config.data.seq_len,
    "data": data,
    "data_tokens": available,
    "epochs": epochs,
  }


def describe_budget(b: dict) -> str:
  line = f"train tokens        {b['train_tokens']:>15,}   = {b['steps']:,} steps x {b['global_batch']} x {b['seq_len']}"
  if b["epochs"] is None:
    return line + f"\ndata                {b['data']}: size unknown here (prepare it to count its tokens)"
  return line + f"\ndata tokens         {int(b['data_tokens']):>15,}   {b['data']}: {b['epochs']:.2f} epochs"
