"""`python -m ffnjax.data.prepare --source=... --output=DIR [--input=...] [--tokenizer=gpt2|bpe:N]`: tokenizes a
corpus into a prepared directory (see ffnjax/data/prepare/__init__.py)."""

from __future__ import annotations

from absl import flags

from ffnjax.core import cli
from ffnjax.core.errors import UsageError
from ffnjax.data import RAW_SOURCES
from ffnjax.data.prepare import DEFAULT_BPE_TRAIN_BYTES, DEFAULT_SHARD_TOKENS, prepare

flags.DEFINE_enum("source", None, list(RAW_SOURCES), "Raw corpus to tokenize.")
flags.DEFINE_string("input", "", "fineweb_edu: parquet dir/glob/list; text_files: .txt dir/glob/list.")
flags.DEFINE_string("output", None, "Prepared dir to write (created atomically).")
flags.DEFINE_string("tokenizer", "gpt2", "'gpt2' or 'bpe:N' (trained on the train split).")
flags.DEFINE_integer("num_workers", -1, "Tokenizer processes; -1 = one per CPU, 0 = in this process.", lower_bound=-1)
flags.DEFINE_integer("shard_tokens", DEFAULT_SHARD_TOKENS, "Tokens per shard file.", lower_bound=1)
flags.DEFINE_integer("heldout_every", 0, "K >= 2: every K-th document goes to the heldout split (0 = none).")
flags.register_validator("heldout_every", lambda k: k == 0 or k >= 2, "--heldout_every must be 0 (none) or >= 2")
flags.DEFINE_integer(
  "bpe_train_mb", DEFAULT_BPE_TRAIN_BYTES >> 20, "MB of text a bpe:N tokenizer trains on.", lower_bound=1
)


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  prepare(
    f.source,
    f.output,
    input=f.input,
    tokenizer=f.tokenizer,
    num_workers=None if f.num_workers < 0 else f.num_workers,
    shard_tokens=f.shard_tokens,
    heldout_every=f.heldout_every,
    bpe_train_bytes=f.bpe_train_mb << 20,
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["source", "output"])
  cli.run(main, prog="ffnjax.data.prepare", user_errors=(ValueError, OSError, ImportError))
