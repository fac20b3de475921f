"""One real (smoke) study per test session, shared by the notebook and interactive-model tests.

`configs/study.py:smoke`: a 4-layer baseline plus first_50 and final_50, 6 training steps each, evaluated on
8 documents per task, analysed (report.md, figures/), with per-document records (RUN/eval/records.jsonl) for
every run, as the study runner writes them.
"""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASELINE = "baseline_tiny_4l"
RUNS = (BASELINE, "first_50_tiny_4l", "final_50_tiny_4l")


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
  from configs import study as study_configs
  from ffnjax.study.runner import run_study

  study = study_configs.get_config("smoke")
  study.config_file = os.path.join(REPO, study.config_file)  # independent of the working directory
  workdir = str(tmp_path_factory.mktemp("notebooks") / "study")
  run_study(study, workdir, log=lambda message: None)
  return workdir
