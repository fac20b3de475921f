"""The paper's four baselines and their placement grid (method.md §1-3).

    --config=configs/paper.py:baseline_285m_12l
    --config=configs/paper.py:middle_70_285m_12l      (positions first|middle|final, ratios 10..90)
    --config.data.input=DIR/fineweb-edu/sample-10BT --config.eval.data_dir=DIR/eval   (see README, "Data")
Any field can be overridden afterwards, e.g. --config.model.num_layers=24; the layer plan is re-derived.
"""

from ffnjax.core.config import apply_name
from ffnjax.train.experiment import default_config

# The paper's evaluation (method.md §4): its 8 lm-eval-harness tasks and zsRE. Upstream files come from
# `python -m ffnjax.data.fetch --what=eval --output=DIR`; there is no embedded fallback (those are Shakespeare
# stand-ins): eval.data_dir must hold them. The defaults are the README's data layout under ./data.
PAPER_EVAL_TASKS = "wikitext,lambada_openai,arc_easy,arc_challenge,winogrande,piqa,hellaswag,zsre"

# name -> model fields (+ train fields): paper Table 3 and Table 5. Vocabulary: GPT-2 BPE, 50257.
SIZES = {
  "285m_12l": dict(num_layers=12, d_model=1280, d_ff=4480, num_heads=20, train=dict(global_batch=288, peak_lr=3e-4)),
  "570m_24l": dict(num_layers=24, d_model=1280, d_ff=4480, num_heads=20, train=dict(global_batch=560, peak_lr=3e-4)),
  "570m_40l": dict(
    num_layers=40, d_model=992, d_ff=3472, num_heads=16, train=dict(global_batch=560, peak_lr=1e-4)
  ),  # 3e-4 spiked at 40 layers
  "1b_40l": dict(num_layers=40, d_model=1440, d_ff=5040, num_heads=20, train=dict(global_batch=1152, peak_lr=1e-4)),
}


def get_config(arg: str = "baseline_285m_12l"):
  config = default_config()
  config.model.vocab_size = 50257
  config.data.source = "fineweb_edu"
  # Where the FineWeb-Edu parquet shards are expected (override with --config.data.input / data.path); written by
  # `python -m ffnjax.data.fetch --what=fineweb_edu --subset=sample-10BT --output=data/fineweb-edu`.
  config.data.input = "data/fineweb-edu/sample-10BT"
  config.data.tokenizer = "gpt2"
  config.data.seq_len = 1024
  config.train.update(dict(steps=20_000, warmup_steps=1_000, schedule="cosine", micro_batches=1))
  config.eval.tasks = PAPER_EVAL_TASKS
  config.eval.data_dir = "data/eval"  # written by `python -m ffnjax.data.fetch --what=eval --output=data/eval`
  return apply_name(config, arg, SIZES)
