"""A disk cache of coalition values, so an interrupted analysis resumes without re-evaluating.

Append-only JSONL. The first line is a header {"num_players": n, "meta": {...}} (meta: what the values are of,
e.g. model, task, metric, player labels); every other line is {"key": "0110...", "value": float}, where
character i of the key is "1" when player i is kept. A record may carry more fields (`put_many(..., extras=)`;
the per-task games store {"tasks": {task: value}, "examples": {task: [per-example scores]}, "gold": {task: {"ll":
[...], "tokens": [...]}}}); those named in `fields` are held in memory and returned by `extra`, the others stay on
disk only. Reopening with a different num_players or meta is an error:
values of another game must never be reused. A last line cut by a crash is dropped on open. One writer at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from ffnjax.core import rundir
from ffnjax.shapley.game import BatchValueFn, ValueFn, evaluate
from ffnjax.shapley.players import Coalition, check_coalition

# Coalitions scored per batched call and written to the cache together: large enough that a call batches many
# coalitions per forward pass and shares prefixes among them, small enough that an interruption loses little.
CHUNK = 64


class CoalitionCache:
  def __init__(self, path: str, num_players: int, meta: Mapping | None = None, fields: Sequence[str] = ()):
    if not isinstance(num_players, int) or num_players < 1:
      raise ValueError(f"num_players={num_players!r}: must be an integer >= 1")
    self.path, self.num_players = path, num_players
    self.meta = json.loads(json.dumps(dict(meta or {})))  # normalised as JSON round-trips it (tuples -> lists)
    self._values: dict[str, float] = {}
    self.fields = tuple(fields)
    self._extras: dict[str, dict] = {}
    data = rundir.read_bytes(path, default=b"")
    if data:
      self._load(data)
    else:
      rundir.write_text(path, json.dumps({"num_players": num_players, "meta": self.meta}) + "\n")
    self._out = rundir.Appender(path)  # local: appended and fsynced; gs://: one object rewritten per batch

  def _load(self, data: bytes) -> None:
    if not data.endswith(b"\n"):  # an interrupted append: drop the partial line so the next one starts clean
      data = data[: data.rfind(b"\n") + 1]
      rundir.write_bytes(self.path, data)
    lines = data.decode().splitlines()
    if not lines:
      raise ValueError(f"{self.path}: coalition cache has no header line")
    header = json.loads(lines[0])
    if header.get("num_players") != self.num_players:
      raise ValueError(
        f"{self.path}: cache holds num_players={header.get('num_players')}, "
        f"this game has {self.num_players}; use another cache path"
      )
    if header.get("meta", {}) != self.meta:
      raise ValueError(
        f"{self.path}: cache meta {header.get('meta')} differs from this game's {self.meta}; use another cache path"
      )
    for n, line in enumerate(lines[1:], start=2):
      rec = json.loads(line)
      if len(rec["key"]) != self.num_players:
        raise ValueError(f"{self.path}:{n}: key of length {len(rec['key'])}, expected {self.num_players}")
      self._values[rec["key"]] = float(rec["value"])
      if self.fields:
        self._extras[rec["key"]] = {f: rec[f] for f in self.fields if f in rec}

  def key(self, coalition: Iterable[int]) -> str:
    coalition = check_coalition(coalition, self.num_players)
    return "".join("1" if i in coalition else "0" for i in range(self.num_players))

  def __len__(self) -> int:
    return len(self._values)

  def __contains__(self, coalition) -> bool:
    return self.key(coalition) in self._values

  def get(self, coalition, default=None):
    return self._values.get(self.key(coalition), default)

  def extra(self, coalition) -> dict | None:
    """The record's fields named in `fields` (None when the coalition is not cached)."""
    return self._extras.get(self.key(coalition)) if self.fields else None

  def put_many(self, items: Mapping[Coalition, float], extras: Mapping[Coalition, Mapping] | None = None) -> None:
    """Appends and flushes: whatever was written survives an interruption."""
    lines = []
    for coalition, value in items.items():
      k = self.key(coalition)
      if k not in self._values:
        self._values[k] = float(value)
        more = dict((extras or {}).get(coalition, {}))
        if self.fields:
          self._extras[k] = {f: more[f] for f in self.fields if f in more}
        lines.append(json.dumps({"key": k, "value": float(value), **more}) + "\n")
    if lines:
      self._out.write("".join(lines))

  def put(self, coalition, value: float) -> None:
    self.put_many({check_coalition(coalition, self.num_players): value})


class CachedValue:
  """v with a disk cache in front; `batch` evaluates only the coalitions the cache lacks, `chunk` per call of the
  batch form, and writes each chunk as soon as it is scored (an interruption loses at most one chunk)."""

  def __init__(self, v: ValueFn, cache: CoalitionCache, v_batch: BatchValueFn | None = None, chunk: int = CHUNK):
    self.v, self.cache, self.v_batch, self.chunk = v, cache, v_batch, chunk
    self.hits = self.evaluated = 0

  def batch(self, coalitions: Sequence[Iterable[int]]) -> list[float]:
    coalitions = [check_coalition(c, self.cache.num_players) for c in coalitions]
    missing = [c for c in dict.fromkeys(coalitions) if c not in self.cache]
    self.hits += len(set(coalitions)) - len(missing)
    inner = self.v_batch or getattr(self.v, "batch", None)
    for start in range(0, len(missing), self.chunk):
      values = evaluate(self.v, missing[start : start + self.chunk], self.cache.num_players, v_batch=inner)
      self.evaluated += len(values)
      self.cache.put_many(values)
    return [self.cache.get(c) for c in coalitions]

  def __call__(self, coalition: Iterable[int]) -> float:
    return self.batch([coalition])[0]


def cached(v: ValueFn, cache: CoalitionCache, v_batch: BatchValueFn | None = None, chunk: int = CHUNK) -> CachedValue:
  return CachedValue(v, cache, v_batch, chunk)
