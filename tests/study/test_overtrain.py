"""Over-training study: a longer token budget starts from the shorter budget's pre-decay WSD checkpoint."""

import json
import os

from configs import study as study_configs
from ffnjax.core import studygrid
from ffnjax.study.runner import extend_from_shorter_budget
from ffnjax.train import checkpoint as ckpt
from ffnjax.train.loop import train


def test_longer_budget_extends_the_pre_decay_checkpoint(tmp_path):
  study = study_configs.get_config("smoke")
  study.positions, study.ratios, study.budgets = "final", "50", "0.001,0.002"  # 6 and 11 steps of tiny_4l
  runs = studygrid.expand_grid(study)
  names = [r.name for r in runs]
  assert names == [
    "baseline_tiny_4l_0.001x",
    "final_50_tiny_4l_0.001x",
    "baseline_tiny_4l_0.002x",
    "final_50_tiny_4l_0.002x",
  ]
  short, long = runs[0], runs[2]
  assert studygrid.shorter_budget_run(runs, long) == short and studygrid.shorter_budget_run(runs, short) is None
  short_cfg, long_cfg = studygrid.build_run_config(short), studygrid.build_run_config(long)
  assert (short_cfg.train.steps, short_cfg.train.keep_every, long_cfg.train.steps) == (6, 5, 11)
  short_dir, long_dir = str(tmp_path / short.name), str(tmp_path / long.name)
  train(short_cfg, short_dir, log=False)
  assert 5 in ckpt.steps(short_dir)  # the pre-decay step (decay starts at round(0.9 * 6) = 5) is kept
  source = extend_from_shorter_budget(str(tmp_path), runs, long, long_dir)
  assert source == os.path.join(short_dir, "checkpoints", "5") and ckpt.steps(long_dir) == [5]
  train(long_cfg, long_dir, log=False)
  with open(os.path.join(long_dir, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f if '"loss"' in line]
  assert steps[0] > 5 and steps[-1] == 11  # resumed after step 5, not from scratch
  assert extend_from_shorter_budget(str(tmp_path), runs, long, long_dir) is None  # it has checkpoints now
