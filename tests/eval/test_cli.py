"""The embedded evaluation set and `python -m ffnjax.eval` on a saved tiny checkpoint, end to end offline."""

import json
import os
import re

import jax
import numpy as np
import pytest

from ffnjax.eval import embedded, prepare
from ffnjax.eval import run as evaluate_cli
from ffnjax.train.runconfig import load_tokenizer

TASKS = "lambada_openai,wikitext,hellaswag,zsre"


@pytest.fixture(scope="module")
def embedded_dir():
  return embedded.ensure_embedded()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  from configs import tiny
  from ffnjax import model as model_lib
  from ffnjax.core.placement import LayerPlan
  from ffnjax.data import shakespeare
  from ffnjax.data.tokenizers import train_bpe
  from ffnjax.train import checkpoint
  from ffnjax.train.runconfig import init_run_dir

  root = tmp_path_factory.mktemp("eval_cli")
  data = root / "data"
  os.makedirs(data)
  train_bpe([t[:20_000] for t in list(shakespeare.split()[0].values())[:8]], 300, str(data / "tokenizer.json"))
  config = tiny.get_config("final_50_tiny_4l")
  config.model.update(dict(vocab_size=300, d_model=32, d_ff=64, num_heads=2, ffn_pad_multiple=32))
  config.data.update(dict(tokenizer="bpe:300", path=str(data), seq_len=128))
  plan = LayerPlan.from_config(config)
  run = str(root / "run")
  init_run_dir(run, config, plan)
  params = model_lib.init_params(model_lib.build(config.model, plan), jax.random.key(0))
  mngr = checkpoint.manager(run)
  checkpoint.save(mngr, 7, {"params": params, "opt_state": {"mu": params}}, {"plan": plan.to_json()}, force=True)
  mngr.wait_until_finished()
  return run


def test_embedded_set_is_in_upstream_format(embedded_dir):
  from ffnjax.data import shakespeare
  from ffnjax.eval.tasks import get_task

  counts = json.load(open(os.path.join(embedded_dir, embedded.MANIFEST)))["counts"]
  assert all(counts[f] >= 50 for f in embedded.FILES)
  for name in TASKS.split(","):
    get_task(name).load(embedded_dir)  # the tasks' own field checks
  titles = shakespeare.play_titles()
  train_titles = {titles[k] for k in shakespeare.TRAIN_PLAYS}
  zsre = json.load(open(os.path.join(embedded_dir, "zsre", "zsre_mend_eval.json")))
  assert all(r["answers"][0] in train_titles for r in zsre)
  _, heldout = shakespeare.split()
  for r in zsre[:50]:  # a subject named in a held-out play would leak the answer's ambiguity
    assert r["src"] == f"In which play does the character {r['subject']} appear?"
    assert not any(re.search(rf"\n\n{re.escape(r['subject'].upper())}\.?\n", t) for t in heldout.values())
  for line in open(os.path.join(embedded_dir, "lambada_openai", "test.jsonl")):
    text = json.loads(line)["text"]
    context, word = text.rsplit(" ", 1)
    assert word.isalpha() and re.search(rf"\b{word}\b", context, re.I)
  heldout_text = "\n".join(heldout.values())
  for line in open(os.path.join(embedded_dir, "hellaswag", "validation.jsonl")):
    r = json.loads(line)
    assert len(r["endings"]) == 4 and 0 <= int(r["label"]) < 4 and "[" not in "".join(r["endings"])
    assert r["ctx_a"].split()[-1] in heldout_text


def test_embedded_builders_are_seeded():
  heldout = {
    "p": "SCENE I. A room.\n\nALICE.\nThe lantern shines upon the lantern of the old tower tonight.\n"
    "I see the lantern burning bright above the harbour water.\n\n" * 30
  }
  a = embedded.lambada_passages(heldout, set(), np.random.default_rng(0), min_gap=50)
  assert a == embedded.lambada_passages(heldout, set(), np.random.default_rng(0), min_gap=50)
  assert a != embedded.lambada_passages(heldout, set(), np.random.default_rng(1), min_gap=50)
  assert len(a) > 10 and all(t["text"].startswith(("ALICE", "The", "I see", "SCENE")) for t in a)


@pytest.fixture(scope="module")
def cli_results(run_dir, embedded_dir, tmp_path_factory):
  records = str(tmp_path_factory.mktemp("records") / "records.jsonl")
  # token_budget 1024: rows 8 at length 128 and 16 at 64, so the tasks share compiled shapes
  out = evaluate_cli.run(run_dir, tasks=TASKS, data_dir="embedded", limit=3, records=records, token_budget=1024)
  return out, records


def test_cli_writes_results_and_records(run_dir, cli_results):
  from ffnjax.analysis.results import load_results

  out, records = cli_results
  path = os.path.join(run_dir, "eval", "results.json")
  results = load_results(path)  # the analysis reader accepts it
  raw = json.load(open(path))
  assert raw["model"] == "final_50_tiny_4l" and raw["step"] == 7 and raw["wall_time_s"] > 0
  assert raw["plan"]["layer_types"] == ["deactivated", "deactivated", "expanded", "expanded"]
  assert sorted(results["tasks"]) == sorted(TASKS.split(","))
  for entry in raw["tasks"].values():
    assert entry["num_examples"] == 3 and isinstance(entry["below_chance"], bool)
    assert set(entry["higher_is_better"]) | {m + "_stderr" for m in entry["higher_is_better"]} == set(entry["metrics"])
  assert raw["tasks"]["hellaswag"]["chance"] == 0.25
  assert raw["tasks"]["wikitext"]["metrics"]["word_perplexity_stderr"] is None  # lm-eval has none
  assert raw["tasks"]["wikitext"]["metrics"]["word_perplexity"] > 1
  assert len(open(records).readlines()) == 12
  assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tmp")]  # written atomically


def test_sharded_cli_and_single_device_api_agree(run_dir, embedded_dir, cli_results):
  """The CLI (8-way data-parallel mesh) and the Python API (one device) give the same numbers."""
  from ffnjax.eval import score
  from ffnjax.model import make_logits_fn
  from ffnjax.train.checkpoint import restore_params

  out, _ = cli_results
  params, config, plan = restore_params(run_dir)
  tok = load_tokenizer(config)
  res = score(
    prepare("hellaswag", tok, embedded_dir, limit=3, max_length=128),
    make_logits_fn(config, plan, params),
    token_budget=1024,
  )
  for metric, value in res.metrics.items():
    assert out["tasks"]["hellaswag"]["metrics"][metric] == pytest.approx(value, abs=1e-9, nan_ok=True)


def test_cli_missing_step_names_it(run_dir):
  with pytest.raises(FileNotFoundError, match=r"checkpoint step 999 does not exist; available steps: \[7\]"):
    evaluate_cli.run(run_dir, step=999, tasks="zsre", data_dir="embedded", limit=1)


def test_cli_unknown_task_fails_before_restoring(run_dir):
  with pytest.raises(ValueError, match="unknown eval task 'nope'; valid tasks: lambada_openai"):
    evaluate_cli.run(run_dir, tasks="zsre,nope", data_dir="embedded")
