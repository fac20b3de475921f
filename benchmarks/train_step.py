"""Train-step throughput of ffnjax vs Hugging Face transformers + torch (CPU), and MFU-on-CPU, side by side.

Both frameworks train the same LLaMA (same d_model, layers, heads, d_ff, vocabulary, untied head) with the
same AdamW (betas, eps, weight decay on matrices only, global-norm clipping) on the same batch shape, each in
the precisions and layouts a user would pick (VARIANTS; master weights and optimizer state are fp32 in every
row): ffnjax with its layers scanned (the config default) or unrolled (`model.scan_layers=False`), computing in
fp32 or bf16 (`model.dtype`); torch in fp32 (HF's default) or under bf16 autocast. Every row is timed in
alternating rounds in one process, so machine load (a shared host) affects all alike; the table shows medians
over rounds and, per ffnjax row, the median of the per-round ratios to torch fp32 and to torch at the same
compute precision. torch comes from the `[hf]` extra; without it the torch rows are skipped with a message.

ffnjax's step is built as the trainer builds it (jit under the config's mesh, donated state). On a CPU with
AMX/AVX512-BF16, bf16 compute runs the matmuls on XLA:CPU's bf16 library path (ffnjax.kernels.matmul).
MFU-on-CPU = model FLOP/s (LayerPlan.flops_per_token x tokens/s) / FLOP/s of a large fp32 matmul measured in
the same process.

    python -P benchmarks/train_step.py [--steps=2] [--rounds=5] [--models=tiny,27m] [--vocab_size=0]
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from configs import tiny
from ffnjax import model as model_lib
from ffnjax.core.placement import LayerPlan
from ffnjax.parallel import make_mesh
from ffnjax.train.mfu import measure_matmul_flops
from ffnjax.train.optimizer import make_optimizer
from ffnjax.train.step import make_train_step

_STEPS = flags.DEFINE_integer("steps", 2, "Steps per timed round per framework.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds; the frameworks alternate within and across rounds.")
_MODELS = flags.DEFINE_list("models", ["tiny", "27m"], "Models to run (keys of MODELS).")
_VOCAB = flags.DEFINE_integer("vocab_size", 0, "Vocabulary of both frameworks' models (0 = the config's, 4096).")

MODELS = {
  "tiny": dict(label="tiny_8l (configs/tiny.py)", model={}, seq_len=128, batch=16),
  "27m": dict(
    label="27M (d=512, 6 layers)", model=dict(d_model=512, d_ff=1792, num_heads=8, num_layers=6), seq_len=256, batch=8
  ),
}


# ffnjax rows: model-config overrides. torch rows: the autocast dtype (None = fp32).
FFNJAX_VARIANTS = {
  "fp32, scanned": {},
  "fp32, unrolled": dict(scan_layers=False),
  "bf16, unrolled": dict(scan_layers=False, dtype="bfloat16"),
}
TORCH_VARIANTS = {"fp32": None, "bf16 autocast": "bfloat16"}


def make_config(spec, overrides=None):
  config = tiny.get_config("baseline_tiny_8l")
  config.model.update(spec["model"])
  config.model.update(overrides or {})
  if _VOCAB.value:
    config.model.vocab_size = _VOCAB.value
  config.train.global_batch = spec["batch"]
  return config


def ffnjax_runner(config, spec):
  """(run(n): n train steps, param count). Built like ffnjax.train.loop: jit under the config's mesh, donated."""
  plan = LayerPlan.from_config(config)
  mesh = make_mesh(config.mesh)
  model = model_lib.build(config.model, plan)
  optimizer = make_optimizer(config.train)
  with jax.set_mesh(mesh):
    params = model_lib.init_params(model, jax.random.key(0), mesh)
    state = {"params": params, "opt_state": jax.jit(optimizer.init)(params), "step": jnp.zeros((), jnp.int32)}
    step = jax.jit(make_train_step(model, optimizer, config.train), donate_argnums=0)
    tokens = jax.random.randint(jax.random.key(1), (spec["batch"], spec["seq_len"] + 1), 0, config.model.vocab_size)
  box = [state]

  def run(n):
    with jax.set_mesh(mesh):
      state = box[0]
      for _ in range(n):
        state, metrics = step(state, tokens)
      jax.block_until_ready(metrics)
    box[0] = state

  return run, plan.param_count()


