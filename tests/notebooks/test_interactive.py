"""ffnjax.notebook on a real trained study: scoring is the evaluator's, masks behave as the model's keep input,
greedy decoding is deterministic, and open_study bundles the analysis."""

import os

import jax
import numpy as np
import pytest

from ffnjax.eval import engine
from ffnjax.model import make_logits_fn
from ffnjax.notebook import InteractiveModel, open_study

BASELINE = "baseline_tiny_4l"
RUNS = (BASELINE, "first_50_tiny_4l", "final_50_tiny_4l")  # the smoke study's runs, each with records

PAIRS = [
  ("To be, or not to be, that is the", " question"),
  ("ROMEO:\nBut soft, what light", " through yonder"),
  ("", "Hello there"),
  ("My lord  ", "we"),
]


@pytest.fixture(scope="module")
def model(smoke_study):
  return InteractiveModel.from_run(os.path.join(smoke_study, BASELINE))


def test_score_is_the_engines_loglikelihood(model):
  reference = engine.loglikelihood(
    make_logits_fn(model.config, model.plan, model.params), model.tokenizer, PAIRS, max_length=model.max_length
  )
  assert model.score_many(PAIRS) == reference
  assert model.score(*PAIRS[0]) == reference[0]
  assert model.step == 6 and model.max_length == 128

  # and the same number from the raw logits: the continuation's tokens scored one position earlier
  context, continuation = PAIRS[1]
  ctx, cont = engine.encode_pair(model.tokenizer, context, continuation)
  seq = list(ctx) + list(cont)
  logp = jax.nn.log_softmax(model.logits(seq[:-1]).astype(np.float64), axis=-1)
  manual = sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
  assert manual == pytest.approx(reference[1][0], abs=1e-3)


def test_logits_shapes_and_input_checks(model):
  vocab = model.config.model.vocab_size
  text = "Good morrow"
  assert model.logits(text).shape == (len(model.encode(text)), vocab)
  batch = np.array([model.encode("ab cd ef")[:2]] * 3)
  out = model.logits(batch)
  assert out.shape == (3, 2, vocab) and out.dtype == np.float32
  np.testing.assert_allclose(out[1], model.logits(batch[1]), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="T >= 1"):
    model.logits("")
  with pytest.raises(ValueError, match="token ids"):
    model.logits([vocab])


def test_all_ones_mask_is_no_mask(model):
  ones = model.ablate(np.ones((model.plan.num_layers, 2)))
  np.testing.assert_array_equal(ones.logits(PAIRS[0][0]), model.logits(PAIRS[0][0]))
  assert ones.score_many(PAIRS) == model.score_many(PAIRS)
  assert ones.describe_keep() == "none" and ones.params is model.params


def test_ablation_masks_share_one_program_and_compose(model):
  text = PAIRS[1][0]
  base = model.logits(text)
  jitted = model._forward.jitted
  no_ffn2 = model.drop(ffn=[2])
  changed = no_ffn2.logits(text)
  compiled = jitted._cache_size()
  assert not np.allclose(changed, base)
  mask = np.ones((model.plan.num_layers, 2), np.float32)
  mask[1, 1] = 0.0  # row 1 = layer 2, column 1 = FFN
  np.testing.assert_array_equal(model.ablate(mask).logits(text), changed)
  both = no_ffn2.drop(attention=[1])  # views compose
  mask[0, 0] = 0.0
  np.testing.assert_array_equal(both.logits(text), model.ablate(mask).logits(text))
  assert both.describe_keep() == "L1.attn, L2.ffn" and "L2.ffn" in repr(both)
  assert jitted._cache_size() == compiled  # no new program for new masks
  ll_base, ll_drop = model.score(*PAIRS[1])[0], no_ffn2.score(*PAIRS[1])[0]
  assert ll_base != ll_drop
  with pytest.raises(ValueError, match="num_layers=4"):
    model.ablate(np.ones((3, 2)))
  with pytest.raises(ValueError, match="numbered from 1"):
    model.drop(ffn=[0])


def test_ablation_table_is_the_single_ablation(model):
  context, continuation = PAIRS[0]
  full = model.score(context, continuation)[0]
  table = model.ablation_table(context, continuation)
  assert table.headers == ["layer", "type", "ΔLL without attention", "ΔLL without FFN"]
  assert [row[:2] for row in table.rows] == [[layer, "standard"] for layer in (1, 2, 3, 4)]
  for layer, _, d_attn, d_ffn in table.rows:  # each entry: that sub-layer alone removed, through `drop`
    assert d_attn == model.drop(attention=[layer]).score(context, continuation)[0] - full
    assert d_ffn == model.drop(ffn=[layer]).score(context, continuation)[0] - full
  assert any(abs(row[3]) > 1e-3 for row in table.rows)
  assert "| ΔLL without FFN |" in table._repr_markdown_()  # how a notebook renders it


