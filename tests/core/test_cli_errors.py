"""The one command-line layer (ffnjax/core/cli.py): every command answers bad input with one line naming the
field, exit status 2, no traceback, before any JAX work; `--show_config` describes every config field."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import bad_inputs  # tests/core/bad_inputs.py: the cases, shared with the printed table

REPO = bad_inputs.REPO


@pytest.fixture(scope="module")
def outcomes():
  """Every case run once (forked children of one process that imported the libraries: see bad_inputs.py)."""
  proc = subprocess.run(
    [sys.executable, os.path.join(os.path.dirname(__file__), "bad_inputs.py"), "--fork", "--json"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = json.loads(proc.stdout)
  return {(r["target"], tuple(r["args"])): r for r in rows}


def test_every_command_has_three_bad_inputs():
  commands = [
    d
    for d in os.listdir(os.path.join(REPO, "ffnjax"))
    if os.path.exists(os.path.join(REPO, "ffnjax", d, "__main__.py"))
  ]
  commands = [f"ffnjax.{d}" for d in commands] + [f"ffnjax.data.{d}" for d in ("prepare", "fetch", "fixtures")]
  commands += ["launch/babysit.py", "launch/sweep.py"]
  counts = {c: sum(t == c for t, _, _ in bad_inputs.CASES) for c in commands}
  assert all(n >= 3 for n in counts.values()), counts


@pytest.mark.parametrize(
  "target,args,expect", bad_inputs.CASES, ids=[f"{t}:{' '.join(a)[-50:]}" for t, a, _ in bad_inputs.CASES]
)
def test_bad_input_is_one_line_exit_2(outcomes, target, args, expect):
  r = outcomes[(target, tuple(args))]
  lines = r["stderr"].strip().splitlines()
  assert r["code"] == 2 and len(lines) == 1 and "Traceback" not in r["stderr"], r["stderr"][-3000:]
  assert expect in lines[0] and lines[0].startswith(f"{target.removeprefix('launch/')}:"), lines[0]


def test_python_dash_m_matches_the_forked_run():
  """The fork driver is a shortcut: the real `python -m` gives the same line and status."""
  target, args, expect = bad_inputs.CASES[5]  # ffnjax.train --config.train.stepz=5
  code, stderr, _ = bad_inputs._run_subprocess(target, args)
  assert (
    code == 2
    and stderr.strip()
    == "ffnjax.train: unknown config field train.stepz; did you mean train.steps? "
    "(python -m ffnjax.plan --config=... --show_config lists them)"
  ), stderr


def test_verbose_keeps_the_traceback():
  code, stderr, _ = bad_inputs._run_subprocess("ffnjax.data.fixtures", ["--output=/x", "extra", "--verbose"])
  assert code != 0 and "Traceback" in stderr and "UsageError: unexpected arguments" in stderr


def test_every_config_field_has_a_meaning():
  from ffnjax.train import experiment

  text = experiment.describe_config(experiment.default_config())
  assert "(no description)" not in text, [line for line in text.splitlines() if "(no description)" in line]
  fields = {line.split(" = ")[0] for line in text.splitlines()}
  assert fields == set(experiment.field_help())  # and no meaning for a field that is gone


def test_show_config_prints_field_value_meaning():
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "ffnjax.plan",
      "--config=configs/tiny.py:middle_50_tiny_4l",
      "--config.train.steps=7",
      "--show_config",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  assert any(line.startswith("train.steps = 7 ") and "# optimizer steps" in line for line in lines), proc.stdout
  assert any(line.startswith("placement.position = 'middle'") for line in lines)
  assert all(" = " in line and "  # " in line for line in lines)
