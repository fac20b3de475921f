"""The one command-line layer: every `python -m ffnjax.*` main runs through `run`.

Bad user input (an `ffnjax.core.errors.FfnjaxError` raised anywhere, a bad flag value, an unknown `--config.a.b`
field, a missing config file) prints ONE line `PROG: message` on stderr and exits with status 2, before anything
heavy runs where the flags alone show it. Any other exception is a bug and keeps its traceback; `--verbose` shows
the traceback of bad input too.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Sequence

from absl import app, flags, logging
from ml_collections.config_flags.config_flags import ConfigFileFlagParser

from ffnjax.core import meshspec, rundir
from ffnjax.core.errors import ConfigError, FfnjaxError


def fail(prog: str, message: str) -> None:
  """One line on stderr, exit status 2 (bad input)."""
  print(f"{prog}: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def define_mesh(name: str, default: str | None, help_: str) -> flags.FlagHolder:
  """A `--mesh`-style flag in the one syntax `data:1,fsdp:8,tensor:1`, checked while the flags are parsed (for a
  `__main__.py`: defines the flag when called)."""
  holder = flags.DEFINE_string(name, default, f"{help_} Syntax: AXIS:SIZE,... e.g. {meshspec.EXAMPLE}.")

  def check(spec):
    if spec:
      try:
        meshspec.parse(spec)
      except ValueError as e:
        raise flags.ValidationError(str(e).removeprefix(f"--mesh={spec!r}: ")) from None
    return True

  flags.register_validator(name, check)
  return holder


def _config_flags() -> list[str]:
  return [name for name in flags.FLAGS if isinstance(flags.FLAGS[name].parser, ConfigFileFlagParser)]


def flag_value(argv: Sequence[str], name: str) -> str | None:
  """The value of `--name=V` or `--name V` in argv (the last one), else None."""
  value = None
  for i, arg in enumerate(argv):
    if arg in (f"--{name}", f"-{name}") and i + 1 < len(argv):
      value = argv[i + 1]
    elif arg.startswith((f"--{name}=", f"-{name}=")):
      value = arg.split("=", 1)[1]
  return value


def _check_config_files(argv: Sequence[str]) -> None:
  """A misspelt config file is one line, not an IOError deep inside ml_collections."""
  for name in _config_flags():
    value = flag_value(argv, name)
    if value is not None and not rundir.isfile(value.split(":", 1)[0]):
      raise ConfigError(f"config file {value.split(':', 1)[0]} not found (--{name}={value})")


def _unknown_field(argv: Sequence[str]) -> str | None:
  """The first `--config.a.b` override naming no field of its config, as "unknown config field ...", else None."""
  for name in _config_flags():
    value = flag_value(argv, name)
    if value is None:
      continue
    config = ConfigFileFlagParser(name=name, lock_config=False).parse(value)
    for arg in argv:
      m = re.match(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)", arg)
      if not m:
        continue
      node, done = config, []
      for key in m[1].split("."):
        if not hasattr(node, "keys") or key not in node.keys():
          known = [".".join(done + [k]) for k in (node.keys() if hasattr(node, "keys") else [])]
          field = ".".join(done + [key])
          close = difflib.get_close_matches(field, known, n=1)
          hint = (
            f"did you mean {close[0]}?"
            if close
            else f"fields here: {', '.join(known)}"
            if known
            else f"{'.'.join(done)} has no sub-fields"
          )
          return f"unknown config field {field}; {hint} (python -m ffnjax.plan --config=... --show_config lists them)"
        node = node[key]
        done.append(key)
  return None


def _flag_error(e: Exception) -> str:
  """A flag-parsing error as one line; a config file that raised keeps only its final error line."""
  text = str(e)
  if "Error whilst parsing config file" in text:  # ml_collections puts the config file's traceback in the message
    last = [line.strip() for line in text.splitlines() if line.strip()][-1]
    return re.sub(r"^[\w.]+(Error|Exception): ", "", last)
  required = re.match(r"flag --(\w+)=None: Flag --\w+ must have a value other than None", text)
  return f"--{required[1]} is required" if required else " ".join(text.split())


def run(main: Callable[[list[str]], object], *, prog: str, user_errors: tuple[type[BaseException], ...] = ()) -> None:
  """`absl.app.run(main)` with the one bad-input policy; `user_errors` adds exception types that mean bad input.

  Defines `--verbose` (here, not at import: importing a module never claims flag names).
  """
  verbose_flag = flags.DEFINE_bool(
    "verbose",
    False,
    "On bad input, print the full traceback instead of one line; "
    "show the libraries' INFO logs (Orbax's saves and restores).",
  )

  def parse(argv):
    verbose = "--verbose" in argv
    try:
      _check_config_files(argv)
      return flags.FLAGS(argv)
    except (flags.Error, FfnjaxError) as e:
      if verbose:
        raise
      fail(prog, _flag_error(e))
    except (AttributeError, KeyError):
      message = _unknown_field(argv)
      if message is None or verbose:
        raise
      fail(prog, message)

  def wrapped(argv):
    logging.set_verbosity(logging.INFO if verbose_flag.value else logging.WARNING)  # Orbax logs each save at INFO
    try:
      return main(argv)
    except (FfnjaxError, *user_errors) as e:
      if verbose_flag.value:
        raise
      # A ValueError's message names the field; other types (FileNotFoundError, KeyError) need their name.
      fail(prog, " ".join((str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}").split()))

  app.run(wrapped, flags_parser=parse)


def snake_case_argv(argv: Sequence[str], prog: str, names: Sequence[str]) -> list[str]:
  """Old `--kebab-case` spellings of the flags `names` (launch/ scripts) as `--snake_case`, with a warning."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg == "--":  # the command after -- keeps its own flags
      break
    flag, eq, value = arg.partition("=")
    new = "--" + flag[2:].replace("-", "_")
    if flag.startswith("--") and "-" in flag[2:] and new[2:] in names:
      print(f"{prog}: warning: {flag} is spelt {new} now (the old spelling still works)", file=sys.stderr)
      out[i] = new + eq + value
  return out


class ArgumentParser(argparse.ArgumentParser):
  """argparse for the launch/ scripts: a bad flag is one line `PROG: message`, exit status 2 (no usage block)."""

  def error(self, message):
    fail(self.prog, message)