def test_deactivated_layers_ignore_their_ffn_entry(smoke_study):
  first = InteractiveModel.from_run(os.path.join(smoke_study, "first_50_tiny_4l"))
  assert first.plan.layer_types == ("expanded", "expanded", "deactivated", "deactivated")
  text = PAIRS[0][0]
  np.testing.assert_array_equal(first.drop(ffn=[3, 4]).logits(text), first.logits(text))
  assert not np.allclose(first.drop(ffn=[1]).logits(text), first.logits(text))
  rows = first.ablation_table(text, " question").rows
  assert [r[3] is None for r in rows] == [False, False, True, True]  # a deactivated layer has no FFN to remove
  assert all(r[2] is not None for r in rows)


def test_greedy_generation_is_deterministic(model):
  prompt = "ROMEO:"
  greedy = model.generate(prompt, max_new_tokens=8)
  assert greedy == model.generate(prompt, max_new_tokens=8) and isinstance(greedy, str)
  tokens = model.generate(prompt, max_new_tokens=8, stop_at_eot=False, return_tokens=True)
  assert len(tokens) == 8
  assert tokens == model.generate(prompt, max_new_tokens=8, stop_at_eot=False, return_tokens=True)
  assert tokens[0] == int(np.argmax(model.logits(prompt)[-1]))  # step 1 is the argmax of the full forward
  # each step is the argmax after the previous ones (padding to a bucket does not change a causal model)
  seq = model.encode(prompt) + tokens
  assert tokens[-1] == int(np.argmax(model.logits(seq[:-1])[-1]))
  sampled = model.generate(prompt, max_new_tokens=8, temperature=1.0, seed=3, return_tokens=True, stop_at_eot=False)
  assert sampled == model.generate(
    prompt, max_new_tokens=8, temperature=1.0, seed=3, return_tokens=True, stop_at_eot=False
  )
  assert model.generate(prompt, max_new_tokens=0) == ""
  with pytest.raises(ValueError, match="temperature"):
    model.generate(prompt, temperature=-1.0)


def test_open_study_bundles_the_analysis(smoke_study):
  study = open_study(smoke_study)
  assert study.tasks == (("wikitext", "word_perplexity"), ("lambada_openai", "acc"))  # the study's own task set
  assert study.families == ["tiny_4l"] and set(study.runs) == {BASELINE, "first_50_tiny_4l", "final_50_tiny_4l"}
  assert {"loss_curves", "ri_vs_ratio_tiny_4l", "importance_tiny_4l"} <= set(study.figures)
  assert all(os.path.getsize(p) > 1000 for p in study.figures.values())
  assert set(study.records) == set(RUNS)
  records = study.load_records(BASELINE, task="lambada_openai")
  assert len(records) == 8 and records[0]["requests"][0]["continuation"].startswith(" ")
  assert study.baseline_run() == os.path.join(smoke_study, BASELINE)
  assert len(study.ri) == 2 and len(study.top_k_table(1).rows) == 1
  assert len(study.importance_table().rows) == 4
  drill = study.drilldown("wikitext", "word_perplexity").records()
  assert [r["model"] for r in drill] == [BASELINE, "first_50_tiny_4l", "final_50_tiny_4l"]
  assert drill[0]["RI %"] == 0.0 and drill[0]["baseline"] == drill[0]["wikitext word_perplexity"]
  assert BASELINE in study.metrics_table().to_markdown()
  fig = study.drilldown_figure("wikitext", "word_perplexity")
  ax = fig.axes[0]
  assert ax.get_yscale() == "log" and "wikitext word_perplexity" in ax.get_title() and ax.get_xlabel()
  assert sorted(line.get_label() for line in ax.lines) == ["baseline", "final", "first"]
  assert ax.lines[-1].get_ydata()[0] == drill[0]["wikitext word_perplexity"]  # the dashed baseline
  both = study.compare_records(BASELINE, "first_50_tiny_4l", task="lambada_openai")
  assert len(both.rows) == 8 and both.headers[-1] == "Δ LL" and len(both.head(3).rows) == 3
  ll_base = sum(q["ll"] for q in records[0]["requests"])
  assert both.rows[0][:3] == ["lambada_openai", records[0]["doc_id"], ll_base]
  assert both.rows[0][4] == pytest.approx(both.rows[0][3] - ll_base)
  assert study.report and study.report.endswith("report.md")
  records_file = os.path.join(smoke_study, "final_50_tiny_4l", "eval", "records.jsonl")
  os.rename(records_file, records_file + ".hidden")  # a run evaluated without --records
  try:
    with pytest.raises(FileNotFoundError, match="--records"):
      open_study(smoke_study).load_records("final_50_tiny_4l")
  finally:
    os.rename(records_file + ".hidden", records_file)
  with pytest.raises(ValueError, match="no metric"):
    study.drilldown("hellaswag", "nope")
  table2 = open_study(smoke_study, tasks="wikitext:word_perplexity")
  assert table2.tasks == (("wikitext", "word_perplexity"),)


def test_from_run_names_what_is_missing(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    InteractiveModel.from_run(str(tmp_path))
