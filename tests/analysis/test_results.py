import json
import math

import pytest

from ffnjax.analysis import AnalysisError, load_results, make_results, task_entry, write_results


def test_round_trip_and_defaults(tmp_path):
  tasks = {
    "hellaswag": task_entry({"acc": 0.3, "acc_stderr": 0.01, "acc_norm": 0.35}, chance=0.25, num_examples=10),
    "wikitext": task_entry({"word_perplexity": 31.0, "bits_per_byte": 0.9}, chance=None, num_examples=3),
  }
  results = make_results(
    "final_50_tiny_4l", {"name": "final_50_tiny_4l", "num_layers": 4}, tasks, seed=1, wall_time_s=2.5
  )
  path = str(tmp_path / "eval" / "results.json")
  write_results(path, results)
  loaded = load_results(path)
  assert loaded == results
  assert loaded["tasks"]["hellaswag"]["higher_is_better"] == {"acc": True, "acc_norm": True}  # no "acc_stderr"
  assert loaded["tasks"]["wikitext"]["higher_is_better"] == {"word_perplexity": False, "bits_per_byte": False}


def test_non_finite_metrics_are_written_as_null_and_read_back(tmp_path):
  tasks = {"lambada_openai": task_entry({"acc": 0.0, "perplexity": math.inf}, chance=None, num_examples=5)}
  path = str(tmp_path / "results.json")
  write_results(path, make_results("m", {}, tasks))
  with open(path) as f:
    assert json.load(f)["tasks"]["lambada_openai"]["metrics"]["perplexity"] is None
  assert load_results(path)["tasks"]["lambada_openai"]["metrics"]["perplexity"] is None


@pytest.mark.parametrize(
  "mutate, message",
  [
    (lambda r: r.pop("model"), "field 'model'"),
    (lambda r: r.update(tasks=[]), "field 'tasks'"),
    (lambda r: r["tasks"]["piqa"]["metrics"].update(acc="high"), r"tasks.piqa.metrics.acc must be a number"),
    (lambda r: r["tasks"]["piqa"].update(chance=2.0), r"tasks.piqa.chance must be null or a number in \[0, 1\]"),
    (lambda r: r.update(format_version=7), "format_version=7"),
  ],
)
def test_malformed_results_name_the_field(tmp_path, mutate, message):
  results = make_results("m", {}, {"piqa": task_entry({"acc": 0.6}, chance=0.5, num_examples=1)})
  mutate(results)
  path = tmp_path / "results.json"
  path.write_text(json.dumps(results))
  with pytest.raises(AnalysisError, match=message):
    load_results(str(path))


def test_higher_is_better_for_unknown_metric_is_an_error():
  with pytest.raises(AnalysisError, match=r"higher_is_better names metrics \['f1'\]"):
    task_entry({"acc": 0.5}, chance=0.5, num_examples=1, higher_is_better={"f1": True})
