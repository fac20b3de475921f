"""Tokenization throughput (MB/s of UTF-8 text) for the GPT-2 BPE and a small trained BPE, and end-to-end
`prepare` throughput on FineWeb-Edu-shaped parquet.

  python benchmarks/tokenizer_speed.py                 # the embedded Shakespeare corpus (5 MB) as the text
  python benchmarks/tokenizer_speed.py --workers=0,2 --bpe_vocab=4096 --parquet_mb=20

Figures: single-process encode (the per-worker rate in `prepare`), the tokenizer's own multi-threaded batch
encode, BPE training time, and `prepare` (parquet read + tokenize + shard write) with 0 and N worker processes.
"""

import os
import sys

# This file's name shadows the standard library's `tokenize` (imported by inspect, linecache, ...) when run as
# `python benchmarks/tokenizer_speed.py`; drop its dir from the path before anything imports it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import tempfile
import time


def _rate(fn, num_bytes: int, repeat: int = 1) -> tuple[float, object]:
  start = time.perf_counter()
  for _ in range(repeat):
    out = fn()
  return num_bytes * repeat / (time.perf_counter() - start) / 1e6, out


def _docs(texts: list[str], target_chars: int = 3000) -> list[str]:
  """Cuts plays into web-page-sized documents at blank lines (FineWeb-Edu documents are a few kB)."""
  docs = []
  for text in texts:
    cur = []
    for para in text.split("\n\n"):
      cur.append(para)
      if sum(map(len, cur)) >= target_chars:
        docs.append("\n\n".join(cur))
        cur = []
    if cur:
      docs.append("\n\n".join(cur))
  return docs


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--bpe_vocab", type=int, default=4096)
  parser.add_argument("--workers", default=f"0,{os.cpu_count()}", help="worker counts for the prepare run")
  parser.add_argument("--parquet_mb", type=float, default=20.0, help="size of the synthetic FineWeb-Edu input")
  args = parser.parse_args()

  from ffnjax.data import prepare, shakespeare, tokenizers

  texts = list(shakespeare.play_texts().values())
  docs = _docs(texts)
  num_bytes = sum(len(t.encode("utf-8")) for t in docs)
  print(
    f"text: {len(docs):,} documents, {num_bytes / 1e6:.1f} MB (Shakespeare cut into ~3 kB documents); "
    f"{os.cpu_count()} CPUs"
  )
  print(f"{'tokenizer':>12} {'mode':>34} {'MB/s':>8} {'tokens/byte':>12}")

  start = time.perf_counter()
  gpt2 = tokenizers.get_tokenizer("gpt2")
  print(f"{'gpt2':>12} {'load (s)':>34} {time.perf_counter() - start:>8.2f}")
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    bpe = tokenizers.train_bpe(docs, args.bpe_vocab, os.path.join(tmp, "tokenizer.json"))
    bpe_name = f"bpe:{args.bpe_vocab}"
    print(f"{bpe_name:>12} {'train on the text (s)':>34} {time.perf_counter() - start:>8.2f}")
    for name, tok in (("gpt2", gpt2), (bpe_name, bpe)):
      mbs, ids = _rate(lambda tok=tok: [tok.encode_ordinary(d) for d in docs], num_bytes)
      per_byte = sum(map(len, ids)) / num_bytes
      print(f"{name:>12} {'encode_ordinary, 1 process':>34} {mbs:>8.2f} {per_byte:>12.3f}", flush=True)
      mbs, _ = _rate(lambda tok=tok: tok.encode_ordinary_batch(docs), num_bytes)
      print(f"{name:>12} {'encode_ordinary_batch (its threads)':>34} {mbs:>8.2f}", flush=True)

    import pyarrow as pa
    import pyarrow.parquet as pq

    src = os.path.join(tmp, "fineweb")
    os.makedirs(src)
    reps = max(1, round(args.parquet_mb * 1e6 / num_bytes))
    for i in range(reps):
      pq.write_table(
        pa.table({"text": docs, "id": [f"{i}-{j}" for j in range(len(docs))]}),
        os.path.join(src, f"{i:03d}_00000.parquet"),
        row_group_size=1000,
        compression="zstd",
      )
    total = num_bytes * reps
    for spec in ("gpt2", bpe_name):
      for w in (int(x) for x in args.workers.split(",")):
        out = os.path.join(tmp, f"out-{spec.replace(':', '')}-{w}")
        start = time.perf_counter()
        m = prepare.prepare(
          "fineweb_edu", out, input=src, tokenizer=spec, num_workers=w, progress=False, bpe_train_bytes=8 << 20
        )
        dt = time.perf_counter() - start
        print(
          f"{spec:>12} {f'prepare {total / 1e6:.0f} MB parquet, {w} workers':>34} {total / dt / 1e6:>8.2f} "
          f"{m['num_tokens'] / total:>12.3f}",
          flush=True,
        )


if __name__ == "__main__":
  main()
