"""The bad-input table: every command with bad inputs, the one line it prints and its exit status.

    python tests/core/bad_inputs.py                # markdown table, one `python -m` subprocess per input (slow)
    python tests/core/bad_inputs.py --fork --json  # what tests/core/test_cli_errors.py runs (fast, see below)

--fork imports the libraries once, then forks one child per input that runs the command's `__main__` exactly as
`python -m` does (runpy), so the ~40 inputs cost one JAX import instead of forty. No input reaches JAX work.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = "--config=configs/tiny.py:baseline_tiny_4l"
STUDY = "--config=configs/study.py:tiny"
MISSING = "/nonexistent/ffnjax-bad-input"

# (command, arguments, a word the one line must contain: the field or flag it names)
CASES = [
  ("ffnjax.plan", [TINY, "--config.train.stepz=5"], "did you mean train.steps?"),
  ("ffnjax.plan", ["--config=configs/studdy.py:x"], "config file configs/studdy.py not found"),
  ("ffnjax.plan", [TINY, "--compile", "--mesh=data=1"], "AXIS:SIZE"),
  ("ffnjax.plan", [TINY, "--config.model.remat=bogus"], "model.remat"),
  ("ffnjax.plan", [TINY, "--config.train.steps=abc"], "--config.train.steps"),
  ("ffnjax.train", [TINY, "--config.train.stepz=5", "--workdir=" + MISSING], "did you mean train.steps?"),
  ("ffnjax.train", ["--config=configs/tinyy.py:baseline_tiny_4l", "--workdir=" + MISSING], "configs/tinyy.py"),
  ("ffnjax.train", [TINY, "--max_steps=-1", "--workdir=" + MISSING], "--max_steps"),
  ("ffnjax.train", [TINY], "--workdir"),
  ("ffnjax.eval", ["--workdir=" + MISSING, "--limit=-3"], "--limit"),
  ("ffnjax.eval", ["--workdir=" + MISSING, "--mesh=data=1"], "AXIS:SIZE"),
  ("ffnjax.eval", ["--limit=5"], "--workdir"),
  ("ffnjax.eval", ["--workdir=" + MISSING, "--tasks=lambada_opnai"], "lambada_opnai"),
  ("ffnjax.study", ["--config=configs/studyy.py:tiny", "--workdir=" + MISSING], "configs/studyy.py not found"),
  ("ffnjax.study", [STUDY + "x", "--workdir=" + MISSING], "unknown study"),
  ("ffnjax.study", [STUDY, "--config.ratioz=5", "--workdir=" + MISSING], "unknown config field ratioz"),
  ("ffnjax.study", [STUDY], "--workdir"),
  ("ffnjax.shapley", ["--checkpoint=" + MISSING], "--output"),
  ("ffnjax.shapley", ["--checkpoint=" + MISSING, "--output=" + MISSING, "--limit=-3"], "--limit"),
  ("ffnjax.shapley", ["--checkpoint=" + MISSING, "--output=" + MISSING, "--method=exactt"], "--method"),
  ("ffnjax.convert", ["--hf_model=" + MISSING, "--output=" + MISSING, "--mesh=data=1"], "AXIS:SIZE"),
  ("ffnjax.convert", ["--output=" + MISSING], "--hf_model"),
  ("ffnjax.convert", ["--workdir=" + MISSING, "--export_hf=" + MISSING, "--step=-1"], "--step"),
  ("ffnjax.analysis", [], "--study"),
  ("ffnjax.analysis", ["--table=" + MISSING + ".csv"], "--output"),
  ("ffnjax.analysis", ["--study=" + MISSING, "--top_k=0"], "--top_k"),
  ("ffnjax.data.prepare", ["--source=shakespear", "--output=" + MISSING], "--source"),
  ("ffnjax.data.prepare", ["--source=shakespeare"], "--output"),
  ("ffnjax.data.prepare", ["--source=shakespeare", "--output=" + MISSING, "--heldout_every=1"], "--heldout_every"),
  ("ffnjax.data.fetch", ["--what=evall", "--output=" + MISSING], "--what"),
  ("ffnjax.data.fetch", ["--what=eval"], "--output"),
  ("ffnjax.data.fetch", ["--what=fineweb_edu", "--output=" + MISSING, "--max_shards=-1"], "--max_shards"),
  ("ffnjax.data.fixtures", [], "--output"),
  ("ffnjax.data.fixtures", ["--output=" + MISSING, "--records=0"], "--records"),
  ("ffnjax.data.fixtures", ["--output=" + MISSING, "extra"], "unexpected arguments"),
  ("launch/babysit.py", ["--max_retries=-1", "--workdir=" + MISSING, "--", "true"], "--max_retries"),
  ("launch/babysit.py", ["--", "true"], "--workdir"),
  ("launch/babysit.py", ["--workdir=" + MISSING], "no command given"),
  ("launch/sweep.py", ["--study=configs/studdy.py:tiny", "--root=" + MISSING, "--dry_run"], "configs/studdy.py"),
  ("launch/sweep.py", ["--root=" + MISSING, "--dry_run"], "--study"),
  ("launch/sweep.py", ["--study=configs/study.py:tiny", "--root=" + MISSING, "--backend=slurmm"], "--backend"),
]


def command_line(target: str, args: list[str]) -> list[str]:
  return [sys.executable] + ([target] if target.endswith(".py") else ["-m", target]) + args


def _run_subprocess(target, args):
  start = time.perf_counter()
  proc = subprocess.run(command_line(target, args), cwd=REPO, capture_output=True, text=True, timeout=300)
  return proc.returncode, proc.stderr, time.perf_counter() - start


def _run_forked(target, args):
  """One child per input, started from this process (libraries already imported); as `python -m target args`."""
  start = time.perf_counter()
  with tempfile.TemporaryFile(mode="w+") as err:
    pid = os.fork()
    if pid == 0:  # the child: never returns
      code = 1
      try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(err.fileno(), 2)
        sys.argv = [target] + args
        if target.endswith(".py"):
          runpy.run_path(os.path.join(REPO, target), run_name="__main__")
        else:
          runpy.run_module(target, run_name="__main__", alter_sys=True)
        code = 0
      except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else (print(e.code, file=sys.stderr), 1)[1])
      except BaseException:  # noqa: BLE001  (a bug: its traceback goes where python -m would print it)
        import traceback

        traceback.print_exc()
      finally:
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    err.seek(0)
    return os.waitstatus_to_exitcode(status), err.read(), time.perf_counter() - start


def collect(fork: bool) -> list[dict]:
  if fork:  # what the commands import, once; their __main__ modules (the flags) are left to each child
    import jax  # noqa: F401

    import ffnjax.analysis
    import ffnjax.convert
    import ffnjax.eval.run
    import ffnjax.plan.aot
    import ffnjax.shapley.run
    import ffnjax.study.runner
    import ffnjax.train.experiment  # noqa: F401

    sys.path.insert(0, os.path.join(REPO, "launch"))
  os.chdir(REPO)
  rows = []
  for target, args, expect in CASES:
    code, stderr, seconds = (_run_forked if fork else _run_subprocess)(target, args)
    rows.append(dict(target=target, args=args, expect=expect, code=code, stderr=stderr, seconds=seconds))
  return rows


def main():
  rows = collect(fork="--fork" in sys.argv)
  if "--json" in sys.argv:
    print(json.dumps(rows))
    return
  print("| command | input | exit | stderr |\n|---|---|---|---|")
  for r in rows:
    shown = " ".join(a.replace(MISSING, "/nonexistent") for a in r["args"])
    line = r["stderr"].strip().replace(MISSING, "/nonexistent").replace("|", "\\|")
    print(f"| {r['target']} | `{shown}` | {r['code']} | {line} |")


if __name__ == "__main__":
  main()
