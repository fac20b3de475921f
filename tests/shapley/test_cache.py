import itertools
import json

import pytest

from ffnjax.shapley import CoalitionCache, cached, exact_shapley, single_ablation


class Counter:
  def __init__(self):
    self.seen = []

  def __call__(self, coalition):
    self.seen.append(coalition)
    return float(len(coalition) ** 2)


def test_resume_does_not_re_evaluate(tmp_path):
  path = str(tmp_path / "cache.jsonl")
  meta = {"task": "piqa", "players": ["L1.attn", "L1.ffn", "L2.attn", "L2.ffn"]}
  first = Counter()
  v1 = cached(first, CoalitionCache(path, 4, meta))
  ablation = single_ablation(v1, 4)  # "interrupted" after 5 coalitions
  assert len(first.seen) == 5

  second = Counter()  # a new process: a fresh cache object and value function
  v2 = cached(second, CoalitionCache(path, 4, meta))
  phi = exact_shapley(v2, 4)
  assert len(second.seen) == 16 - 5 and not set(second.seen) & set(first.seen)
  assert v2.hits == 5 and v2.evaluated == 11

  third = Counter()
  v3 = cached(third, CoalitionCache(path, 4, meta))
  assert list(exact_shapley(v3, 4)) == list(phi) and third.seen == []
  assert single_ablation(v3, 4).full == ablation.full


def test_batch_hook_gets_only_missing_coalitions_in_one_call(tmp_path):
  calls = []

  def v_batch(coalitions):
    calls.append(list(coalitions))
    return [float(len(c)) for c in coalitions]

  cache = CoalitionCache(str(tmp_path / "c.jsonl"), 3)
  cache.put(frozenset({0, 1, 2}), 3.0)
  v = cached(lambda c: pytest.fail("the batch hook should be used"), cache, v_batch=v_batch)
  single_ablation(v, 3)
  assert calls == [[frozenset({1, 2}), frozenset({0, 2}), frozenset({0, 1})]]


def test_file_format_and_truncated_last_line(tmp_path):
  path = tmp_path / "c.jsonl"
  cache = CoalitionCache(str(path), 3, {"m": 1})
  cache.put({0, 2}, 0.5)
  lines = path.read_text().splitlines()
  assert json.loads(lines[0]) == {"num_players": 3, "meta": {"m": 1}}
  assert json.loads(lines[1]) == {"key": "101", "value": 0.5}
  with open(path, "a") as f:
    f.write('{"key": "111", "val')  # a crash mid-append
  reopened = CoalitionCache(str(path), 3, {"m": 1})
  assert len(reopened) == 1 and frozenset({0, 1, 2}) not in reopened
  reopened.put({0, 1, 2}, 1.0)
  assert CoalitionCache(str(path), 3, {"m": 1}).get({0, 1, 2}) == 1.0


def test_refuses_another_games_cache(tmp_path):
  path = str(tmp_path / "c.jsonl")
  CoalitionCache(path, 3, {"task": "piqa"})
  with pytest.raises(ValueError, match="meta .* differs"):
    CoalitionCache(path, 3, {"task": "arc_easy"})
  with pytest.raises(ValueError, match="num_players=3, this game has 4"):
    CoalitionCache(path, 4, {"task": "piqa"})
  with pytest.raises(ValueError, match=r"player indices \['3'\]"):
    CoalitionCache(path, 3, {"task": "piqa"}).put({3}, 1.0)


def test_cache_on_gcs_survives_reopening(gcs_bucket):
  path = f"{gcs_bucket}/shapley/coalitions.jsonl"
  cache = CoalitionCache(path, 3, meta={"task": "piqa"})
  cache.put_many({frozenset({0}): 0.5, frozenset({0, 1}): 0.75})
  cache.put(frozenset(), 0.25)
  again = CoalitionCache(path, 3, meta={"task": "piqa"})
  assert len(again) == 3 and again.get(frozenset({0, 1})) == 0.75 and again.get(frozenset()) == 0.25


def test_each_chunk_is_written_once_scored_and_a_resume_skips_it(tmp_path):
  """A run killed mid-way (here: the evaluation raises in its third chunk) keeps every chunk scored before; the
  resumed run evaluates only the rest. Both the plain cached value and the per-task games write per chunk."""
  from ffnjax.shapley.pertask import CACHE_FIELDS, TaskGames

  coalitions = [frozenset(c) for c in itertools.combinations(range(6), 3)]  # 20 coalitions: chunks of 4
  calls = []

  def evaluate(part, fail_on=None):
    calls.append(list(part))
    if len(calls) == fail_on:
      raise KeyboardInterrupt("killed")
    return [{"t": (float(sum(c)), [1, 0])} for c in part]

  path = str(tmp_path / "tasks.jsonl")
  games = TaskGames(
    lambda part: evaluate(part, fail_on=3), ["t"], CoalitionCache(path, 6, fields=CACHE_FIELDS), chunk=4
  )
  with pytest.raises(KeyboardInterrupt):
    games.task("t").batch(coalitions)
  lines = open(path).read().splitlines()
  assert len(lines) == 1 + 8 and len(calls) == 3  # the header and the two chunks scored before the kill
  calls.clear()
  resumed = TaskGames(evaluate, ["t"], CoalitionCache(path, 6, fields=CACHE_FIELDS), chunk=4)
  assert resumed.task("t").batch(coalitions) == [float(sum(c)) for c in coalitions]
  assert [c for part in calls for c in part] == coalitions[8:] and resumed.evaluated == 12

  def v_batch(part):
    calls.append(list(part))
    if len(calls) == 2:
      raise KeyboardInterrupt("killed")
    return [float(len(c)) for c in part]

  calls.clear()
  plain = str(tmp_path / "plain.jsonl")
  with pytest.raises(KeyboardInterrupt):
    cached(lambda c: 0.0, CoalitionCache(plain, 6), v_batch=v_batch, chunk=5).batch(coalitions)
  assert len(open(plain).read().splitlines()) == 1 + 5
  again = cached(lambda c: 0.0, CoalitionCache(plain, 6), v_batch=lambda part: [3.0] * len(part), chunk=5)
  assert again.batch(coalitions) == [3.0] * 20 and again.hits == 5 and again.evaluated == 15
