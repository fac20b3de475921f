"""The one ETA arithmetic and duration format of the progress lines."""

import math

from ffnjax.core import progress


def test_format_duration():
  assert progress.format_duration(190) == "3m10s"
  assert progress.format_duration(3900) == "1h05m"
  assert progress.format_duration(float("nan")) == "?"


def test_eta_counts_only_work_since_restart(monkeypatch):
  now = [100.0]
  monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
  eta = progress.Eta(total=100)
  assert math.isnan(eta.rate(0)) and eta.text(0) == "ETA ?"
  now[0] += 30.0  # e.g. compiling: restart leaves it out of the rate
  eta.restart(done=10)
  now[0] += 10.0
  assert eta.rate(30) == 2.0  # 20 units in 10 s
  assert eta.seconds_left(30) == 35.0  # 70 left at 2/s
  assert eta.seconds_left(30, remaining=4) == 2.0
  assert eta.text(30) == "ETA 0m35s" and eta.seconds_left(100) == 0.0
