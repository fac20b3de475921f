"""The experiment config: one ConfigDict assembled from each component's `default_config()`, and its validation.

The JAX-free parts (the error type, the placement and eval sections, the run-name grammar) are in
`ffnjax.core.config`; the layer plan is derived on use (`LayerPlan.from_config`), never stored.
"""

from __future__ import annotations

import jax
import ml_collections

from ffnjax import data, kernels, model, parallel, train
from ffnjax.core import placement
from ffnjax.core.config import EVAL_HELP, PLACEMENT_HELP, TOP_HELP, ConfigError, eval_config, placement_config
from ffnjax.kernels.config import HELP as KERNELS_HELP
from ffnjax.parallel import logical_sharding
from ffnjax.parallel.mesh import HELP as MESH_HELP


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = ""
  config.seed = 0
  config.placement = placement_config()
  config.model = model.default_config()
  config.data = data.default_config()
  config.train = train.default_config()
  config.mesh = parallel.default_config()
  config.eval = eval_config()
  return config


def field_help() -> dict[str, str]:
  """`section.field` -> a one-line meaning, for every field of default_config() (kept beside each section)."""
  sections = {
    "": TOP_HELP,
    "placement.": PLACEMENT_HELP,
    "model.": model.HELP,
    "model.kernels.": KERNELS_HELP,
    "data.": data.HELP,
    "train.": train.HELP,
    "mesh.": MESH_HELP,
    "eval.": EVAL_HELP,
  }
  return {prefix + field: meaning for prefix, help_ in sections.items() for field, meaning in help_.items()}


def describe_config(config) -> str:
  """Every field of a config: `field = value  # meaning`, one per line (`python -m ffnjax.plan --show_config`)."""
  meanings = field_help()

  def walk(node, prefix):
    for key in sorted(node.keys()):
      if isinstance(node[key], ml_collections.ConfigDict):
        yield from walk(node[key], f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}", node[key]

  rows = list(walk(config, ""))
  width = max(len(f"{field} = {value!r}") for field, value in rows)
  return "\n".join(
    f"{f'{field} = {value!r}':<{width}}  # {meanings.get(field, '(no description)')}" for field, value in rows
  )


def validate(config) -> placement.LayerPlan:
  """Checks every section; returns the layer plan. Raises ConfigError/PlanError naming the field."""
  model.validate(config.model)
  kernels.validate(config.model.kernels)
  data.validate(config.data)
  train.validate(config.train)
  parallel.validate(config.mesh)
  plan = placement.LayerPlan.from_config(config)
  if config.data.source == "fineweb_edu" and config.eval.data_dir == "embedded":
    raise ConfigError(
      "eval.data_dir='embedded' holds Shakespeare stand-ins, but this config trains on FineWeb-Edu "
      "and reports the paper's benchmarks: set --config.eval.data_dir=DIR, written by "
      "`python -m ffnjax.data.fetch --what=eval --output=DIR`"
    )
  if config.data.tokenizer == "gpt2" and config.model.vocab_size < 50257:
    raise ConfigError(f"model.vocab_size={config.model.vocab_size} is smaller than the gpt2 tokenizer's 50257")
  if config.train.global_batch % config.train.micro_batches:
    raise ConfigError(
      f"train.global_batch={config.train.global_batch} is not divisible by "
      f"train.micro_batches={config.train.micro_batches}"
    )
  return plan


def check_batch(config, mesh) -> None:
  """The batch against the mesh and the processes: micro-batches split over the data axes, rows over processes."""
  micro = config.train.global_batch // config.train.micro_batches
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if micro % shards:
    raise ConfigError(
      f"train.global_batch={config.train.global_batch} / train.micro_batches={config.train.micro_batches} = "
      f"{micro} sequences per micro-batch is not divisible by the data axes (mesh.data x mesh.fsdp = {shards})"
    )
  if config.train.global_batch % jax.process_count():
    raise ConfigError(
      f"train.global_batch={config.train.global_batch} is not divisible by the {jax.process_count()} processes"
    )
  if jax.process_count() > 1:
    # TrainData gives each process global_batch / process_count rows; make_array_from_process_local_data puts
    # them on this process's devices. A mesh that replicates the batch across processes (e.g. only tensor
    # spans them) would silently stitch different rows into one "replicated" array: refuse it.
    shape = (config.train.global_batch, config.data.seq_len + 1)
    rows = set()
    for index in logical_sharding(("batch", "length"), shape, mesh).addressable_devices_indices_map(shape).values():
      rows.update(range(*index[0].indices(shape[0])))
    want = shape[0] // jax.process_count()
    if len(rows) != want:
      raise ConfigError(
        f"mesh {dict(mesh.shape)}: process {jax.process_index()}'s devices hold {len(rows)} of the "
        f"{shape[0]} rows of the global batch, but each of the {jax.process_count()} processes loads {want}; "
        f"the batch must be split across processes (make mesh.data x mesh.fsdp span them)"
      )
