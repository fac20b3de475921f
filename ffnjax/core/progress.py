"""Progress of long work: the one ETA arithmetic and duration format of every progress line (training steps,
study runs, Shapley coalitions, downloads). JAX-free.

The rate is measured from `restart()` (or construction), so work that should not count (a compile, runs already
done by an earlier invocation) can be left out of it.
"""

from __future__ import annotations

import time


def format_duration(seconds: float) -> str:
  """`3m10s`, `1h05m`; `?` when unknown (NaN)."""
  if seconds != seconds:
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Eta:
  """Elapsed time, rate and time left of `total` units of work (steps, runs, coalitions, bytes)."""

  def __init__(self, total: float = 0):
    self.total = total
    self.restart()

  def restart(self, done: float = 0) -> None:
    """Measures from now, counting `done` units as already finished (they are not part of the rate)."""
    self._t0, self._done0 = time.perf_counter(), done

  def elapsed(self) -> float:
    return time.perf_counter() - self._t0

  def rate(self, done: float) -> float:
    """Units per second since `restart()`; NaN before any."""
    elapsed, units = self.elapsed(), done - self._done0
    return units / elapsed if units > 0 and elapsed > 0 else float("nan")

  def seconds_left(self, done: float, remaining: float | None = None) -> float:
    """Time for `remaining` more units (default: total - done) at the current rate; NaN while unknown."""
    remaining = self.total - done if remaining is None else remaining
    return remaining / self.rate(done) if remaining > 0 else 0.0

  def text(self, done: float, remaining: float | None = None) -> str:
    return f"ETA {format_duration(self.seconds_left(done, remaining))}"
