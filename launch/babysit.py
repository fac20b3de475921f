"""Relaunch a training command until its run's final checkpoint exists (preemptions, lost hosts, crashes).

    python launch/babysit.py --workdir=RUN [--max_retries=10] [--backoff=60] -- COMMAND [ARGS...]

e.g. `-- launch/tpu_pod.sh run --name=pod1 ... -- --config=configs/paper.py:baseline_285m_12l --workdir=RUN`.
The exit status of COMMAND does not decide anything: the trainer exits 0 after a SIGTERM checkpoint, and a
preempted TPU slice makes ssh exit 255. Only the final checkpoint (launch/runstate.py) means "done".
Backoff doubles after each attempt up to --max_backoff, and starts over after an attempt that ran at least
--healthy_after seconds (a long run that got preempted is relaunched quickly; a crash loop slows down).
Imports no JAX: only ffnjax.core.rundir (through launch/runstate.py) to read the run directory.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runstate  # launch/runstate.py, next to this file

from ffnjax.core import cli  # JAX-free; runstate put the repository on sys.path

PROG = "babysit.py"
OLD_SPELLINGS = ("final_step", "max_retries", "max_backoff", "healthy_after", "dry_run")  # were --kebab-case


def parse_args(argv):
  parser = cli.ArgumentParser(
    prog=PROG,
    description=__doc__.split("\n\n")[0],
    usage="%(prog)s --workdir=RUN [options] -- COMMAND [ARGS...]",
    epilog="Dry run: prints the command (one line) it would launch, and launches nothing.",
  )
  parser.add_argument("--workdir", help="the run directory the command trains (local path or gs://...)")
  parser.add_argument(
    "--final_step",
    type=int,
    default=None,
    help="the step whose checkpoint means done (default: train.steps in WORKDIR/config.json)",
  )
  parser.add_argument(
    "--max_retries", type=int, default=10, help="relaunches after the first attempt (default 10); 0 = run once"
  )
  parser.add_argument("--backoff", type=float, default=60.0, help="seconds before the first relaunch (default 60)")
  parser.add_argument("--max_backoff", type=float, default=1800.0, help="cap on the doubling backoff (default 1800)")
  parser.add_argument(
    "--healthy_after",
    type=float,
    default=600.0,
    help="an attempt that ran this long resets the backoff (default 600 s)",
  )
  parser.add_argument("--log", default=None, help="also append the attempt log to this file")
  parser.add_argument("--dry_run", action="store_true", help="print the command and exit")
  parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to (re)launch, after --")
  args = parser.parse_args(cli.snake_case_argv(argv, PROG, OLD_SPELLINGS))
  if args.command and args.command[0] == "--":
    args.command = args.command[1:]
  if not args.workdir:
    parser.error("--workdir is required: the run directory whose final checkpoint means done")
  if not args.command:
    parser.error("no command given: put it after --, e.g. -- python -m ffnjax.train --config=... --workdir=...")
  if args.max_retries < 0:
    parser.error(f"--max_retries={args.max_retries} must be >= 0")
  return args


class _Log:
  def __init__(self, path):
    self.path = path

  def __call__(self, message: str) -> None:
    line = f"[{PROG} {datetime.datetime.now().isoformat(timespec='seconds')}] {message}"
    print(line, file=sys.stderr, flush=True)
    if self.path:
      with open(self.path, "a") as f:
        f.write(line + "\n")


def _finished(args) -> bool:
  return runstate.is_finished(args.workdir, args.final_step)


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  command_line = shlex.join(args.command)
  if args.dry_run:
    print(command_line)
    return 0
  if shutil.which(args.command[0]) is None:
    sys.exit(f"{PROG}: command {args.command[0]!r} not found (not on PATH, or not an executable file)")
  log = _Log(args.log)
  try:
    if _finished(args):
      log(f"{args.workdir}: already finished (final checkpoint exists); nothing to do")
      return 0
  except runstate.RunStateError as e:
    sys.exit(f"{PROG}: {e}")

  stop = {"signal": None}
  child = {"proc": None}

  def on_signal(signum, frame):
    del frame
    # Stop for good: pass the signal on so the trainer checkpoints, and do not relaunch.
    stop["signal"] = signum
    if child["proc"] is not None and child["proc"].poll() is None:
      child["proc"].send_signal(signal.SIGTERM)

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)

  attempts = args.max_retries + 1
  delay = args.backoff
  rc = None
  for attempt in range(1, attempts + 1):
    log(f"attempt {attempt}/{attempts}: {command_line}")
    start = time.monotonic()
    child["proc"] = subprocess.Popen(args.command)
    rc = child["proc"].wait()
    elapsed = time.monotonic() - start
    done = _finished(args)
    log(
      f"attempt {attempt}/{attempts} exited {rc} after {elapsed:.0f}s; "
      f"{'final checkpoint exists' if done else 'final checkpoint missing'}"
    )
    if done:
      log(f"{args.workdir}: finished after {attempt} attempt(s)")
      return 0
    if stop["signal"] is not None:
      log(f"stopped by signal {stop['signal']}; not relaunching")
      return 128 + stop["signal"]
    if attempt == attempts:
      break
    if elapsed >= args.healthy_after:
      delay = args.backoff
    log(f"relaunching in {delay:.0f}s")
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and stop["signal"] is None:  # a signal ends the wait early
      time.sleep(min(1.0, deadline - time.monotonic()))
    if stop["signal"] is not None:
      log(f"stopped by signal {stop['signal']}; not relaunching")
      return 128 + stop["signal"]
    delay = min(delay * 2, args.max_backoff)
  log(
    f"gave up after {attempts} attempt(s) (--max_retries={args.max_retries}); last exit code {rc}; "
    f"no final checkpoint in {runstate.join(args.workdir, 'checkpoints')}"
  )
  return 1


if __name__ == "__main__":
  sys.exit(main())
