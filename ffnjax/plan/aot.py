"""Ahead-of-time planner: compile the real train step for a mesh without running it, and report memory/FLOPs.

`python -m ffnjax.plan --config=configs/paper.py:middle_70_1b_40l --compile --mesh=data:1,fsdp:8,tensor:1
--target=h100 [--batch=8 --seq_len=1024] [--json]` lowers and compiles exactly what `ffnjax.train` runs (same
model, optimizer, `build_state_shardings`, `make_train_step`, jitted with explicit in/out shardings and donation)
against `--devices` emulated CPU devices, allocating nothing and running nothing.

Per-device memory: parameters and optimizer state from their shapes and shardings; arguments, outputs, donated
(aliased) bytes, temporaries (activations and workspace) and generated code from XLA's `memory_analysis()`.
total = arguments + outputs - donated + temporaries; `fits` compares it with MEMORY_GIB (ffnjax.train.mfu).

Batch: without `--batch` the planner compiles `train.global_batch` with `train.micro_batches` sequential
accumulation steps, as the trainer does (override with `--config.train.micro_batches=N`; the accumulation scan
compiles its body once, and temporaries then hold one micro-batch's activations plus the gradient accumulator).
`--batch=B` compiles a single micro-batch of B sequences (micro_batches=1): temporaries are then per-micro-batch
activations, while parameters and optimizer state are those of the full run. Compile time depends on the
program, not on the sizes: the paper models at their full batch (288-1152 x 1024) compile in ~6-8 s on 2 CPU
cores, like `--batch=8` (benchmarks/aot_compile.py --batch=0).

FLOPs: `flops_per_step_plan` = LayerPlan.flops_per_token(seq_len) x tokens per step (all devices, matmuls,
3x forward, causal attention halved). `flops_per_step_xla` is XLA's `cost_analysis()` of the per-device program,
which counts a while-loop body once: with scanned layer groups (model.scan_layers=True) it sees one layer per
group, not the group's `count` layers. For a like-for-like figure compile with
`--config.model.scan_layers=False` (unrolled; slower to compile) and compare with `flops_per_device_plan`.

`--topology=v5e:2x4` compiles for a named TPU slice instead (jax.experimental.topologies; needs libtpu, which
is not a dependency: `pip install "libtpu==0.0.42.*"`, the version jax[tpu] 0.10.2 pins, works without a TPU).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax._src import xla_bridge
from jax.experimental import topologies

from ffnjax import model as model_lib
from ffnjax.core import meshspec
from ffnjax.parallel import logical_sharding, make_mesh
from ffnjax.train import experiment
from ffnjax.train.loop import build_state_shardings
from ffnjax.train.mfu import MEMORY_GIB
from ffnjax.train.optimizer import make_optimizer
from ffnjax.train.step import make_train_step

GIB = 2**30

# TPU device_kind prefix -> MEMORY_GIB key, so --topology picks its own memory check when --target is not given.
_KIND_TO_TARGET = (
  ("tpu v5 lite", "v5e"),
  ("tpu v5e", "v5e"),
  ("tpu v6 lite", "v6e"),
  ("tpu v6e", "v6e"),
  ("tpu v5p", "v5p"),
  ("tpu v5", "v5p"),
  ("tpu v4", "v4"),
)


def _cpu_devices(devices: int) -> list:
  """`devices` emulated CPU devices; their number must be set before JAX starts its backends."""
  if devices < 1:
    raise ValueError(f"--devices={devices}: must be >= 1")
  if not xla_bridge.backends_are_initialized():
    jax.config.update("jax_num_cpu_devices", devices)
  try:
    cpu = jax.devices("cpu")
  except RuntimeError as e:
    raise ValueError(f"no CPU backend to emulate devices on ({e}); do not exclude cpu from JAX_PLATFORMS") from None
  if len(cpu) < devices:
    raise ValueError(
      f"--devices={devices}: JAX already started with {len(cpu)} CPU devices; call plan_report "
      f"before anything initialises JAX (or set XLA_FLAGS=--xla_force_host_platform_device_count="
      f"{devices})"
    )
  return cpu[:devices]


def _bytes_per_device(abstract, shardings) -> int:
  total = 0
  for a, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings)):
    total += math.prod(s.shard_shape(a.shape)) * np.dtype(a.dtype).itemsize
  return total


def topology_devices(name: str):
  """Devices of a named TPU slice (e.g. 'v5e:2x4') for compiling without one; needs `pip install libtpu`."""
  try:
    return list(topologies.get_topology_desc(platform="tpu", topology_name=name).devices)
  except Exception as e:  # noqa: BLE001 - libtpu missing or an unknown name: say which, in one line
    raise ValueError(
      f"--topology={name!r}: cannot describe this TPU slice here ({type(e).__name__}: "
      f"{str(e).splitlines()[0] if str(e) else ''}); it needs libtpu (pip install libtpu) and a name "
      f"such as v5e:2x4, v6e:2x4, v5p:2x2x1 or v4:2x2x1"
    ) from None


def _target_of(device_kind: str) -> str:
  kind = device_kind.lower()
  return next((t for prefix, t in _KIND_TO_TARGET if kind.startswith(prefix)), "")


def plan_report(
  config,
  *,
  mesh_spec: str = "",
  devices: int = 8,
  target: str = "",
  batch: int = 0,
  seq_len: int = 0,
  topology: str = "",
) -> dict:
  """Compiles the train step (emulated CPU devices, or the TPU slice `topology`) and returns the report dict.

  Raises ValueError with a one-line reason for a bad mesh, target, batch or device count.
  """
  if target and target not in MEMORY_GIB:
    raise ValueError(f"--target={target!r}: unknown accelerator; must be one of {sorted(MEMORY_GIB)}")
  if batch < 0 or seq_len < 0:
    raise ValueError(f"--batch={batch} / --seq_len={seq_len}: must be >= 1 (or 0 = the config's)")
  mesh_cfg = meshspec.parse(mesh_spec) if mesh_spec else None  # parse errors before JAX starts
  device_list = topology_devices(topology) if topology else _cpu_devices(devices)
  if topology and not target:
    target = _target_of(device_list[0].device_kind)

  config = ml_collections.ConfigDict(config.to_dict())
  config_batch = config.train.global_batch
  if batch:
    config.train.global_batch, config.train.micro_batches = batch, 1
  if seq_len:
    config.data.seq_len = seq_len
  plan = experiment.validate(config)
  where = f"--topology={topology}" if topology else f"--devices={devices}"
  try:
    mesh = make_mesh(mesh_cfg if mesh_cfg is not None else config.mesh, device_list)
  except ValueError as e:
    raise ValueError(
      f"{e} ({where}; {'pick a larger slice' if topology else 'raise --devices'} or shrink --mesh)"
    ) from None
  experiment.check_batch(config, mesh)  # the trainer's own batch/mesh divisibility check

  model = model_lib.build(config.model, plan)
  optimizer = make_optimizer(config.train)
  abstract, shardings = build_state_shardings(model, optimizer, mesh)
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
  b, t = config.train.global_batch, config.data.seq_len
  batch_sharding = logical_sharding(("batch", "length"), (b, t + 1), mesh)
  tokens = jax.ShapeDtypeStruct((b, t + 1), jnp.int32, sharding=batch_sharding)
  step = jax.jit(
    make_train_step(model, optimizer, config.train),
    in_shardings=(shardings, batch_sharding),
    out_shardings=(shardings, None),
    donate_argnums=0,
  )
  start = time.perf_counter()
  with jax.set_mesh(mesh):
    lowered = step.lower(state, tokens)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  stored = sum(math.prod(a.shape) for a in jax.tree.leaves(abstract["params"]))
  param_bytes = _bytes_per_device(abstract["params"], shardings["params"])
  opt_bytes = _bytes_per_device(abstract["opt_state"], shardings["opt_state"])
  temp = int(mem.temp_size_in_bytes)
  total = int(mem.argument_size_in_bytes) + int(mem.output_size_in_bytes) - int(mem.alias_size_in_bytes) + temp
  flops_plan = plan.flops_per_token(t) * b * t
  return {
    "name": plan.name,
    "mesh": dict(mesh.shape),
    "devices": mesh.size,
    "batch": b,
    "seq_len": t,
    "micro_batches": config.train.micro_batches,
    "config_global_batch": config_batch,
    "per_micro_batch": bool(batch) and batch != config_batch,
    "platform": mesh.devices.flat[0].platform,
    "device_kind": mesh.devices.flat[0].device_kind,
    "params_total": plan.param_count(),
    "params_stored": stored,  # stored includes the FFN zero padding
    "param_bytes_per_device": param_bytes,
    "opt_state_bytes_per_device": opt_bytes,
    "argument_bytes_per_device": int(mem.argument_size_in_bytes),
    "output_bytes_per_device": int(mem.output_size_in_bytes),
    "alias_bytes_per_device": int(mem.alias_size_in_bytes),
    "temp_bytes_per_device": temp,
    "total_bytes_per_device": total,
    "generated_code_bytes": int(mem.generated_code_size_in_bytes),
    "flops_per_step_plan": flops_plan,
    "flops_per_device_plan": flops_plan / mesh.size,
    "flops_per_step_xla": float(cost.get("flops", float("nan"))) if cost else float("nan"),  # per device
    "scan_layers": bool(config.model.scan_layers),
    "lower_s": lower_s,
    "compile_s": compile_s,
    "fits": {name: total <= gib * GIB for name, gib in MEMORY_GIB.items() if not target or name == target},
  }


def format_report(r: dict) -> str:
  gib = lambda x: f"{x / GIB:8.3f} GiB"
  batch = (
    f"one micro-batch of {r['batch']} x {r['seq_len']} tokens (config: global batch {r['config_global_batch']})"
    if r["per_micro_batch"]
    else f"batch {r['batch']} x {r['seq_len']} tokens in {r['micro_batches']} micro-batch(es)"
  )
  xla_note = "per-device program, each scanned group's body counted once" if r["scan_layers"] else "per-device program"
  lines = [
    f"{r['name']} on mesh {r['mesh']} ({r['devices']} x {r['device_kind']}), {batch}",
    f"  parameters       {r['params_total']:>15,} (stored with FFN padding {r['params_stored']:,})",
    f"  params/device    {gib(r['param_bytes_per_device'])}",
    f"  opt state/device {gib(r['opt_state_bytes_per_device'])}",
    f"  arguments        {gib(r['argument_bytes_per_device'])}   outputs {gib(r['output_bytes_per_device'])}"
    f"   donated {gib(r['alias_bytes_per_device'])}",
    f"  temporaries      {gib(r['temp_bytes_per_device'])}   (activations and workspace, XLA)",
    f"  total/device     {gib(r['total_bytes_per_device'])}   (arguments + outputs - donated + temporaries)",
    f"  generated code   {r['generated_code_bytes'] / 2**20:8.3f} MiB",
    f"  FLOPs/step       {r['flops_per_step_plan']:.3e} (layer plan, all devices; "
    f"{r['flops_per_device_plan']:.3e} per device)",
    f"                   {r['flops_per_step_xla']:.3e} (XLA cost analysis, {xla_note})",
    f"  compile          {r['compile_s']:.1f} s (lowering {r['lower_s']:.1f} s)",
    "  fits             "
    + ", ".join(f"{k} ({MEMORY_GIB[k]} GiB): {'yes' if v else 'NO'}" for k, v in r["fits"].items()),
  ]
  return "\n".join(lines)
