"""GGUF import: the numpy dequantizers against the gguf package's reference, llama.cpp's q/k permutation undone,
and refusals of what is not supported (one line, exit 2)."""

import os
import subprocess
import sys

import gguf  # the [test] extra installs it
import numpy as np
import pytest

from ffnjax.convert import ConvertError
from ffnjax.convert.gguf import BLOCKS, SUPPORTED_TYPES, dequantize, unpermute_qk

QT = gguf.GGMLQuantizationType
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _random_blocks(type_name: str, rows: int, rng) -> np.ndarray:
  """Random bytes for the K-quants (gguf-py cannot quantize them) with finite float16 scales."""
  per_block, nbytes = BLOCKS[type_name]
  raw = rng.integers(0, 256, size=(rows, 4, nbytes), dtype=np.uint8)
  halves = rng.uniform(0.001, 0.05, size=(rows, 4, 2)).astype("<f2").view(np.uint8).reshape(rows, 4, 2, 2)
  if type_name == "Q4_K":  # d, dmin
    raw[..., 0:2], raw[..., 2:4] = halves[:, :, 0], halves[:, :, 1]
  else:  # Q6_K: d is the last field
    raw[..., 208:210] = halves[:, :, 0]
  return raw.reshape(rows, 4 * nbytes)


@pytest.mark.parametrize("type_name", SUPPORTED_TYPES)
def test_dequantize_matches_the_gguf_reference(type_name):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((6, 1024)).astype(np.float32) * 0.1
  qtype = QT[type_name]
  if type_name == "F32":
    data = x
  elif type_name in ("Q4_K", "Q6_K"):
    data = _random_blocks(type_name, 6, rng)
  else:
    data = gguf.quants.quantize(x, qtype)
  ref = gguf.quants.dequantize(data, qtype).astype(np.float32)
  ours = dequantize(data, type_name, (6, 1024))
  assert ours.dtype == np.float32 and ours.shape == ref.shape == (6, 1024)
  np.testing.assert_array_equal(ours, ref)  # the same float32 products: bitwise equal
  if type_name not in ("Q4_K", "Q6_K"):  # a real quantization of x: close to it
    bound = {"F32": 0, "F16": 2e-4, "BF16": 2e-3, "Q8_0": 2e-3, "Q4_0": 4e-2, "Q4_1": 3e-2}[type_name]
    assert np.abs(ours - x).max() <= bound


def test_unsupported_quant_type_is_named():
  with pytest.raises(ConvertError, match="Q5_K is not supported.*Q4_K"):
    dequantize(np.zeros((1, 176), np.uint8), "Q5_K", (1, 256))


def test_unpermute_inverts_llama_cpp_permutation():
  # convert_hf_to_gguf.py's LlamaModel.permute, with n_head replaced by n_head_kv for k_proj
  def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

  w = np.arange(3 * 8 * 5, dtype=np.float32).reshape(24, 5)
  for heads in (1, 3):
    back = unpermute_qk(permute(w, heads), heads)
    np.testing.assert_array_equal(back, w)
  assert not np.array_equal(permute(w, 3), w)


def _tiny_gguf(path, arch="llama", bad_type=None):
  writer = gguf.GGUFWriter(str(path), arch)
  writer.add_block_count(1)
  writer.add_context_length(16)
  writer.add_embedding_length(32)
  writer.add_feed_forward_length(256)
  writer.add_head_count(2)
  writer.add_head_count_kv(1)
  writer.add_layer_norm_rms_eps(1e-5)
  writer.add_tensor("output_norm.weight", np.ones(32, np.float32))
  if bad_type:
    _, nbytes = gguf.GGML_QUANT_SIZES[QT[bad_type]]
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((32, nbytes), np.uint8), raw_dtype=QT[bad_type])
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return str(path)


@pytest.mark.parametrize(
  "arch, bad_type, expected",
  [
    ("gpt2", None, "general.architecture='gpt2' is not supported"),
    ("llama", "Q5_K", "tensor 'blk.0.ffn_up.weight' has type Q5_K, which is not supported"),
  ],
)
def test_cli_refuses_unsupported_files_in_one_line(tmp_path, arch, bad_type, expected):
  path = _tiny_gguf(tmp_path / "m.gguf", arch, bad_type)
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  res = subprocess.run(
    [sys.executable, "-m", "ffnjax.convert", f"--gguf={path}", f"--output={tmp_path / 'run'}"],
    capture_output=True,
    text=True,
    env=env,
    timeout=120,
  )
  assert res.returncode == 2, res.stderr
  lines = [line for line in res.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and expected in lines[0] and path in lines[0], res.stderr
  assert not os.path.exists(tmp_path / "run" / "checkpoints")
