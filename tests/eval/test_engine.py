"""The engine against a naive one-request-at-a-time lm-eval reference: same LL and is_greedy, whatever the batching."""

import jax
import numpy as np
import pytest
from lm_helpers import naive_logprobs, random_lm

from ffnjax.eval import engine


def naive_request(logits_fn, tok, context, continuation, max_len):
  """lm-eval HFLM.loglikelihood for one request, written out plainly: no padding, no batching."""
  if context == "":
    ctx, cont = [tok.eot_id], tok.encode(continuation)
  else:
    n = len(context) - len(context.rstrip())
    if n:
      context, continuation = context[:-n], context[-n:] + continuation
    whole, ctx = tok.encode(context + continuation), tok.encode(context)
    cont = whole[len(ctx) :]
  seq = (ctx + cont)[-(max_len + 1) :]
  inp, targets = seq[:-1], seq[1:]
  logp = naive_logprobs(logits_fn, inp)[len(inp) - len(cont) :]
  wanted = targets[len(targets) - len(cont) :]
  ll = float(sum(logp[i, t] for i, t in enumerate(wanted)))
  return ll, all(int(np.argmax(logp[i])) == t for i, t in enumerate(wanted))


LONG = "the cat sat on the mat and " * 12
REQUESTS = [
  ("Question: which king is in the play?\nAnswer:", " Lear"),
  ("Question: which king is in the play?\nAnswer:", " Hamlet of Denmark"),
  ("the cat sat on the ", "mat"),  # trailing space moves to the continuation
  ("the cat sat on the  ", " mat"),
  ("", "the cat sat on the mat"),  # empty context -> end-of-text
  (LONG, " the mat"),  # longer than max_len: truncated from the left
  (LONG + "she", " sat on the mat and the king is in the play"),
  ("a", " b"),
  ("He is", " the king of the play, and she is the queen of the play; the cat"),  # fills max_len
]


def test_matches_naive_reference(tok, lm):
  max_len = 24
  got = engine.loglikelihood(lm, tok, REQUESTS, max_length=max_len, token_budget=48)
  for (ctx, cont), (ll, greedy) in zip(REQUESTS, got):
    want_ll, want_greedy = naive_request(lm, tok, ctx, cont, max_len)
    assert ll == pytest.approx(want_ll, rel=1e-5, abs=1e-4), (ctx, cont)
    assert greedy == want_greedy, (ctx, cont)


def test_is_greedy_true_for_the_models_own_continuation(tok, lm):
  """Random continuations are never greedy; the model's own greedy continuation always is."""
  ctx = tok.encode("the king is in the play")
  seq = list(ctx)
  for _ in range(5):
    seq.append(int(np.argmax(naive_logprobs(lm, seq)[-1])))
  greedy_cont = tuple(seq[len(ctx) :])
  wrong = greedy_cont[:-1] + ((greedy_cont[-1] + 1) % tok.vocab_size,)  # only the last token is off
  plan = engine.plan_batches([(tuple(ctx), greedy_cont), (tuple(ctx), wrong)], 32)
  scores = engine.score_batches(plan, lm, keep_greedy_tokens=True)
  assert scores.is_greedy.tolist() == [True, False]
  assert scores.num_greedy.tolist() == [5, 4]
  assert scores.greedy_tokens[0].tolist() == list(greedy_cont)


def test_encode_pair_rules(tok):
  cache = {}
  # trailing whitespace: "the cat sat on the " + "mat" is scored as "the cat sat on the" + " mat"
  assert engine.encode_pair(tok, "the cat sat on the ", "mat", cache) == (
    tuple(tok.encode("the cat sat on the")),
    tuple(tok.encode(" mat")),
  )
  assert "the cat sat on the" in cache  # the context is encoded once per distinct context
  assert engine.encode_pair(tok, "", " mat") == ((tok.eot_id,), tuple(tok.encode(" mat")))
  # cont = whole[len(enc(ctx)):], not enc(cont): a piece merged across the boundary ("the ca|t") shifts it,
  # exactly as in lm-eval
  whole = tok.encode("the cat sat on the mat")
  ctx, cont = engine.encode_pair(tok, "the ca", "t sat on the mat")
  assert ctx == tuple(tok.encode("the ca")) and len(ctx) == 4  # "the", " ", "c", "a"
  assert cont == tuple(whole[4:]) == tuple(tok.encode(" the mat"))
  assert cont != tuple(tok.encode("t sat on the mat"))


