"""Shapley coalitions/s: batched keep masks vs one mask at a time vs an llm_dissect-style torch hook loop.

  nice -n 10 python benchmarks/shapley_coalitions.py                       # 16 coalitions, 40 HellaSwag docs
  python benchmarks/shapley_coalitions.py --coalitions=32 --limit=80 --workdir=/tmp/evl

Same model and examples for all: the random 29 M-parameter HF Llama and the synthetic HellaSwag file of
benchmarks/evaluate_vs_lmeval.py (built from its fixed seed, or reused from --workdir), imported with
`python -m ffnjax.convert`. Random coalitions of the 8 players (attention and FFN of 4 layers) are scored by:
  batched        ffnjax.shapley.value: engine.score_packed with all K keep masks [K, L, 2] in one call
  one-at-a-time  the same packed engine, one [1, L, 2] mask per call
  logits path    the previous value function: engine.score_batches over full logits, one [L, 2] mask per call
  torch hooks    HF transformers + torch CPU fp32: forward hooks zero `o_proj` / `down_proj` outputs of the
                 players left out; lm-eval-style scoring (batch 16, right padding, log-softmax over the full
                 vocabulary, continuation tokens summed), one coalition at a time, as llm_dissect does.
Compilation is excluded (a warm-up coalition first for each). It prints coalitions/s, the ratios, and the largest
LL difference between the methods (acc_norm of every coalition must agree).
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import benchmarks.evaluate_vs_lmeval as evl  # noqa: E402


def torch_hook_scores(hf_dir, requests, masks, batch_size=16):
  """LL of every request under each mask: [K, N]. Hooks zero the sub-layer outputs of the dropped players."""
  import torch
  import transformers

  torch.set_grad_enabled(False)
  model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
  layers = model.model.layers
  state = {"mask": None}

  def hook(layer, col):
    def fn(_module, _inputs, output):
      return output * float(state["mask"][layer, col])
    return fn

  for i, layer in enumerate(layers):
    layer.self_attn.o_proj.register_forward_hook(hook(i, 0))
    layer.mlp.down_proj.register_forward_hook(hook(i, 1))
  max_len = evl.MAX_LENGTH
  rows = []
  for ctx, cont in requests:  # lm-eval's _loglikelihood_tokens: input (ctx + cont)[-(L+1):][:-1]
    seq = (list(ctx) + list(cont))[-(max_len + 1):]
    rows.append((seq[:-1], list(cont)))
  order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))  # lm-eval sorts by length, longest first
  out = np.zeros((len(masks), len(rows)))
  for k, mask in enumerate(masks):
    state["mask"] = mask
    for start in range(0, len(order), batch_size):
      idx = order[start:start + batch_size]
      width = len(rows[idx[0]][0])
      inp = torch.zeros((len(idx), width), dtype=torch.long)
      for r, i in enumerate(idx):
        inp[r, :len(rows[i][0])] = torch.tensor(rows[i][0])
      logp = torch.log_softmax(model(inp).logits.float(), dim=-1)
      for r, i in enumerate(idx):
        x, cont = rows[i]
        n, c = len(x), len(cont)
        picked = logp[r, n - c:n].gather(-1, torch.tensor(cont)[:, None])[:, 0]
        out[k, i] = float(picked.sum())
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--coalitions", type=int, default=16)
  p.add_argument("--limit", type=int, default=40, help="HellaSwag documents")
  p.add_argument("--token_budget", type=int, default=16384)
  p.add_argument("--workdir", default=None)
  p.add_argument("--skip_torch", action="store_true")
  p.add_argument("--baseline_coalitions", type=int, default=0,
                 help="score only the first N coalitions with the two slow baselines (rates are per coalition)")
  args = p.parse_args()

  import jax

  from ffnjax.eval import engine, evaluator
  from ffnjax.eval.run import load_tokenizer
  from ffnjax.model import make_logits_fn, make_scorer
  from ffnjax.train import checkpoint

  work = args.workdir or tempfile.mkdtemp(prefix="shapley-bench-")
  hf_dir, data_dir, run_dir = (os.path.join(work, n) for n in ("hf", "data", "run"))
  if not os.path.isfile(os.path.join(hf_dir, "config.json")):
    evl.write_hf_model(hf_dir)
  if not os.path.isdir(data_dir):
    evl.write_task_files(data_dir)
  if not os.path.isdir(run_dir):
    subprocess.run([sys.executable, "-m", "ffnjax.convert", f"--hf_model={hf_dir}", f"--output={run_dir}",
                    "--dtype=float32", f"--seq_len={evl.MAX_LENGTH}", "--mesh=data:1,fsdp:1,tensor:1"], check=True,
                   stdout=subprocess.DEVNULL)
  params, config, plan = checkpoint.restore_params(run_dir, 0)
  tok = load_tokenizer(config)
  prepared = evaluator.prepare("hellaswag", tok, data_dir, args.limit, evl.MAX_LENGTH)
  packed = prepared.packed()
  scorer = make_scorer(config, plan, params)
  logits = make_logits_fn(config, plan, params, with_keep=True)
  rng = np.random.RandomState(0)
  masks = (rng.rand(args.coalitions + 1, plan.num_layers, 2) > 0.3).astype(np.float32)
  masks[0] = 1.0
  warm, masks = masks[:1], masks[1:]
  k = len(masks)
  print(f"{jax.devices()[0].platform} x{os.cpu_count()} CPUs; hellaswag {args.limit} docs = {len(packed.unique_index)}"
        f" requests; packed rows {packed.num_rows} x {packed.row_length} (padding {packed.padded_fraction:.1%}); "
        f"{k} coalitions of {plan.num_layers * 2} players; token budget {args.token_budget}\n")

  def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t

  results = {}
  engine.score_packed(packed, scorer, warm, token_budget=args.token_budget, progress_every_s=-1, fixed_shapes=True)
  out, s = timed(lambda: engine.score_packed(packed, scorer, masks, token_budget=args.token_budget,
                                             progress_every_s=-1, fixed_shapes=True))
  results["ffnjax batched (K masks per call)"] = (s, np.stack([o.ll for o in out]))
  engine.score_packed(packed, scorer, warm, token_budget=args.token_budget, progress_every_s=-1)
  out, s = timed(lambda: [engine.score_packed(packed, scorer, m[None], token_budget=args.token_budget,
                                              progress_every_s=-1)[0] for m in masks])
  results["ffnjax packed, one mask per call"] = (s, np.stack([o.ll for o in out]))
  batch_plan = prepared.plan(args.token_budget)
  engine.score_batches(batch_plan, lambda t: logits(t, warm[0]), progress_every_s=-1)
  nb = args.baseline_coalitions or k
  out, s = timed(lambda: [engine.score_batches(batch_plan, lambda t, m=m: logits(t, m), progress_every_s=-1)
                          for m in masks[:nb]])
  results["ffnjax logits path, one mask per call (before)"] = (s, np.stack([o.ll for o in out]))
  if not args.skip_torch:
    torch_hook_scores(hf_dir, prepared.encoded.requests[:16], warm)
    lls, s = timed(lambda: torch_hook_scores(hf_dir, prepared.encoded.requests, masks[:nb]))
    results["torch hooks (llm_dissect-style), one per pass"] = (s, lls)

  ref = results["ffnjax batched (K masks per call)"]
  rate = k / ref[0]
  print("| method | coalitions | wall s | coalitions/s | batched speedup | max abs LL diff vs batched |\n"
        "|---|---:|---:|---:|---:|---:|")
  for name, (s, lls) in results.items():
    n = len(lls)
    print(f"| {name} | {n} | {s:.1f} | {n / s:.3f} | {rate / (n / s):.2f}x | {np.abs(lls - ref[1][:n]).max():.1e} |")
  # acc_norm per coalition must agree across methods
  offs, docs = prepared.encoded.offsets, prepared.docs
  lens = np.asarray([len(x) for _, x in prepared.encoded.texts], np.float64)
  gold = np.asarray([int(d["label"]) for d in docs])

  def acc_norm(lls):
    return np.asarray([np.mean([np.argmax(l[offs[i]:offs[i + 1]] / lens[offs[i]:offs[i + 1]]) == gold[i]
                                for i in range(len(docs))]) for l in lls])

  base = acc_norm(ref[1])
  for name, (_, lls) in results.items():
    same = bool(np.array_equal(acc_norm(lls), base[:len(lls)]))
    print(f"acc_norm agrees with batched for every coalition: {name}: {same}")


if __name__ == "__main__":
  main()
