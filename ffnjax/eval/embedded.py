"""The embedded evaluation set: upstream-format task files built from the default (Shakespeare) corpus, so that
the quick start evaluates end to end offline. `--data_dir=embedded` builds it once into
$FFNJAX_CACHE/eval/embedded-v<N> (FFNJAX_CACHE defaults to ~/.cache/ffnjax).

From the HELD-OUT plays (text the model never trained on):
- wikitext/test.jsonl        {"page"}: one page per scene (the front matter is a page too);
- lambada_openai/test.jsonl  {"text"}: a passage of whole lines ending in a word that already occurs in the
                             passage and is not among the corpus' most frequent words (LAMBADA's "needs the
                             broader context" property); the word is preceded by a space, so text.split(" ")[-1]
                             is exactly it;
- hellaswag/validation.jsonl {"ctx_a", "ctx_b", "activity_label", "endings", "label", ...}: activity_label = the
                             speaker, ctx_a = the first sentences of a speech, ctx_b = "", endings = the true next
                             sentence and three sentences of similar length drawn (seeded) from other speeches.
From the TRAINING plays (so it measures stored knowledge):
- zsre/zsre_mend_eval.json   [{"subject", "src", "answers", "rephrase", "alt", "loc", "loc_ans"}]:
                             "In which play does the character X appear?" -> [title], for every speaker X who
                             speaks at least 3 times in exactly one play of the corpus and is named in its text.

`build_embedded(DIR)` writes the files somewhere else.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import tempfile

import numpy as np

from ffnjax.core import rundir
from ffnjax.data import shakespeare
from ffnjax.data.prepare import cache_root

VERSION = 1
MANIFEST = "manifest.json"
FILES = ("wikitext/test.jsonl", "lambada_openai/test.jsonl", "hellaswag/validation.jsonl", "zsre/zsre_mend_eval.json")

# A speaker line: a name of its own on a line after a blank line ("MACBETH.", "Hor.", "Sampson.", "THESEUS").
_SPEAKER = re.compile(r"(?:^|\n)\n([A-Z][A-Za-z'\-]*(?: [A-Za-z'\-]+){0,3})\.?\n(?=\S)")
_SCENE = re.compile(r"^SCENE\s+[IVXLC\d]+\b.*$", re.M)
_NOT_NAMES = {
  "ACT",
  "SCENE",
  "PROLOGUE",
  "EPILOGUE",
  "CHORUS",
  "PERSONS",
  "DRAMATIS",
  "FINIS",
  "THE",
  "ALL",
  "BOTH",
  "FIRST",
  "SECOND",
  "THIRD",
  "FOURTH",
  "FIFTH",
  "SIXTH",
  "ANOTHER",
  "SEVERAL",
  "SOME",
}
MAX_ENDING = 150  # characters: an ending must fit a small model's context
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z'\"])")


def _title(name: str) -> str:
  return " ".join(w[:1].upper() + w[1:].lower() if w.isupper() else w for w in name.split())


def scenes(text: str) -> list[str]:
  """The text cut before every 'SCENE <number>' line; empty pieces dropped."""
  cuts = [0] + [m.start() for m in _SCENE.finditer(text)] + [len(text)]
  return [p for p in (text[a:b].strip() for a, b in zip(cuts, cuts[1:])) if p]


def _play_body(text: str) -> str:
  """The text from the first scene on (without the title and the list of persons)."""
  m = _SCENE.search(text)
  return text[m.start() :] if m else text


def speeches(text: str) -> list[tuple[str, str]]:
  """(speaker, speech as one line) pairs; stage directions in [brackets] removed."""
  out = []
  for block in re.split(r"\n\s*\n", text):
    lines = block.strip("\n").split("\n")
    m = re.fullmatch(r"([A-Z][A-Za-z'\-]*(?: [A-Za-z'\-]+){0,3})\.?", lines[0].strip())
    if not m or len(lines) < 2 or m[1].split()[0].upper() in _NOT_NAMES:
      continue
    body = re.sub(r"\[[^\]]*\]", " ", "\n".join(lines[1:]))
    body = " ".join(body.split())
    if body and "[" not in body and "]" not in body:
      out.append((_title(m[1]), body))
  return out


# ------------------------------------------------------------------------------------------------------ builders


def wikitext_pages(heldout: dict[str, str]) -> list[dict]:
  return [{"page": page} for key in sorted(heldout) for page in scenes(heldout[key])]


def _frequent_words(texts, top: int = 300) -> set[str]:
  counts = collections.Counter(w.lower() for t in texts for w in re.findall(r"[A-Za-z]+", t))
  return {w for w, _ in counts.most_common(top)}


def lambada_passages(
  heldout: dict[str, str], frequent: set[str], rng: np.random.Generator, max_examples: int = 1000, min_gap: int = 400
) -> list[dict]:
  out = []
  for key in sorted(heldout):
    text = _play_body(heldout[key])
    last_end = -min_gap
    for m in re.finditer(r"(?<= )([A-Za-z]{4,})(?![A-Za-z'\-])", text):
      word, end = m[1], m.end()
      line = text[text.rfind("\n", 0, m.start()) + 1 : end]
      # a word of a spoken line (not a speaker name, heading or stage direction)
      if (
        end - last_end < min_gap
        or word.lower() in frequent
        or word.isupper()
        or line.startswith("[")
        or not re.search(r"[a-z]", line[: len(line) - len(word)] or "x")
      ):
        continue
      lookback = int(rng.integers(300, 800))
      start = text.find("\n", max(0, m.start() - lookback)) + 1
      while text[start] == "\n":  # begin at a line with text
        start += 1
      context = text[start : m.start() - 1]
      if len(context) < 150 or "\n\n\n" in context or not re.search(rf"\b{re.escape(word)}\b", context, re.I):
        continue
      out.append({"text": text[start:end]})
      last_end = end
  if len(out) > max_examples:
    keep = np.sort(rng.choice(len(out), max_examples, replace=False))
    out = [out[i] for i in keep]
  return out


def hellaswag_examples(heldout: dict[str, str], rng: np.random.Generator, max_examples: int = 1000) -> list[dict]:
  per_speech = []  # (play, speaker, sentences)
  for key in sorted(heldout):
    for speaker, body in speeches(_play_body(heldout[key])):
      sentences = [s for s in _SENTENCE_END.split(body)]
      per_speech.append((key, speaker, sentences))
  pool = [(i, s) for i, (_, _, ss) in enumerate(per_speech) for s in ss if 20 <= len(s) <= MAX_ENDING]
  pool_len = np.array([len(s) for _, s in pool])
  out = []
  for i, (key, speaker, sentences) in enumerate(per_speech):
    if len(sentences) < 2:
      continue
    k = int(rng.integers(1, min(3, len(sentences) - 1) + 1))
    true = sentences[k]
    if not 20 <= len(true) <= MAX_ENDING:
      continue
    similar = np.flatnonzero((pool_len >= len(true) / 2) & (pool_len <= 2 * len(true)))
    similar = [j for j in similar if pool[j][0] != i and pool[j][1] != true]
    if len(similar) < 3:
      continue
    distractors = [pool[j][1] for j in rng.choice(similar, 3, replace=False)]
    label = int(rng.integers(0, 4))
    endings = distractors[:label] + [true] + distractors[label:]
    out.append(
      {
        "ind": len(out),
        "activity_label": speaker,
        "ctx_a": " ".join(sentences[:k]),
        "ctx_b": "",
        "ctx": " ".join(sentences[:k]) + " ",
        "endings": endings,
        "source_id": f"shakespeare~{key}",
        "split": "val",
        "split_type": "indomain",
        "label": str(label),
      }
    )
  if len(out) > max_examples:
    keep = np.sort(rng.choice(len(out), max_examples, replace=False))
    out = [dict(out[i], ind=n) for n, i in enumerate(keep)]
  return out


def character_questions(texts: dict[str, str], train_keys, titles: dict[str, str], min_speeches: int = 3) -> list[dict]:
  speakers: dict[str, collections.Counter] = {}
  for key, text in texts.items():
    names = [_title(n) for n in _SPEAKER.findall(text) if n.split()[0].upper() not in _NOT_NAMES]
    speakers[key] = collections.Counter(names)
  plays_of = collections.defaultdict(set)
  for key, counter in speakers.items():
    for name in counter:
      plays_of[name].add(key)
  out = []
  for key in sorted(train_keys):
    body = _SPEAKER.sub("\n\n", texts[key])  # mentions outside speaker lines only
    for name in sorted(speakers[key]):
      if (
        speakers[key][name] < min_speeches
        or plays_of[name] != {key}
        or len(name) < 3
        or re.fullmatch(r"[IVXLC]+", name.upper())
        or len(re.findall(rf"(?<![A-Za-z]){re.escape(name)}(?![A-Za-z])", body)) < 2
      ):
        continue
      out.append(
        {
          "subject": name,
          "src": f"In which play does the character {name} appear?",
          "rephrase": f"Which play has a character called {name}?",
          "answers": [titles[key]],
          "alt": "",
          "loc": "",
          "loc_ans": "",
        }
      )
  return out


def build_embedded(output_dir: str, seed: int = 0) -> str:
  """Writes the four task files (see the module doc) under output_dir and returns it."""
  train, heldout = shakespeare.split()
  titles = shakespeare.play_titles()
  rng = np.random.default_rng(seed)
  frequent = _frequent_words(list(train.values()) + list(heldout.values()))
  data = {
    "wikitext/test.jsonl": wikitext_pages(heldout),
    "lambada_openai/test.jsonl": lambada_passages(heldout, frequent, rng),
    "hellaswag/validation.jsonl": hellaswag_examples(heldout, rng),
    "zsre/zsre_mend_eval.json": character_questions({**train, **heldout}, train, titles),
  }
  for rel, records in data.items():
    path = os.path.join(output_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      if rel.endswith(".jsonl"):
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
      else:
        json.dump(records, f, ensure_ascii=False, indent=1)
  manifest = {
    "version": VERSION,
    "seed": seed,
    "corpus": shakespeare.PACKAGE_VERSION,
    "heldout_plays": sorted(heldout),
    "counts": {rel: len(r) for rel, r in data.items()},
  }
  with open(os.path.join(output_dir, MANIFEST), "w") as f:
    json.dump(manifest, f, indent=2)
  return output_dir


def default_dir() -> str:
  return os.path.join(cache_root(), "eval", f"embedded-v{VERSION}")


def ensure_embedded(path: str | None = None) -> str:
  """The embedded set's directory, built first if absent (into a temporary dir renamed into place)."""
  path = path or default_dir()
  if os.path.isfile(os.path.join(path, MANIFEST)):
    return path
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-embedded-")
  os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
  try:
    build_embedded(tmp)
    try:
      rundir.publish(tmp, path)
    except OSError:  # built concurrently by another process, or a stale dir without a manifest
      if not os.path.isfile(os.path.join(path, MANIFEST)):
        shutil.rmtree(path, ignore_errors=True)
        rundir.publish(tmp, path)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return path
