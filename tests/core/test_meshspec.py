"""The one `--mesh` syntax (`data:1,fsdp:8,tensor:1`), parsed without JAX."""

import pytest

from ffnjax.core import meshspec


def test_parse_fills_unnamed_axes_from_the_base():
  assert meshspec.parse("data:1,fsdp:8,tensor:1").to_dict() == {"data": 1, "fsdp": 8, "tensor": 1}
  assert meshspec.parse("fsdp:-1").to_dict() == {"data": 1, "fsdp": -1, "tensor": 1}
  base = {"data": 2, "fsdp": 2, "tensor": 2}
  assert meshspec.parse("tensor:1", base=base).to_dict() == {"data": 2, "fsdp": 2, "tensor": 1}
  assert meshspec.parse("", base=base).to_dict() == base
  assert meshspec.format_spec(meshspec.parse("data:-1")) == "data:-1,fsdp:1,tensor:1"


@pytest.mark.parametrize(
  "spec,needle",
  [
    ("pipeline:2", "'pipeline:2' must be AXIS:SIZE"),
    ("data:1,fsdp:x", "'fsdp:x' must be AXIS:SIZE"),
    ("tensor:0", "mesh.tensor=0"),
    ("data:2,data:4", "axis 'data' is given twice"),
    ("data:-1,fsdp:-1", "at most one of"),
  ],
)
def test_bad_specs_name_the_part(spec, needle):
  with pytest.raises(ValueError, match=needle):
    meshspec.parse(spec)
