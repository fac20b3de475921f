"""Shapley coalitions/s: batched keep masks with prefix reuse vs one mask at a time vs an llm_dissect-style torch loop.

  nice -n 10 python benchmarks/shapley_coalitions.py                  # single ablation + block level 3, 40 docs
  python benchmarks/shapley_coalitions.py --limit=80 --repeats=5 --workdir=/tmp/evl

Same model and examples for all: the random 29 M-parameter HF Llama (4 layers: 8 players) and the synthetic
HellaSwag file of benchmarks/evaluate_vs_lmeval.py (built from its fixed seed, or reused from --workdir), imported
with `python -m ffnjax.convert`. Coalition sets: single ablation (the full model and each player removed: 9) and
the block estimator's coalitions at level 3. Columns, run interleaved (one round = each column once), compilation
excluded (a warm-up call first), ratio of medians:
  (a) one at a time   engine.score_packed with one [1, L, 2] mask per call: packed rows, output head only at scored
                      positions, and a removed sub-layer is skipped (no compute: the whole batch drops it)
  (b0) batched        all K masks in one call, (coalition, row) items mixed in fixed-shape batches, no reuse
  (b) batched+reuse   as ffnjax.shapley runs it: the full model's residual streams once per block of rows, each
                      batch starting at its coalitions' first removed sub-layer, removed sub-layers skipped
  (c) torch hooks     HF transformers + torch CPU fp32: forward hooks zero `o_proj` / `down_proj` outputs of the
                      players left out; lm-eval-style scoring (batch 16, right padding, log-softmax over the full
                      vocabulary, continuation tokens summed), one coalition at a time, as llm_dissect does
                      (single ablation only unless --torch_block).
It also prints the reuse speed-up the FLOPs predict (from the sub-layers and head positions each schedule ran)
beside the measured one, the programs compiled, and that acc_norm agrees for every coalition across columns.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import subprocess
import tempfile
import time

import numpy as np

import benchmarks.evaluate_vs_lmeval as evl


def torch_hook_model(hf_dir):
  """The HF model with forward hooks that zero the sub-layer outputs of the dropped players (loaded once, outside
  the timings) and the mask state they read."""
  import torch
  import transformers

  torch.set_grad_enabled(False)
  model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
  state = {"mask": None}

  def hook(layer, col):
    def fn(_module, _inputs, output):
      return output * float(state["mask"][layer, col])

    return fn

  for i, layer in enumerate(model.model.layers):
    layer.self_attn.o_proj.register_forward_hook(hook(i, 0))
    layer.mlp.down_proj.register_forward_hook(hook(i, 1))
  return model, state


def torch_hook_scores(hooked, requests, masks, batch_size=16):
  """LL of every request under each mask: [K, N], one coalition at a time."""
  import torch

  model, state = hooked
  max_len = evl.MAX_LENGTH
  rows = []
  for ctx, cont in requests:  # lm-eval's _loglikelihood_tokens: input (ctx + cont)[-(L+1):][:-1]
    seq = (list(ctx) + list(cont))[-(max_len + 1) :]
    rows.append((seq[:-1], list(cont)))
  order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))  # lm-eval sorts by length, longest first
  out = np.zeros((len(masks), len(rows)))
  for k, mask in enumerate(masks):
    state["mask"] = mask
    for start in range(0, len(order), batch_size):
      idx = order[start : start + batch_size]
      width = len(rows[idx[0]][0])
      inp = torch.zeros((len(idx), width), dtype=torch.long)
      for r, i in enumerate(idx):
        inp[r, : len(rows[i][0])] = torch.tensor(rows[i][0])
      logp = torch.log_softmax(model(inp).logits.float(), dim=-1)
      for r, i in enumerate(idx):
        x, cont = rows[i]
        n, c = len(x), len(cont)
        picked = logp[r, n - c : n].gather(-1, torch.tensor(cont)[:, None])[:, 0]
        out[k, i] = float(picked.sum())
  return out


def flops_model(config, plan, row_length, head_columns):
  """FLOPs per token of each sub-layer (boundary order: attention, FFN of each layer) and per head position."""
  from ffnjax.model import padded_width

  m = config.model
  d, h = m.d_model, m.num_heads
  kv, hd = m.num_kv_heads or h, m.head_dim or m.d_model // h
  attn = 2 * d * (h + 2 * kv) * hd + 2 * h * hd * d + 4 * row_length * h * hd  # projections + masked T x T
  per = []
  for w in plan.widths:
    per += [attn, 6 * d * padded_width(w, m.ffn_pad_multiple)]
  return np.asarray(per, np.float64), 2.0 * d * head_columns  # the head runs over the padded vocabulary


def predicted_flops(work, per_sublayer, head, row_length):
  return float(work["sublayer_rows"] @ per_sublayer * row_length + work["head_positions"] * head)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--limit", type=int, default=40, help="HellaSwag documents")
  p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians)")
  p.add_argument("--token_budget", type=int, default=16384)
  p.add_argument("--workdir", default=None)
  p.add_argument("--skip_torch", action="store_true")
  p.add_argument("--torch_block", action="store_true", help="run the torch loop on the block coalitions too")
  p.add_argument("--sets", default="single,block", help="coalition sets: single (ablation), block (level 3)")
  args = p.parse_args()

  import jax

  from ffnjax.eval import engine, evaluator
  from ffnjax.model import make_scorer
  from ffnjax.shapley import block_coalitions, grand_coalition, keep_masks, players_from_layer_types
  from ffnjax.train import checkpoint
  from ffnjax.train.runconfig import load_tokenizer

  work = args.workdir or tempfile.mkdtemp(prefix="shapley-bench-")
  hf_dir, data_dir, run_dir = (os.path.join(work, n) for n in ("hf", "data", "run"))
  if not os.path.isfile(os.path.join(hf_dir, "config.json")):
    evl.write_hf_model(hf_dir)
  if not os.path.isdir(data_dir):
    evl.write_task_files(data_dir)
  if not os.path.isdir(run_dir):
    subprocess.run(
      [
        sys.executable,
        "-m",
        "ffnjax.convert",
        f"--hf_model={hf_dir}",
        f"--output={run_dir}",
        "--dtype=float32",
        f"--seq_len={evl.MAX_LENGTH}",
        "--mesh=data:1,fsdp:1,tensor:1",
      ],
      check=True,
      stdout=subprocess.DEVNULL,
    )
  params, config, plan = checkpoint.restore_params(run_dir, 0)
  tok = load_tokenizer(config, run_dir=run_dir)
  prepared = evaluator.prepare("hellaswag", tok, data_dir, args.limit, evl.MAX_LENGTH)
  packed = prepared.packed()
  scorer = make_scorer(config, plan, params)
  players = players_from_layer_types(plan.layer_types)
  n = len(players)
  full = grand_coalition(n)
  sets = {"single ablation": [full] + [full - {i} for i in range(n)], "block level 3": block_coalitions(n, 3)}
  sets = {k: v for k, v in sets.items() if k.split()[0] in args.sets.split(",")}
  per_sublayer, head = flops_model(config, plan, packed.row_length, scorer.head.shape[1])
  print(
    f"{jax.devices()[0].platform} x{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; hellaswag "
    f"{args.limit} docs = {len(packed.unique_index)} requests; packed rows {packed.num_rows} x "
    f"{packed.row_length} (padding {packed.padded_fraction:.1%}); {n} players; token budget "
    f"{args.token_budget}; {args.repeats} interleaved rounds"
  )

  offs, docs = prepared.encoded.offsets, prepared.docs
  lens = np.asarray([len(x) for _, x in prepared.encoded.texts], np.float64)
  gold = np.asarray([int(d["label"]) for d in docs])

  def acc_norm(lls):
    return np.asarray(
      [
        np.mean(
          [np.argmax(ll[offs[i] : offs[i + 1]] / lens[offs[i] : offs[i + 1]]) == gold[i] for i in range(len(docs))]
        )
        for ll in lls
      ]
    )

  budget = args.token_budget
  hooked = None
  for set_name, coalitions in sets.items():
    masks = keep_masks(players, coalitions, plan.num_layers)
    k = len(masks)
    works = {"(b0)": {}, "(b)": {}}
    columns = {}
    if set_name == "single ablation":  # the targets' column; for the block set, (b0) vs (b) measures reuse
      columns["(a) one at a time"] = lambda: [
        engine.score_packed(packed, scorer, m[None], token_budget=budget, progress_every_s=-1)[0] for m in masks
      ]
    columns |= {
      "(b0) batched, no reuse": lambda: engine.score_packed(
        packed, scorer, masks, token_budget=budget, progress_every_s=-1, fixed_shapes=True, work=works["(b0)"]
      ),
      "(b) batched + reuse": lambda: engine.score_packed(
        packed,
        scorer,
        masks,
        token_budget=budget,
        progress_every_s=-1,
        fixed_shapes=True,
        reuse=True,
        work=works["(b)"],
      ),
    }
    if not args.skip_torch and (set_name == "single ablation" or args.torch_block):
      hooked = hooked or torch_hook_model(hf_dir)
      columns["(c) torch hooks"] = lambda: torch_hook_scores(hooked, prepared.encoded.requests, masks)
    # warm-up: compiles every program; its results are compared below
    lls = {}
    for name, fn in columns.items():
      out = fn()
      lls[name] = out if isinstance(out, np.ndarray) else np.stack([o.ll for o in out])
    walls = {name: [] for name in columns}
    for _ in range(args.repeats):
      for name, fn in columns.items():
        t = time.perf_counter()
        fn()
        walls[name].append(time.perf_counter() - t)
    med = {name: float(np.median(w)) for name, w in walls.items()}
    ref = "(b) batched + reuse"
    print(f"\n### {set_name}: {k} coalitions, load average {os.getloadavg()[0]:.1f}\n")
    print(
      "| column | coalitions/s (median) | wall s per round (median) | (b) speed-up | max abs LL diff vs (b) |"
      " acc_norm agrees with (b) |\n|---|---:|---:|---:|---:|---|"
    )
    base_acc = acc_norm(lls[ref])
    for name in columns:
      same = bool(np.array_equal(acc_norm(lls[name]), base_acc))
      print(
        f"| {name} | {k / med[name]:.3f} | {med[name]:.2f} | {med[name] / med[ref]:.2f}x | "
        f"{np.abs(lls[name] - lls[ref]).max():.1e} | {same} |"
      )
    flops = {key: predicted_flops(works[key], per_sublayer, head, packed.row_length) for key in works}
    layer_share = 1 - works["(b)"]["head_positions"] * head / flops["(b)"]
    print(
      f"\nFLOPs per round (predicted from what ran): (b0) {flops['(b0)'] / 1e9:.1f} G, (b) "
      f"{flops['(b)'] / 1e9:.1f} G (layers {layer_share:.0%} of (b), output head the rest); sub-layer rows run: "
      f"(b0) {int(works['(b0)']['sublayer_rows'].sum())}, (b) {int(works['(b)']['sublayer_rows'].sum())} "
      f"(prefix {works['(b)']['prefix_rows']} rows x all sub-layers, {works['(b)']['batches']} batches)"
    )
    print(
      f"reuse speed-up (b0)/(b): predicted by FLOPs {flops['(b0)'] / flops['(b)']:.2f}x, measured "
      f"{med['(b0) batched, no reuse'] / med[ref]:.2f}x"
    )
    if "(a) one at a time" in med:
      a_work = {"sublayer_rows": 0, "head_positions": 0}
      for m in masks:
        w = {}
        engine.score_packed(packed, scorer, m[None], token_budget=budget, progress_every_s=-1, work=w)
        a_work["sublayer_rows"] = a_work["sublayer_rows"] + w["sublayer_rows"]
        a_work["head_positions"] += w["head_positions"]
      fa = predicted_flops(a_work, per_sublayer, head, packed.row_length)
      print(
        f"(a)/(b): predicted by FLOPs {fa / flops['(b)']:.2f}x ((a) {fa / 1e9:.1f} G), measured "
        f"{med['(a) one at a time'] / med[ref]:.2f}x"
      )
  print(
    f"\nprograms compiled: {scorer.compilations()} (prefix reuse: {scorer.prefix.compilations()}: one streams "
    f"program and one run-from program for every start boundary)"
  )


if __name__ == "__main__":
  main()
