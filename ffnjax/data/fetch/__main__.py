"""`python -m ffnjax.data.fetch --what=eval|fineweb_edu --output=DIR`: the one command that downloads (see
ffnjax/data/fetch/__init__.py)."""

from __future__ import annotations

import sys

from absl import flags

from ffnjax.core import cli, rundir
from ffnjax.core.errors import UsageError
from ffnjax.data.fetch import FINEWEB_EDU_SUBSETS, MANIFEST, fetch_eval, fetch_fineweb_edu

flags.DEFINE_enum("what", None, ["eval", "fineweb_edu"], "What to download.")
flags.DEFINE_string("output", None, "Output directory (eval: the evaluator's data_dir).")
flags.DEFINE_list("tasks", [], "--what=eval: only these tasks (default: all).")
flags.DEFINE_string("subset", "sample-10BT", f"--what=fineweb_edu: one of {sorted(FINEWEB_EDU_SUBSETS)}.")
flags.DEFINE_integer("max_shards", 0, "--what=fineweb_edu: download only the first N shards (0 = all).", lower_bound=0)


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  log = lambda m: print(m, file=sys.stderr, flush=True)
  if f.what == "eval":
    manifest = fetch_eval(f.output, f.tasks, log=log)
    print(rundir.join(f.output, MANIFEST), f"({len(manifest['files'])} files)")
  else:
    manifest = fetch_fineweb_edu(f.output, f.subset, f.max_shards, log=log)
    print(rundir.join(f.output, f.subset), f"({len(manifest['files'])} shards)")


if __name__ == "__main__":
  flags.mark_flags_as_required(["what", "output"])
  cli.run(main, prog="ffnjax.data.fetch")
