"""`python -m ffnjax.plan --config=configs/paper.py:NAME [--json] [--compile --mesh=data:1,fsdp:8,tensor:1]`.

Prints the layer plan (1-based layers), d_ff and d_ff', parameter counts and the baseline's, and the training
data budget: tokens to train (steps x global batch x sequence length) against the tokens of the data (a prepared
dir's manifest, or the FineWeb-Edu subset named by data.input), in epochs, with a warning above one epoch. With
--json, one JSON object (index 0 = first layer; the budget under "data_budget") that other tools and notebooks read.
"""

from __future__ import annotations

import json
import sys

from absl import flags
from ml_collections import config_flags

from ffnjax.core import cli
from ffnjax.core.errors import UsageError
from ffnjax.plan import aot
from ffnjax.plan.budget import data_budget, describe_budget
from ffnjax.train import experiment

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config, e.g. configs/paper.py:NAME.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of the table.")
_COMPILE = flags.DEFINE_bool("compile", False, "Ahead-of-time compile the train step and report memory/FLOPs.")
_SHOW = flags.DEFINE_bool("show_config", False, "Print every config field, its value and its meaning, and exit.")
_MESH = cli.define_mesh("mesh", "", "Mesh for --compile (default: the config's).")
_DEVICES = flags.DEFINE_integer("devices", 8, "Emulated CPU devices for --compile.", lower_bound=1)
_TARGET = flags.DEFINE_string("target", "", "Accelerator memory to check against for --compile, e.g. h100, v5e.")
_BATCH = flags.DEFINE_integer(
  "batch", 0, "--compile: sequences per compiled step (0 = train.global_batch).", lower_bound=0
)
_SEQ_LEN = flags.DEFINE_integer("seq_len", 0, "--compile: sequence length (0 = data.seq_len).", lower_bound=0)
_TOPOLOGY = flags.DEFINE_string("topology", "", "--compile for a TPU slice, e.g. v5e:2x4 (needs libtpu installed).")


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  config = _CONFIG.value
  if _SHOW.value:
    print(experiment.describe_config(config))
    return
  plan = experiment.validate(config)
  if _COMPILE.value:
    report = aot.plan_report(
      config,
      mesh_spec=_MESH.value,
      devices=_DEVICES.value,
      target=_TARGET.value,
      batch=_BATCH.value,
      seq_len=_SEQ_LEN.value,
      topology=_TOPOLOGY.value,
    )
    print(json.dumps(report, indent=2) if _JSON.value else aot.format_report(report))
    return
  budget = data_budget(config)
  if _JSON.value:
    print(json.dumps({**plan.to_json(), "data_budget": budget}, indent=2))
  else:
    print(plan.describe())
    print(describe_budget(budget))
  if budget["epochs"] is not None and budget["epochs"] > 1:
    print(
      f"WARNING: {budget['epochs']:.2f} epochs of {budget['data']}: the run repeats data; choose a larger "
      "subset (python -m ffnjax.data.fetch --what=fineweb_edu --subset=...) or fewer steps",
      file=sys.stderr,
    )


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  cli.run(main, prog="ffnjax.plan", user_errors=(ValueError,))
