"""Input-pipeline throughput: batches/s and tokens/s of TrainData for small and paper-sized batches.

  python benchmarks/data_pipeline.py                      # synthetic uint16 token shards in a tmp dir
  python benchmarks/data_pipeline.py --path=DIR --tokenizer=gpt2   # a prepared dir
  python benchmarks/data_pipeline.py --workers=0,2

Measures `TrainData.batch(step)` (random access) and `TrainData.iterator()` (Grain, with 0 or more worker
processes) for batch 8 x 257 (tiny configs) and 288 x 1025 (paper 285m_12l). The tiny model trains at about
1-10 k tokens/s on this kind of CPU; the pipeline must stay well above 20x that.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from ffnjax import data
from ffnjax.data import pipeline, tokenstore

SHAPES = ((8, 257), (288, 1025))


def _measure(fn, min_seconds: float, min_calls: int = 3) -> tuple[int, float]:
  fn()  # warm-up (imports, first page faults, worker start)
  calls, start = 0, time.perf_counter()
  while calls < min_calls or time.perf_counter() - start < min_seconds:
    fn()
    calls += 1
  return calls, time.perf_counter() - start


def run(path: str, tokenizer: str, workers: list[int], seconds: float) -> None:
  print(f"data: {path} ({tokenizer}), {tokenstore.read_manifest(path)['splits']['train']['num_tokens']:,} train tokens")
  print(f"{'batch':>12} {'mode':>22} {'batches/s':>10} {'tokens/s':>14}")
  for batch, window in SHAPES:
    cfg = data.default_config()
    cfg.update(dict(source="tokens", path=path, tokenizer=tokenizer, seq_len=window - 1))
    d = pipeline.TrainData(cfg, global_batch=batch)
    step = iter(range(10**9))
    rows, iterators = [("batch(step)", lambda: d.batch(next(step)))], []
    for w in workers:
      cfg.worker_count = w
      iterators.append(pipeline.TrainData(cfg, global_batch=batch).iterator())
      rows.append((f"iterator, {w} workers", lambda it=iterators[-1]: next(it)))
    for name, fn in rows:
      calls, dt = _measure(fn, seconds)
      print(
        f"{batch:>5} x {window:<5} {name:>22} {calls / dt:>10,.1f} {calls * batch * window / dt:>14,.0f}", flush=True
      )
    for it in iterators:
      it.close()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--path", default="", help="prepared dir; default: synthetic tokens in a tmp dir")
  parser.add_argument("--tokenizer", default="gpt2")
  parser.add_argument("--tokens", type=int, default=32_000_000, help="synthetic stream length")
  parser.add_argument("--workers", default="0,2", help="comma-separated Grain worker counts for the iterator")
  parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
  args = parser.parse_args()
  from absl import flags

  flags.FLAGS.mark_as_parsed()  # Grain's worker pool reads absl flags
  workers = [int(w) for w in args.workers.split(",") if w != ""]
  if args.path:
    run(args.path, args.tokenizer, workers, args.seconds)
    return
  with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(0)
    path = os.path.join(tmp, "synthetic")
    tokenstore.write_prepared(
      path, {"train": rng.integers(0, 50257, args.tokens, dtype=np.uint16)}, shard_tokens=10_000_000
    )
    run(path, "gpt2", workers, args.seconds)


if __name__ == "__main__":
  main()
