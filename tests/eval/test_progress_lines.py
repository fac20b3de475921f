"""The scoring progress line (evaluator and Shapley coalitions): first after a few seconds, then every `every_s`,
with the request count, the token rate and the ETA; silent with every_s < 0."""

import time

from ffnjax.eval import engine


def test_first_line_after_a_few_seconds_then_periodic_with_rate_and_eta(monkeypatch, capsys):
  clock = [1000.0]
  monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
  progress = engine._Progress("hellaswag", 100, every_s=30.0)
  clock[0] += 2
  progress.update(10, 1000)
  assert capsys.readouterr().err == ""  # before FIRST_S
  clock[0] += 4
  progress.update(10, 1000)  # 20 of 100 in 6 s: 2000 tokens / 6 s, 80 requests left at 20 / 6 s
  assert capsys.readouterr().err == "hellaswag: 20/100 requests scored | 333 tokens/s | ETA 0m24s\n"
  clock[0] += 10
  progress.update(10, 1000)
  assert capsys.readouterr().err == ""  # the next line is due every_s after the last one
  clock[0] += 20
  progress.update(10, 1000)
  assert capsys.readouterr().err.startswith("hellaswag: 40/100 requests scored | 111 tokens/s | ETA 0m54s")


def test_negative_interval_is_silent(monkeypatch, capsys):
  clock = [0.0]
  monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
  progress = engine._Progress("", 10, every_s=-1)
  clock[0] += 100
  progress.update(5, 50)
  progress.update(0, 0, final=True)
  assert capsys.readouterr().err == ""
