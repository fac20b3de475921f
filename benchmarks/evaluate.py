"""Evaluator throughput: the bucketed engine against a naive one-request-at-a-time loop, on the embedded set.

  python benchmarks/evaluate.py                          # d=256, 8 layers, vocab 4096 random model, 32 docs/task
  python benchmarks/evaluate.py --limit=128 --token_budget=16384 --max_length=256

A randomly initialised ffnjax model (the quick-start tokenizer, bpe:4096 trained on the training plays) scores
the embedded lambada_openai, wikitext, hellaswag and zsre sets. Per task it prints examples/s, input tokens/s
(real, unpadded tokens through the model) and scored tokens/s (continuation tokens), the number of distinct
compiled shapes, and the same requests scored by a naive loop: one request per call (lm-eval with batch size 1),
right-padded to max_length so that it compiles once instead of once per length (an unpadded loop would compile
tens of programs here). Compilation is excluded from both timings. It also checks that both give the same LLs.
"""

from __future__ import annotations

import os
import sys

# The repo root instead of benchmarks/, so `configs` imports from a checkout.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

TASKS = ("lambada_openai", "wikitext", "hellaswag", "zsre")


def build_model(args):
  from configs import tiny
  from ffnjax import model as model_lib
  from ffnjax.core.placement import LayerPlan

  config = tiny.get_config("baseline_tiny_8l")
  config.model.update(
    dict(vocab_size=4096, d_model=args.d_model, d_ff=4 * args.d_model, num_heads=4, num_layers=args.layers)
  )
  plan = LayerPlan.from_config(config)
  params = model_lib.init_params(model_lib.build(config.model, plan), jax.random.key(0))
  n = sum(x.size for x in jax.tree.leaves(params))
  return model_lib.make_logits_fn(config, plan, params), n


def naive_loop(logits_fn, requests, max_length):
  """One request per forward pass, padded to max_length (a single compiled shape); LL summed on the host."""
  lls = []
  for ctx, cont in requests:
    seq = (list(ctx) + list(cont))[-(max_length + 1) :]
    n = len(seq) - 1
    tokens = np.zeros((1, max_length), np.int32)
    tokens[0, :n] = seq[:-1]
    logp = jax.nn.log_softmax(logits_fn(jnp.asarray(tokens))[0, n - len(cont) : n].astype(jnp.float32), axis=-1)
    lls.append(float(jnp.take_along_axis(logp, jnp.asarray(cont)[:, None], axis=-1).sum()))
  return np.asarray(lls)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--limit", type=int, default=32, help="documents per task")
  p.add_argument("--max_length", type=int, default=128)
  p.add_argument("--token_budget", type=int, default=4096)
  p.add_argument("--d_model", type=int, default=256)
  p.add_argument("--layers", type=int, default=8)
  p.add_argument("--tasks", default=",".join(TASKS))
  p.add_argument("--naive_limit", type=int, default=0, help="requests per task for the naive loop (0 = all)")
  args = p.parse_args()

  from ffnjax.data import shakespeare
  from ffnjax.data.tokenizers import train_bpe
  from ffnjax.eval import engine, evaluator

  t = time.perf_counter()
  tok = train_bpe(shakespeare.split()[0].values(), 4096, os.path.join(tempfile.mkdtemp(), "tokenizer.json"))
  print(f"tokenizer bpe:4096 trained in {time.perf_counter() - t:.1f}s")
  logits_fn, n_params = build_model(args)
  print(
    f"model: d={args.d_model} layers={args.layers} vocab=4096 params={n_params / 1e6:.1f}M; "
    f"{jax.devices()[0].platform} x{len(jax.devices())}; max_length={args.max_length} "
    f"token_budget={args.token_budget} limit={args.limit}\n"
  )
  header = (
    f"{'task':<15}{'docs':>5}{'reqs':>6}{'shapes':>7}{'compile s':>10}{'run s':>8}{'ex/s':>8}"
    f"{'in tok/s':>10}{'scored tok/s':>13}{'naive s':>9}{'speedup':>9}"
    f"{'max|dLL|':>10}"
  )
  print(header)
  shapes = set()
  for name in args.tasks.split(","):
    prepared = evaluator.prepare(name, tok, "embedded", limit=args.limit, max_length=args.max_length)
    plan = prepared.plan(args.token_budget)
    t = time.perf_counter()
    scores = engine.score_batches(plan, logits_fn, progress_every_s=-1)  # compiles each shape once
    first = time.perf_counter() - t
    t = time.perf_counter()
    result = evaluator.score(prepared, logits_fn, token_budget=args.token_budget, progress_every_s=-1)
    run = time.perf_counter() - t

    reqs = prepared.encoded.requests[: args.naive_limit or None]
    naive_loop(logits_fn, reqs[:1], args.max_length)  # compile
    t = time.perf_counter()
    naive = naive_loop(logits_fn, reqs, args.max_length)
    naive_s = time.perf_counter() - t
    frac = len(reqs) / len(prepared.encoded.requests)  # compare with the batched time of the same share
    shapes |= set(plan.shapes)
    print(
      f"{name:<15}{result.num_examples:>5}{result.num_requests:>6}{len(plan.shapes):>7}"
      f"{max(first - run, 0):>10.1f}{run:>8.2f}{result.num_examples / run:>8.1f}{plan.input_tokens / run:>10.0f}"
      f"{int(plan.num_tokens.sum()) / run:>13.0f}{naive_s:>9.1f}{naive_s / (run * frac):>8.1f}x"
      f"{np.abs(naive - scores.ll[: len(reqs)]).max():>10.1e}"
    )
  print(
    f"\ndistinct batched shapes over all tasks: {len(shapes)} {sorted(shapes)}; compiled model programs: "
    f"{logits_fn.jitted._cache_size()} (the batched shapes + the naive loop's one)"
  )


if __name__ == "__main__":
  main()
