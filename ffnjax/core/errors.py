"""The project's errors for bad user input: one small hierarchy, caught by every command (ffnjax/core/cli.py).

A library raises one of these where it detects bad input (a config field, a file, a task name, a checkpoint); the
message names the field or file and the fix. Every command prints it as one line and exits with status 2; anything
else is a bug and keeps its traceback. They are ValueErrors, so callers that catch ValueError keep working.
"""

from __future__ import annotations


class FfnjaxError(ValueError):
  """Bad user input; the message names the field (or file) and the fix."""


class UsageError(FfnjaxError):
  """Command-line flags that do not go together (a missing or contradictory flag)."""


class ConfigError(FfnjaxError):
  """An invalid experiment or study config; the message names the field and the allowed values."""


class PlanError(ConfigError):
  """An impossible placement request (layer plan); the message names the offending field."""


class DataError(FfnjaxError):
  """Bad or missing data (prepared corpus, task files, results tables); the message names the file and field."""


class CheckpointError(FfnjaxError):
  """A checkpoint or model directory that cannot be used as asked; the message names the run and what differs."""


class TaskError(FfnjaxError):
  """An unknown or unusable evaluation task; the message names the task and the known ones."""
