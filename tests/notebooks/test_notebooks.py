"""The notebooks: jupytext percent-format `.py` sources paired with their `.ipynb` (in sync, stored without
outputs), and they run end to end (nbclient, a fresh kernel) against a real smoke study / the paper configs."""

import os
import sys

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = os.path.join(REPO, "notebooks")
NAMES = sorted(f[: -len(".ipynb")] for f in os.listdir(NOTEBOOKS) if f.endswith(".ipynb"))
BASELINE = "baseline_tiny_4l"
CELL_TIMEOUT_S = 300  # per cell; the slowest (restore + first compile) takes seconds on a CPU


def cell_sources(nb) -> list[tuple[str, str, str | None]]:
  """What the pairing keeps equal: each cell's type, source and name (the `# %% name` of the .py)."""
  return [(c.cell_type, c.source, c.metadata.get("title")) for c in nb.cells]


def test_notebooks_are_paired_with_their_py_and_in_sync():
  assert {"explore_study", "plan_paper_grid"} <= set(NAMES)
  assert sorted(f[: -len(".py")] for f in os.listdir(NOTEBOOKS) if f.endswith(".py")) == NAMES, (
    "every notebook is a .py + .ipynb pair (`jupytext --set-formats ipynb,py:percent NOTEBOOK.ipynb`)"
  )
  for name in NAMES:
    py = jupytext.read(os.path.join(NOTEBOOKS, f"{name}.py"))
    ipynb = jupytext.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"))
    for nb in (py, ipynb):
      assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent", name
    assert cell_sources(py) == cell_sources(ipynb), f"run `jupytext --sync notebooks/{name}.ipynb` and commit both"
    nbformat.validate(ipynb)
    names = [c.metadata.get("title") for c in ipynb.cells if c.cell_type == "code"]
    assert all(names) and len(set(names)) == len(names), f"{name}: every code cell has its own `# %% name`"
    for cell in ipynb.cells:
      if cell.cell_type == "code":
        assert cell.outputs == [] and cell.execution_count is None, (name, cell.metadata.get("title"))
    with open(os.path.join(NOTEBOOKS, f"{name}.py"), encoding="utf-8") as f:
      lines = f.read().splitlines()
    steps = {
      indent(b) - indent(a)
      for a, b in zip(lines, lines[1:])
      if a.rstrip().endswith(":") and not a.lstrip().startswith("#") and b.strip()
    }
    assert steps == {2}, f"{name}.py: blocks indent by 2 spaces, as the package does (found {sorted(steps)})"


def indent(line: str) -> int:
  return len(line) - len(line.lstrip(" "))


def test_notebooks_readme_says_how_to_edit():
  with open(os.path.join(NOTEBOOKS, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  assert "jupytext --sync" in readme
  for name in NAMES:
    assert f"`{name}.py`" in readme and f"`{name}.ipynb`" in readme, name


def kernel_env(tmp_path, **env) -> dict:
  """The test process's environment (FFNJAX_CACHE, XLA_FLAGS, ...) plus a private IPython dir and inline figures
  (even where CI sets MPLBACKEND=Agg), on the CPU unless JAX_PLATFORMS says otherwise."""
  out = {
    **os.environ,
    "IPYTHONDIR": str(tmp_path / "ipython"),
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    **env,
  }
  out.setdefault("JAX_PLATFORMS", "cpu")
  return out


def client_for(nb) -> NotebookClient:
  # "python3" is ipykernel's own kernel: the interpreter running the tests (the venv), no kernelspec install needed.
  return NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}})


def execute(name: str, tmp_path, **env) -> dict:
  """Runs a notebook in a fresh kernel (working directory notebooks/); returns {cell name: cell} with outputs."""
  nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
  try:
    client_for(nb).execute(env=kernel_env(tmp_path, **env))
  finally:
    nbformat.write(nb, str(tmp_path / name))  # the executed notebook, for a look after a failure
  return {cell.metadata["title"]: cell for cell in nb.cells if "title" in cell.metadata}


def text(cell) -> str:
  parts = []
  for out in cell.get("outputs", []):
    if out.output_type == "stream":
      parts.append(out.text)
    elif "data" in out:
      parts.append(out.data.get("text/markdown", out.data.get("text/plain", "")))
  return "\n".join(parts)


def images(cell) -> int:
  return sum(1 for out in cell.get("outputs", []) if "data" in out and "image/png" in out.data)


@pytest.fixture(autouse=True)
def _private_jupyter_runtime_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))  # kernel connection files


def test_explore_study_notebook(smoke_study, tmp_path):
  cells = execute("explore_study.ipynb", tmp_path, FFNJAX_STUDY_DIR=smoke_study)
  assert BASELINE in text(cells["open"]) and "wikitext:word_perplexity" in text(cells["open"])
  for cell_id in ("results", "topk", "drilldown"):
    assert BASELINE in text(cells[cell_id]) or "first_50_tiny_4l" in text(cells[cell_id]), cell_id
  assert "| rank | model |" in text(cells["ri"]) and "average RI" in text(cells["topk"])
  assert "standardised score" in text(cells["importance"])
  assert images(cells["figures"]) == 3  # importance, loss curves, RI vs ratio
  for stem in ("importance_tiny_4l", "loss_curves", "ri_vs_ratio_tiny_4l"):
    assert stem in text(cells["figures"])
  assert images(cells["drilldown"]) == 1
  records = text(cells["records"])
  assert f"{BASELINE}: 32 records" in records  # 8 documents x 4 tasks
  assert f"{BASELINE} vs final_50_tiny_4l: 32 documents in both" in records and "| Δ LL |" in records
  assert BASELINE in text(cells["model"])
  assert "LL(' question'" in text(cells["score"]) and "greedy continuation:" in text(cells["score"])
  assert "ΔLL without FFN" in text(cells["ablation"])


def test_explore_study_notebook_names_a_missing_study(tmp_path):
  nb = nbformat.read(os.path.join(NOTEBOOKS, "explore_study.ipynb"), as_version=4)
  nb.cells = [c for c in nb.cells if c.metadata.get("title") == "setup"]
  with pytest.raises(Exception, match="configs/study.py:tiny"):
    client_for(nb).execute(env=kernel_env(tmp_path, FFNJAX_STUDY_DIR=str(tmp_path / "absent")))


def test_plan_paper_grid_notebook(tmp_path):
  cells = execute("plan_paper_grid.ipynb", tmp_path)
  setup = text(cells["setup"])
  assert setup.count("16 grid points") == 4
  layout = text(cells["layout-text"])
  assert "middle_30_285m_12l     ·····EEE····" in layout and "final_90_1b_40l" in layout
  assert images(cells["layout-heatmap"]) == 1 and images(cells["plots"]) == 1 and images(cells["budget"]) == 1
  assert "d_ff' = 17921" in text(cells["checks"]) and "d_ff' = 4961" in text(cells["checks"])
  counts = text(cells["counts"])
  assert counts.count("| baseline_") == 4 and "413,771,520" in counts
  assert "all four" in text(cells["budget"])


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
