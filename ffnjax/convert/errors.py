"""The one error type of the converter (a CheckpointError: every command reports it as one line, exit 2)."""

from ffnjax.core.errors import CheckpointError


class ConvertError(CheckpointError):
  """A model directory or checkpoint that cannot be converted; the message names the file, field or tensor."""