def test_rolling_windows_match_lm_eval_examples():
  # lm-eval's tests/test_utils.py: 34 tokens, max_seq_len 10, context_len 1
  x = list(range(34))
  assert engine.rolling_token_windows(x, -100, 10, 1) == [
    ([-100, 0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ([9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]),
    ([19, 20, 21, 22, 23, 24, 25, 26, 27, 28], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]),
    ([23, 24, 25, 26, 27, 28, 29, 30, 31, 32], [30, 31, 32, 33]),
  ]
  assert engine.rolling_token_windows(x, -100, 10, 8)[:3] == [
    ([-100, 0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ([2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [10, 11, 12]),
    ([5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [13, 14, 15]),
  ]
  assert engine.make_disjoint_window(([1, 2, 3, 4, 5], [4, 5, 6])) == ((1, 2, 3), (4, 5, 6))
  assert engine.rolling_token_windows([], 0, 10) == []


@pytest.mark.parametrize("n", [1, 7, 8, 9, 30])
def test_rolling_ll_scores_every_token_once(tok, lm, n):
  """Every token is predicted exactly once, from at most max_len tokens of context, the first from EOT."""
  max_len = 8
  tokens = list(np.random.default_rng(n).integers(0, tok.vocab_size - 1, n))
  windows = engine.rolling_requests(tokens, tok.eot_id, max_len)
  assert [t for _, cont in windows for t in cont] == tokens
  assert windows[0][0] == (tok.eot_id,)
  for ctx, cont in windows:
    assert len(ctx) + len(cont) <= max_len + 1
  # naive: each window is one plain request
  want = sum(naive_request_tokens(lm, ctx, cont, max_len) for ctx, cont in windows)
  plan = engine.plan_batches(windows, max_len, token_budget=16)
  assert float(engine.score_batches(plan, lm).ll.sum()) == pytest.approx(want, rel=1e-5, abs=1e-4)


def naive_request_tokens(logits_fn, ctx, cont, max_len):
  seq = (list(ctx) + list(cont))[-(max_len + 1) :]
  logp = naive_logprobs(logits_fn, seq[:-1])
  return float(sum(logp[len(seq) - 1 - len(cont) + i, t] for i, t in enumerate(cont)))


def test_rolling_text_single_window_is_the_plain_sum(tok, lm):
  text = "the king is in the play"
  tokens = tok.encode(text)
  logp = naive_logprobs(lm, [tok.eot_id] + tokens[:-1])
  want = float(sum(logp[i, t] for i, t in enumerate(tokens)))
  got = engine.loglikelihood_rolling(lm, tok, [text, ""], max_length=64)
  assert got[0] == pytest.approx(want, rel=1e-5, abs=1e-4)
  assert got[1] == 0.0


def test_bucketing_does_not_change_numbers_and_bounds_shapes(tok, lm):
  rng = np.random.default_rng(0)
  reqs = [
    (tuple(rng.integers(0, 90, int(rng.integers(1, 60)))), tuple(rng.integers(0, 90, int(rng.integers(1, 5)))))
    for _ in range(40)
  ]
  ref = engine.score_batches(engine.plan_batches(reqs, 32, token_budget=1, min_bucket=32), lm)  # one row a batch
  for budget, min_bucket in [(64, 4), (4096, 16)]:
    plan = engine.plan_batches(reqs, 32, token_budget=budget, min_bucket=min_bucket)
    got = engine.score_batches(plan, lm)
    np.testing.assert_allclose(got.ll, ref.ll, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(got.num_greedy, ref.num_greedy)
    buckets = engine.bucket_lengths(32, min_bucket)
    # at most a full-batch and a tail shape per bucket; every batch within the token budget
    assert len(plan.shapes) <= 2 * len(buckets)
    assert all(t in buckets and (r * t <= budget or r == 1) for r, t in plan.shapes)
  # duplicates are scored once
  plan = engine.plan_batches(reqs + reqs[:5], 32)
  assert plan.num_unique == 40 and plan.num_requests == 45


def test_rescoring_a_plan_compiles_nothing_new(tok):
  lm = random_lm(tok.vocab_size, seed=3)
  reqs = [((1, 2, 3) * k, (4, 5)) for k in range(1, 30)]
  plan = engine.plan_batches(reqs, 64, token_budget=128, min_bucket=8)
  engine.score_batches(plan, lm)
  compiled = lm._cache_size()
  assert compiled == len(plan.shapes)
  engine.score_batches(plan, lm)
  assert lm._cache_size() == compiled


def test_sharded_over_the_data_axis_gives_the_same_numbers(tok, lm):
  from ffnjax.parallel import make_mesh

  assert len(jax.devices()) == 8
  mesh = make_mesh()  # data=-1: all 8 emulated devices
  assert engine.data_parallel_size(mesh) == 8
  rng = np.random.default_rng(1)
  reqs = [(tuple(rng.integers(0, 90, int(rng.integers(1, 40)))), tuple(rng.integers(0, 90, 3))) for _ in range(21)]
  ref = engine.score_batches(engine.plan_batches(reqs, 32), lm)
  plan = engine.plan_batches(reqs, 32, token_budget=256, row_multiple=8)
  assert all(r % 8 == 0 for r, _ in plan.shapes)
  got = engine.score_batches(plan, lm, mesh=mesh)
  np.testing.assert_allclose(got.ll, ref.ll, rtol=1e-6, atol=1e-5)
  np.testing.assert_array_equal(got.num_greedy, ref.num_greedy)


def test_continuation_longer_than_max_length_is_an_error():
  with pytest.raises(ValueError, match="request 1: continuation of 9 tokens does not fit max_length=8"):
    engine.plan_batches([((1,), (2,)), ((1,), tuple(range(9)))], 8)
