"""The layers of the package (docs/architecture.md, Layout): a JAX-free core, libraries above it, and command-line
code only in `__main__.py` files that no library imports."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ffnjax"
JAX_FAMILY = ("jax", "jaxlib", "flax", "optax", "orbax")


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
CORE = sorted(name for name in MODULES if name == "ffnjax.core" or name.startswith("ffnjax.core."))


def _imports(name: str) -> set[str]:
  """Every module `name` imports, anywhere in the file (top level or in a function), as absolute names."""
  path = MODULES[name]
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
      out.add(base)
      out.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
  return out


def test_the_walk_sees_the_layers():
  """Guards the tests below against passing vacuously (a wrong root or an empty walk)."""
  assert {"ffnjax.core.rundir", "ffnjax.core.placement", "ffnjax.core.config", "ffnjax.core.meshspec"} <= set(CORE)
  assert {"ffnjax.plan.__main__", "ffnjax.study.__main__", "ffnjax.eval.__main__"} <= set(MODULES)
  assert "jax" in {m.split(".")[0] for m in _imports("ffnjax.model")}


def test_core_imports_no_jax_in_a_fresh_interpreter():
  """(a) Importing the core, each module of it, pulls in none of JAX, Flax, Optax, Orbax."""
  code = (
    f"import sys; import {', '.join(CORE)}; "
    f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {JAX_FAMILY!r}); print(bad); "
    "sys.exit(1 if bad else 0)"
  )
  proc = subprocess.run(
    [sys.executable, "-c", code],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
    env={**os.environ, "PYTHONPATH": str(REPO)},
  )
  assert proc.returncode == 0, f"importing ffnjax.core loaded {proc.stdout.strip()}\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("name", CORE)
def test_core_module_imports_nothing_jax_related(name):
  """(c) No core module imports the JAX family, nor a package of ffnjax outside the core (which could)."""
  bad = sorted(
    m
    for m in _imports(name)
    if m.split(".")[0] in JAX_FAMILY or (m.startswith("ffnjax.") and not m.startswith("ffnjax.core"))
  )
  assert not bad, f"{name} imports {bad}"


def test_no_library_imports_command_line_code():
  """(b) Only `__main__.py` files hold command-line code; no module imports one."""
  mains = {name for name in MODULES if name.endswith(".__main__")}
  offenders = {name: sorted(_imports(name) & mains) for name in MODULES}
  assert not {k: v for k, v in offenders.items() if v}
  assert len(mains) >= 10  # plan, study, eval, analysis, train, shapley, convert, data.prepare/fetch/fixtures


# docs/architecture.md, Layout: a package imports only from its own layer or below.
LAYERS = (
  {"core"},
  {"kernels", "parallel"},
  {"model"},
  {"data"},
  {"train"},
  {"convert"},
  {"eval", "analysis"},
  {"shapley"},
  {"plan", "study", "notebook"},
)
UPWARD = {("ffnjax.model", "ffnjax.eval.engine")}  # make_scorer returns the engine's HiddenScorer


def _layer(module: str) -> int:
  package = module.split(".")[1]
  return next(i for i, group in enumerate(LAYERS) if package in group)


def test_packages_import_only_their_layer_or_below():
  assert {name.split(".")[1] for name in MODULES if name.count(".") >= 1} <= set().union(*LAYERS)
  upward = set()
  for name in MODULES:
    if name.count(".") < 1 or name.endswith(".__main__"):
      continue
    for imported in _imports(name):
      if imported.startswith("ffnjax.") and imported in MODULES and _layer(imported) > _layer(name):
        upward.add((name, imported))
  assert upward == UPWARD


def test_only_main_files_define_flags():
  """absl flags are defined only in `__main__.py` files: importing a library never claims flag names. The one
  exception, ffnjax.core.cli (the command-line layer), defines them only inside the functions a `__main__` calls."""
  defining = set()
  for name, path in MODULES.items():
    tree = ast.parse(path.read_text(), str(path))
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
    for node in ast.walk(tree):
      if isinstance(node, ast.Attribute) and node.attr.startswith("DEFINE_"):
        assert name != "ffnjax.core.cli" or id(node) in inside, "ffnjax.core.cli defines a flag at import"
        defining.add(name)
  assert defining and all(name.endswith(".__main__") or name == "ffnjax.core.cli" for name in defining), sorted(
    defining
  )
