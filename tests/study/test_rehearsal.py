"""The rehearsal study: the paper's code path end to end at CI size (configs/study.py:rehearsal).

GPT-2 tokenizer, FineWeb-Edu-format parquet through data.prepare, the 8 lm-eval tasks + zsRE from upstream-format
fixture files, Table 1/2 analyses with the family chance rule, report.md in the paper's layouts with Figures 4 and 5.
The study directory is a gs:// bucket on the GCS emulator (tests/conftest.py), as on a pod; FFNJAX_REHEARSAL_STUDY
overrides it (any etils.epath URL or a local directory).
"""

import json
import os
import subprocess
import sys
import time

from etils import epath

from configs import paper as paper_configs
from ffnjax.analysis.ri import PAPER_LABELS, TABLE2_TASKS
from ffnjax.data import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = ["baseline_rehearsal_4l", "first_50_rehearsal_4l", "middle_50_rehearsal_4l", "final_50_rehearsal_4l"]


def test_rehearsal_study_end_to_end(tmp_path, gcs_bucket):
  data = tmp_path / "data"
  eval_dir = str(data / "eval")
  fixtures.write_eval(eval_dir, n=6)
  parquet = fixtures.write_fineweb_edu(str(data / "fineweb-edu" / "sample-fixture"), documents=200)
  study = epath.Path(os.environ.get("FFNJAX_REHEARSAL_STUDY") or f"{gcs_bucket}/rehearsal")
  env = {**os.environ, "FFNJAX_CACHE": str(tmp_path / "cache"), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  start = time.perf_counter()
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "ffnjax.study",
      "--config=configs/study.py:rehearsal",
      f"--workdir={study}",
      f"--config.overrides.data.input={parquet}",
      f"--config.overrides.eval.data_dir={eval_dir}",
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  print(f"rehearsal wall time {time.perf_counter() - start:.0f} s")
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Training data: FineWeb-Edu parquet prepared with the GPT-2 BPE.
  manifests = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("manifest.json")]
  prepared = [m for m in manifests if m.get("recipe", {}).get("source") == "fineweb_edu"]
  assert prepared and all(m["tokenizer"] == "gpt2" and m["num_tokens"] > 0 for m in prepared)
  # Every run evaluated the paper's 8 lm-eval tasks + zsRE on the fixture files.
  for run in RUNS:
    results = json.loads((study / run / "eval" / "results.json").read_text())
    assert set(results["tasks"]) == set(paper_configs.PAPER_EVAL_TASKS.split(","))
    assert all(t["num_examples"] == 6 for t in results["tasks"].values())
  report = (study / "report.md").read_text()
  header = "| Model | " + " | ".join(PAPER_LABELS[t] for t in TABLE2_TASKS) + " | Avg |"
  for section in (
    "### Table 1: top 5 configurations by average RI (%)",
    "### Table 2: RI (%) per task and average, every configuration",
  ):
    body = report.split(section)[1].split("###")[0]
    assert header in body and all(run in body for run in RUNS[1:])
  assert "Chance rule: `family`" in report
  for figure in ("ri_vs_ratio_rehearsal_4l", "importance_rehearsal_4l"):
    assert f"(figures/{figure}.png)" in report and (study / "figures" / f"{figure}.png").exists()
  assert "Figure 4: RI vs ratio" in report and "Figure 5: layer importance" in report