def torch_runner(config, spec, autocast=None):
  """The same model and optimizer in HF transformers + torch (CPU): LlamaForCausalLM (fp32 weights),
  torch.optim.AdamW; `autocast` = "bfloat16" runs forward and loss under torch.autocast (torch's mixed precision)."""
  import torch
  import transformers

  torch.manual_seed(0)
  m, t = config.model, config.train
  hf = transformers.LlamaConfig(
    vocab_size=m.vocab_size,
    hidden_size=m.d_model,
    intermediate_size=m.d_ff,
    num_hidden_layers=m.num_layers,
    num_attention_heads=m.num_heads,
    num_key_value_heads=m.num_kv_heads or m.num_heads,
    max_position_embeddings=spec["seq_len"],
    rms_norm_eps=m.norm_eps,
    rope_theta=m.rope_theta,
    tie_word_embeddings=m.tie_embeddings,
    torch_dtype=torch.float32,
  )
  model = transformers.LlamaForCausalLM(hf).train()
  # ffnjax's decay mask: matrices only, not norm scales or the embedding (optimizer.decay_mask)
  decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "embed_tokens" not in n]
  rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "embed_tokens" not in n)]
  opt = torch.optim.AdamW(
    [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}],
    lr=t.peak_lr,
    betas=(t.b1, t.b2),
    eps=t.eps,
  )
  tokens = torch.randint(0, m.vocab_size, (spec["batch"], spec["seq_len"] + 1))

  def run(n):
    for _ in range(n):
      with torch.autocast("cpu", dtype=getattr(torch, autocast or "float32"), enabled=autocast is not None):
        logits = model(input_ids=tokens[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
      opt.step()
      opt.zero_grad(set_to_none=True)
      loss.item()

  return run, sum(p.numel() for p in model.parameters())


def torch_available() -> str | None:
  """None when torch + transformers import, else why not."""
  try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
  except ImportError as e:
    return f"{e}; install the [hf] extra (pip install -e '.[hf]') for the torch columns"
  return None


def bench(spec, with_torch: bool):
  runners = {f"ffnjax {k}": ffnjax_runner(make_config(spec, v), spec) for k, v in FFNJAX_VARIANTS.items()}
  if with_torch:
    runners |= {f"torch {k}": torch_runner(make_config(spec), spec, v) for k, v in TORCH_VARIANTS.items()}
  compile_s = {}
  for name, (run, _) in runners.items():
    t = time.perf_counter()
    run(1)  # compile / warm-up
    compile_s[name] = time.perf_counter() - t
  tokens = spec["batch"] * spec["seq_len"] * _STEPS.value
  rates = {name: [] for name in runners}
  for r in range(_ROUNDS.value):
    order = list(runners) if r % 2 == 0 else list(runners)[::-1]  # alternate who goes first
    for name in order:
      t = time.perf_counter()
      runners[name][0](_STEPS.value)
      rates[name].append(tokens / (time.perf_counter() - t))
  return dict(
    params={n: p for n, (_, p) in runners.items()},
    compile_s=compile_s,
    rates=rates,
    flops_per_token=LayerPlan.from_config(make_config(spec)).flops_per_token(spec["seq_len"]),
  )


def ratio(a, b):
  return statistics.median(x / y for x, y in zip(a, b))


def main(argv):
  del argv
  why_not = torch_available()
  if why_not:
    print(f"torch rows skipped: {why_not}")
  peak = measure_matmul_flops()
  print(
    f"backend {jax.default_backend()}, {jax.device_count()} device(s); fp32 matmul peak {peak / 1e9:.1f} GFLOP/s; "
    f"{_ROUNDS.value} alternating rounds of {_STEPS.value} steps per row, medians. MFU = model FLOP/s / fp32 peak."
  )
  print(
    f"{'model':<27}{'row':<24}{'params':>12}{'tok/s':>9}{'vs torch fp32':>15}{'vs torch same':>15}{'MFU':>8}"
    f"{'compile s':>11}"
  )
  for key in _MODELS.value:
    spec = MODELS[key]
    res = bench(spec, with_torch=why_not is None)
    rates = res["rates"]
    for name, r in rates.items():
      line = f"{spec['label']:<27}{name:<24}{res['params'][name]:>12,}{statistics.median(r):>9,.0f}"
      if name.startswith("ffnjax") and "torch fp32" in rates:
        same = "torch bf16 autocast" if "bf16" in name else "torch fp32"
        line += f"{ratio(r, rates['torch fp32']):>15.2f}{ratio(r, rates[same]):>15.2f}"
      else:
        line += f"{'':>15}{'':>15}"
      mfu = 100 * res["flops_per_token"] * statistics.median(r) / peak
      print(f"{line}{mfu:>7.1f}%{res['compile_s'][name]:>11.1f}", flush=True)
    counts = set(res["params"].values())
    if len(counts) > 1:
      print(f"  note: parameter counts differ between rows: {sorted(counts)}")
    print("  per round tok/s: " + "; ".join(f"{n} " + " ".join(f"{x:.0f}" for x in v) for n, v in rates.items()))


if __name__ == "__main__":
  app.run(main)
