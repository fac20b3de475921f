"""Paper presets and the study preflight: a study that would fail after training fails first, within seconds."""

import os
import subprocess
import sys
import time

import pytest

from configs import paper as paper_configs
from configs import study as study_configs
from ffnjax.core import studygrid
from ffnjax.core.config import ConfigError
from ffnjax.study.runner import preflight
from ffnjax.train import experiment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_TASKS = {"wikitext", "lambada_openai", "arc_easy", "arc_challenge", "winogrande", "piqa", "hellaswag", "zsre"}


def test_paper_configs_evaluate_the_papers_tasks_and_refuse_embedded_data():
  config = paper_configs.get_config("middle_70_285m_12l")
  assert set(config.eval.tasks.split(",")) == PAPER_TASKS and config.eval.data_dir == "data/eval"
  config.eval.data_dir = "embedded"
  with pytest.raises(ConfigError, match="eval.data_dir='embedded' holds Shakespeare stand-ins"):
    experiment.validate(config)


def test_paper_1b_trains_the_70_percent_placements_and_overtraining_budgets():
  names = [r.name for r in studygrid.expand_grid(study_configs.get_config("paper_1b_40l"))]
  assert names == ["baseline_1b_40l", "first_70_1b_40l", "middle_70_1b_40l", "final_70_1b_40l"]
  assert study_configs.get_config("paper_1b_40l").analysis_tasks == "table2"
  study = study_configs.get_config("overtrain_285m_12l")
  runs = studygrid.expand_grid(study)
  assert len(runs) == 16 and runs[4].name == "baseline_285m_12l_2x"
  steps = {r.name: dict(r.overrides)["train.steps"] for r in runs}
  # 20 tokens per non-embedding parameter: 1x = ceil(20 * N / (288 * 1024)) steps; 8x is 8 times the tokens.
  config = studygrid.build_run_config(runs[0])
  n = experiment.validate(config).param_count(non_embedding=True)
  assert steps["baseline_285m_12l_1x"] == -(-20 * n // (288 * 1024))
  assert abs(steps["final_70_285m_12l_8x"] - 8 * steps["final_70_285m_12l_1x"]) <= 8
  assert config.train.schedule == "wsd" and config.placement.budget == "1x"


def test_preflight_names_every_missing_path_before_training(tmp_path):
  eval_dir = tmp_path / "eval"
  (eval_dir / "piqa").mkdir(parents=True)
  (eval_dir / "piqa" / "validation.jsonl").write_text('{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n')
  study = study_configs.get_config("paper_285m_12l")
  study.overrides.eval.data_dir = str(eval_dir)
  study.overrides.data.input = str(tmp_path / "fineweb")
  problems = preflight(study, studygrid.expand_grid(study))
  missing = [p for p in problems if p.startswith("eval task")]
  assert len(missing) == 7 and not any("piqa" in p for p in missing)
  assert f"missing {eval_dir}/zsre/zsre_mend_eval.jsonl" in "\n".join(missing)
  assert any(p.startswith(f"training data: data.input: {tmp_path / 'fineweb'} does not exist") for p in problems)
  # An analysis set naming a task or metric that is not evaluated.
  study.analysis_tasks = "winogrande:acc_norm,boolq:acc"
  study.overrides.eval.tasks = "winogrande,piqa"
  problems = preflight(study, studygrid.expand_grid(study))
  assert any("reports only ['acc']" in p for p in problems)
  assert any("needs boolq:acc, but eval.tasks='winogrande,piqa' does not evaluate boolq" in p for p in problems)


def test_study_cli_fails_fast_with_exit_2(tmp_path):
  workdir = tmp_path / "study"
  start = time.perf_counter()
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "ffnjax.study",
      "--config=configs/study.py:paper_285m_12l",
      f"--workdir={workdir}",
      f"--config.overrides.eval.data_dir={tmp_path / 'nowhere'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  elapsed = time.perf_counter() - start
  assert proc.returncode == 2, proc.stderr
  assert "nothing was trained. Fix these 10 problem(s)" in proc.stderr and "Traceback" not in proc.stderr
  assert f"eval.data_dir={tmp_path / 'nowhere'}: no such directory" in proc.stderr
  assert not workdir.exists() and elapsed < 60
