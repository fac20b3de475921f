"""Ahead-of-time plans of the four paper baselines and their middle_70 variants on an 8-device virtual mesh.

Compiles the real train step (nothing allocated, nothing run) for each model and prints per-device memory,
FLOPs and compile time, after checking the planner's parameter counts against the layer plan (`plan --json`,
plus the FFN zero padding to model.ffn_pad_multiple). The scanned layer groups keep a 40-layer model's compile
time close to a 12-layer one's (the ratio is the minimum of --repeats compiles: 2 shared cores are noisy);
--unrolled also compiles the two middle_70 models with model.scan_layers=False to show what the scan saves.

    python -P benchmarks/aot_compile.py [--batch=8] [--seq_len=1024] [--mesh=data:1,fsdp:8,tensor:1]
        [--topology=v5e:2x4 (needs libtpu)] [--unrolled] [--repeats=3] [--json=out.json]

Figures are per device; --batch is one micro-batch (temporaries = that micro-batch's activations); --batch=0
compiles the paper's full global batch (288-1152 x 1024) in one step, which compiles about as fast.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

_BATCH = flags.DEFINE_integer("batch", 8, "Sequences per compiled step (one micro-batch); 0 = train.global_batch.")
_SEQ = flags.DEFINE_integer("seq_len", 1024, "Sequence length.")
_MESH = flags.DEFINE_string("mesh", "data:1,fsdp:8,tensor:1", "Mesh.")
_TOPOLOGY = flags.DEFINE_string("topology", "", "Compile for this TPU slice instead of emulated CPUs (needs libtpu).")
_UNROLLED = flags.DEFINE_bool("unrolled", False, "Also compile the middle_70 12- and 40-layer models unrolled.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Compiles of the two middle_70 models for the compile-time ratio (min).")
_JSON = flags.DEFINE_string("json", "", "Also write the reports to this JSON file.")

SIZES = ("285m_12l", "570m_24l", "570m_40l", "1b_40l")
NAMES = [f"{kind}_{size}" for size in SIZES for kind in ("baseline", "middle_70")]
SHORT, LONG = "middle_70_285m_12l", "middle_70_570m_40l"


def check_counts(config, r) -> None:
  from ffnjax.core.placement import LayerPlan
  from ffnjax.model import padded_width

  plan = LayerPlan.from_config(config)
  pad = sum(
    3 * g.count * config.model.d_model * (padded_width(g.width, config.model.ffn_pad_multiple) - g.width)
    for g in plan.groups
    if g.width
  )
  assert r["params_total"] == plan.to_json()["params_total"], (r["name"], r["params_total"])
  assert r["params_stored"] == r["params_total"] + pad, (r["name"], r["params_stored"], pad)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from configs import paper
  from ffnjax.plan import aot  # plan_report sets 8 emulated devices before JAX starts

  gib = 2**30

  def plan(name, **overrides):
    config = paper.get_config(name)
    config.model.update(overrides)
    r = aot.plan_report(
      config, mesh_spec=_MESH.value, devices=8, batch=_BATCH.value, seq_len=_SEQ.value, topology=_TOPOLOGY.value
    )
    check_counts(config, r)
    return r

  reports = {}
  for name in NAMES:
    r = reports[name] = plan(name)
    if len(reports) == 1:
      batch = f"one micro-batch of {_BATCH.value}" if _BATCH.value else "the full global batch"
      print(
        f"mesh {_MESH.value} ({r['devices']} x {r['device_kind']}), {batch} x "
        f"{_SEQ.value}; per-device memory (TFLOP: plan = whole step on all devices, XLA = per-device program "
        f"with each scan body counted once)"
      )
      print(
        f"{'model':<26}{'params':>15}{'params GiB':>11}{'opt GiB':>9}{'temp GiB':>10}{'total GiB':>11}"
        f"{'fits H100':>10}{'fits v5e':>9}{'TFLOP plan':>11}{'TFLOP XLA':>10}{'compile s':>10}"
      )
    fits = lambda k: "yes" if r["fits"].get(k) else ("NO" if k in r["fits"] else "-")
    label = name if _BATCH.value else f"{name} b{r['batch']}"
    print(
      f"{label:<26}{r['params_total']:>15,}{r['param_bytes_per_device'] / gib:>11.3f}"
      f"{r['opt_state_bytes_per_device'] / gib:>9.3f}{r['temp_bytes_per_device'] / gib:>10.3f}"
      f"{r['total_bytes_per_device'] / gib:>11.3f}{fits('h100'):>10}{fits('v5e'):>9}"
      f"{r['flops_per_step_plan'] / 1e12:>11.2f}{r['flops_per_step_xla'] / 1e12:>10.3f}{r['compile_s']:>10.1f}",
      flush=True,
    )
  print(f"parameter counts match the layer plan (+ FFN padding) for all {len(NAMES)} models")
  times = {
    n: [reports[n]["compile_s"]] + [plan(n)["compile_s"] for _ in range(_REPEATS.value - 1)] for n in (SHORT, LONG)
  }
  ratio = min(times[LONG]) / min(times[SHORT])
  print(
    f"compile time {LONG} / {SHORT} (scanned groups), min of {_REPEATS.value}: {min(times[LONG]):.1f} / "
    f"{min(times[SHORT]):.1f} s = {ratio:.2f} (target <= 1.5); all: "
    + "; ".join(f"{n} " + ", ".join(f"{t:.1f}" for t in ts) for n, ts in times.items())
  )
  if _UNROLLED.value:
    for name in (SHORT, LONG):
      reports[f"{name}_unrolled"] = plan(name, scan_layers=False)
    short, long = reports[f"{SHORT}_unrolled"]["compile_s"], reports[f"{LONG}_unrolled"]["compile_s"]
    print(
      f"unrolled (model.scan_layers=False): {LONG} / {SHORT} = {long:.1f} / {short:.1f} s = {long / short:.2f}; "
      f"XLA TFLOP per device {reports[f'{LONG}_unrolled']['flops_per_step_xla'] / 1e12:.3f} vs plan "
      f"{reports[f'{LONG}_unrolled']['flops_per_device_plan'] / 1e12:.3f}"
    )
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(reports, f, indent=2)


if __name__ == "__main__":
  app.run(main)
