"""Data: tokenizers, the embedded default corpus, corpus preparation and the Grain input pipeline.

Modules: `tokenizers` (gpt2 | bpe:N), `shakespeare` (embedded corpus), `readers` (raw documents from parquet /
text files), `tokenstore` (token shards + manifests on disk), `prepare` (corpus preparation and
`ensure_prepared`; `python -m ffnjax.data.prepare`), `pipeline` (`TrainData`, `EvalData`, `eval_batches`).
Importing this package stays light (no grain, no JAX): it holds the data config, which every layer reads.
"""

from __future__ import annotations

import ml_collections

from ffnjax.core.errors import ConfigError
from ffnjax.data import tokenizers

SOURCES = ("shakespeare", "fineweb_edu", "text_files", "tokens")
RAW_SOURCES = ("shakespeare", "fineweb_edu", "text_files")  # what prepare can tokenize
SPLITS = ("train", "heldout")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      source="shakespeare",  # one of SOURCES; "tokens" = `path` is already prepared data
      path="",  # a prepared dir; "" = prepare `source` into the cache ($FFNJAX_CACHE or ~/.cache/ffnjax) once
      input="",  # raw input to prepare: parquet dir/glob (fineweb_edu), text dir/glob (text_files)
      tokenizer="gpt2",  # "gpt2" | "bpe:N" (byte-level BPE trained on the corpus, e.g. "bpe:4096")
      seq_len=1024,  # model sequence length; batches hold seq_len + 1 tokens (inputs [:-1], targets [1:])
      seed=0,  # shuffle seed (the order of sequences is a pure function of seed and step)
      worker_count=0,  # Grain worker processes for TrainData.iterator (0 = in the calling process)
      split="train",  # "train" | "heldout"
    )
  )


# One line per field of default_config(): `python -m ffnjax.plan --show_config` prints it.
HELP = {
  "source": "corpus: shakespeare (embedded) | fineweb_edu | text_files | tokens (path is prepared data)",
  "path": 'a prepared-data directory; "" = prepare source into the cache ($FFNJAX_CACHE) once',
  "input": "raw input to prepare: parquet dir/glob (fineweb_edu), text dir/glob (text_files)",
  "tokenizer": "gpt2 | bpe:N (byte-level BPE trained on the corpus, e.g. bpe:4096)",
  "seq_len": "model sequence length in tokens",
  "seed": "shuffle seed (the order of sequences is a pure function of seed and step)",
  "worker_count": "Grain worker processes (0 = in the calling process)",
  "split": "train | heldout",
}


def _check(cond: bool, field: str, msg: str) -> None:
  if not cond:
    raise ConfigError(f"data.{field}: {msg}")


def validate(data_cfg) -> None:
  """Raises ValueError naming the field and its allowed values."""
  _check(data_cfg.source in SOURCES, "source", f"{data_cfg.source!r} must be one of {SOURCES}")
  tokenizers.parse_spec(data_cfg.tokenizer)
  for field in ("path", "input"):
    _check(isinstance(data_cfg[field], str), field, f"must be a string, got {data_cfg[field]!r}")
  _check(
    isinstance(data_cfg.seq_len, int) and data_cfg.seq_len >= 1,
    "seq_len",
    f"must be an integer >= 1, got {data_cfg.seq_len!r}",
  )
  _check(
    isinstance(data_cfg.seed, int) and 0 <= data_cfg.seed < 2**63,
    "seed",
    f"must be an integer in [0, 2**63), got {data_cfg.seed!r}",
  )
  _check(
    isinstance(data_cfg.worker_count, int) and data_cfg.worker_count >= 0,
    "worker_count",
    f"must be an integer >= 0 (0 = no worker processes), got {data_cfg.worker_count!r}",
  )
  _check(data_cfg.split in SPLITS, "split", f"{data_cfg.split!r} must be one of {SPLITS}")
  if data_cfg.source == "tokens":
    _check(bool(data_cfg.path), "path", "source 'tokens' reads an already prepared dir: set data.path")
  if data_cfg.source in ("fineweb_edu", "text_files"):
    _check(
      bool(data_cfg.path or data_cfg.input),
      "path",
      f"source {data_cfg.source!r} needs data.path (a prepared dir) or data.input (raw files to prepare)",
    )
