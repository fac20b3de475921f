"""The packed hidden-state scorer (engine.plan_packed / score_packed) against the logits path, request by request.

A random ffnjax model with the piece tokenizer (vocab ~160, so the vocabulary is cut into several head chunks)
scores every embedded task both ways; truncated (context longer than max_length) and empty-context requests are
included explicitly. Keep masks per row [B, L, 2] give the same numbers as one [L, 2] mask at a time.
"""

import json

import jax
import numpy as np
import pytest

from configs import tiny
from ffnjax import model as model_lib
from ffnjax.core.placement import LayerPlan
from ffnjax.eval import engine, evaluator

MAX_LENGTH = 160  # short enough that many embedded requests are truncated


@pytest.fixture(scope="module")
def models(tok):
  config = tiny.get_config("baseline_tiny_4l")
  config.model.update(dict(vocab_size=tok.vocab_size, d_model=32, d_ff=64, num_heads=4, num_kv_heads=2))
  plan = LayerPlan.from_config(config)
  params = model_lib.init_params(model_lib.build(config.model, plan), jax.random.key(1))
  # larger weights than init, so log-probs differ clearly between tokens and argmax is not a tie
  params = jax.tree.map(lambda p: p * 8.0 if p.ndim > 1 else p, params)
  logits = model_lib.make_logits_fn(config, plan, params, with_keep=True)
  scorer = model_lib.make_scorer(config, plan, params)
  scorer_small_chunks = engine.HiddenScorer(
    scorer.hidden_fn, model_lib.head_from_params(params, False), plan.num_layers, vocab_chunk=48
  )
  return plan, logits, scorer, scorer_small_chunks


def _compare(requests, logits, scorer, max_length=MAX_LENGTH, token_budget=1024):
  old = engine.score_batches(
    engine.plan_batches(requests, max_length, token_budget=token_budget), lambda t: logits(t, None), progress_every_s=-1
  )
  plan = engine.plan_packed(requests, max_length)
  (new,) = engine.score_packed(plan, scorer, token_budget=token_budget, progress_every_s=-1)
  np.testing.assert_allclose(new.ll, old.ll, rtol=2e-5, atol=2e-4)
  np.testing.assert_array_equal(new.num_greedy, old.num_greedy)
  np.testing.assert_array_equal(new.num_tokens, old.num_tokens)
  return plan, old, new


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
  """PIQA, ARC and WinoGrande documents (not in the embedded set) in their upstream formats."""
  root = tmp_path_factory.mktemp("tasks")
  words = "the cat sat on the mat and the king of the play is he which question does she answer".split()
  rng = np.random.RandomState(0)
  text = lambda n: " ".join(rng.choice(words, n))
  files = {
    "piqa/validation.jsonl": [
      {"goal": text(6), "sol1": text(rng.randint(3, 20)), "sol2": text(5), "label": i % 2} for i in range(10)
    ],
    "arc_easy/test.jsonl": [
      {
        "question": text(8),
        "choices": {"text": [text(2), text(3), text(30)], "label": ["A", "B", "C"]},
        "answerKey": "B",
      }
      for _ in range(10)
    ],
    "winogrande/validation.jsonl": [
      {"sentence": text(10) + " _ " + text(12), "option1": text(2), "option2": text(1), "answer": "2"}
      for _ in range(10)
    ],
  }
  for name, records in files.items():
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(root)


@pytest.mark.parametrize("task", ["hellaswag", "piqa", "lambada_openai", "wikitext", "arc_easy", "winogrande", "zsre"])
def test_packed_equals_logits_path_per_request_on_every_task(task, tok, models, small_files):
  plan_, logits, scorer, small = models
  data_dir = small_files if task in ("piqa", "arc_easy", "winogrande") else "embedded"
  prepared = evaluator.prepare(task, tok, data_dir, limit=12, max_length=MAX_LENGTH)
  requests = prepared.encoded.requests
  truncated = sum(len(c) + len(x) > MAX_LENGTH + 1 for c, x in requests)
  packed, old, _ = _compare(requests, logits, small)
  assert packed.num_requests == len(requests) and len(requests) > 0
  if task == "hellaswag":
    assert truncated > 0  # the truncation path is exercised on these
  assert np.isfinite(old.ll).all()


def test_truncated_and_empty_context_requests(tok, models):
  _, logits, scorer, small = models
  cache = {}
  long_ctx = " ".join(["the cat sat on the mat"] * 40)
  pairs = [
    ("", " the king"),
    ("", "hamlet is he"),
    (long_ctx, " and the cat"),
    (long_ctx, " a"),
    (long_ctx, " question of the play is which"),
    ("Question: which king?", " lear"),
    ("Question: which king?", " macbeth of the play"),
    ("   ", " the"),
  ]
  requests = [engine.encode_pair(tok, c, x, cache) for c, x in pairs]
  requests.append(((tok.eot_id,), tuple(range(1, MAX_LENGTH + 1))))  # continuation exactly max_length long
  assert any(len(c) + len(x) > MAX_LENGTH + 1 for c, x in requests)
  for s in (scorer, small):
    _compare(requests, logits, s)


def test_shared_contexts_run_once_and_padding_is_small():
  rng = np.random.RandomState(0)
  requests, expected = [], 0
  for _ in range(60):  # documents: a 30-60 token context and four 3-20 token endings
    ctx = tuple(rng.randint(1, 100, rng.randint(30, 60)))
    conts = [tuple(rng.randint(1, 100, rng.randint(3, 20))) for _ in range(4)]
    requests += [(ctx, c) for c in conts]
    expected += len(ctx) - 1 + sum(len(c) for c in conts)  # the context (but its last token) once
  long_ctx = tuple(range(1, 300))  # truncated at max_length 256: each request has its own window, no sharing
  requests += [(long_ctx, (5, 6)), (long_ctx, (7,))]
  expected += 2 * 256
  plan = engine.plan_packed(requests, 256)
  assert plan.real_tokens == expected
  assert plan.request_tokens == sum(min(len(c) + len(x), 257) - 1 for c, x in requests)
  assert plan.real_tokens < 0.6 * plan.request_tokens
  assert plan.padded_fraction < 0.10


def test_keep_masks_per_row_equal_one_mask_at_a_time(tok, models):
  plan_, logits, scorer, _ = models
  prepared = evaluator.prepare("hellaswag", tok, "embedded", limit=6, max_length=MAX_LENGTH)
  packed = engine.plan_packed(prepared.encoded.requests, MAX_LENGTH)
  rng = np.random.RandomState(0)
  masks = (rng.rand(5, plan_.num_layers, 2) > 0.4).astype(np.float32)
  together = engine.score_packed(packed, scorer, masks, token_budget=4 * MAX_LENGTH, progress_every_s=-1)
  for k, mask in enumerate(masks):
    (alone,) = engine.score_packed(packed, scorer, mask[None], token_budget=4 * MAX_LENGTH, progress_every_s=-1)
    np.testing.assert_allclose(together[k].ll, alone.ll, rtol=1e-6, atol=1e-5)
    old = engine.score_batches(prepared.plan(1024), lambda t, m=mask: logits(t, m), progress_every_s=-1)
    np.testing.assert_allclose(together[k].ll, old.ll, rtol=2e-5, atol=2e-4)
  assert not np.allclose(together[0].ll, together[1].ll)
