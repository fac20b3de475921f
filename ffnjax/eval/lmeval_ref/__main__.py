"""`python -m ffnjax.eval.lmeval_ref --hf_dir=DIR --data_dir=DIR --tasks=hellaswag,piqa [--limit=N]`: the
reference scorer (lm-evaluation-harness itself) on local upstream-format files, offline (see __init__.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ffnjax.core import rundir
from ffnjax.eval.lmeval_ref import SUPPORTED, run_lmeval


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(
    description="lm-evaluation-harness 0.4.13 on a Hugging Face model dir and local upstream-format task files, offline"
  )
  p.add_argument("--hf_dir", required=True, help="Hugging Face model directory (config, weights, tokenizer)")
  p.add_argument("--data_dir", required=True, help="DATA_DIR/<task>/<split>.jsonl|.json|.parquet")
  p.add_argument("--tasks", required=True, help=f"comma-separated: {','.join(SUPPORTED)}")
  p.add_argument("--limit", type=int, default=None, help="first N documents per task")
  p.add_argument("--max_length", type=int, default=None)
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--output", default=None, help="write the result object as JSON here")
  args = p.parse_args(argv)
  if not os.path.isdir(args.hf_dir):
    print(f"--hf_dir={args.hf_dir}: no such directory (a Hugging Face model dir)", file=sys.stderr)
    return 2
  if not os.path.isdir(args.data_dir):
    print(f"--data_dir={args.data_dir}: no such directory (DATA_DIR/<task>/<split>.jsonl)", file=sys.stderr)
    return 2
  try:
    result = run_lmeval(
      args.hf_dir, args.data_dir, args.tasks, limit=args.limit, max_length=args.max_length, batch_size=args.batch_size
    )
  except (ValueError, FileNotFoundError) as e:
    print(f"--tasks/--data_dir: {e}", file=sys.stderr)
    return 2
  for name, r in result.items():
    print(name, json.dumps(r["metrics"], sort_keys=True))
  if args.output:
    rundir.write_json(args.output, result)
  return 0


if __name__ == "__main__":
  sys.exit(main())
