"""Text forms of a shapley.json result: the per-task tables of OUTPUT/shapley.md and the summary printed by
`python -m ffnjax.shapley`. Every number is `value [low, high]` (its 95 % bootstrap interval); `~0` marks one
whose interval covers 0."""

from __future__ import annotations

import numpy as np

COVERS = "~0"


def cell(value: float, ci, digits: int = 3, signed: bool = True) -> str:
  """'+0.050 [-0.050, +0.150] ~0' (a difference: signed, marked when its interval covers 0), or '0.300 [0.100,
  0.500]' (a level, signed=False)."""
  f = f"{{:{'+' if signed else ''}.{digits}f}}"
  if ci is None:
    return f.format(value)
  lo, hi = ci
  mark = f" {COVERS}" if signed and lo <= 0.0 <= hi else ""
  return f"{f.format(value)} [{f.format(lo)}, {f.format(hi)}]{mark}"


def _share(value: float, ci) -> str:
  return f"{value:.3f}" if ci is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def median_half_width(pairs) -> float:
  return float(np.median([(hi - lo) / 2 for lo, hi in pairs]))


def cornerstone_line(entry: dict, tolerance: float) -> str:
  if entry["cornerstones_defined"]:
    found = ", ".join(entry["cornerstones"]) or "none"
    point = entry.get("cornerstones_point_rule", [])
    dropped = [p for p in point if p not in entry["cornerstones"]]
    more = (
      (f" ({len(dropped)} more by the point rule alone, their drops not significant: {', '.join(dropped)})")
      if dropped
      else ""
    )
    return f"cornerstones (removal -> chance + {tolerance:g}, drop interval excludes 0): {found}{more}"
  return f"cornerstones: none claimed ({entry['cornerstones_undefined']})"


def task_header(name: str, entry: dict) -> str:
  chance = "" if entry["chance"] is None else f", chance {entry['chance']:.3g}"
  return (
    f"{name}: {entry['metric']} v(N) = {cell(entry['v_full'], entry['ci']['v_full'], 4, signed=False)} "
    f"(n = {entry['num_examples']} examples{chance})"
  )


def summary_lines(result: dict) -> list[str]:
  """Per task: v(N) with its interval, the drops whose interval excludes 0, the cornerstones."""
  tol = result["cornerstone_rule"]["tolerance"]
  lines = []
  for name, entry in result["tasks"].items():
    lines.append("  " + task_header(name, entry))
    game = entry.get("cornerstone_game")
    if game:
      v_full = cell(game["v_full"], game["ci"]["v_full"], 4, signed=False)
      width = median_half_width(game["ci"]["ablation_drop"])
      lines.append(
        f"    accuracy game ({game['metric']}): v(N) = {v_full}; "
        f"single-ablation drops: median 95 % half-width {width:.4f}, "
        f"{len(game['significant_drops'])} of {len(result['players'])} exclude 0; {entry['metric']} game: "
        f"median half-width {median_half_width(entry['ci']['ablation_drop']):.4f} (its own units), "
        f"{len(entry['significant_drops'])} exclude 0"
      )
    sig = [
      f"{p} {cell(d, ci)}"
      for p, d, ci in zip(result["players"], entry["ablation_drop"], entry["ci"]["ablation_drop"])
      if not ci[0] <= 0.0 <= ci[1]
    ]
    lines.append(
      f"    single-ablation drops whose 95 % interval excludes 0: {len(sig)} of {len(result['players'])}"
      + (": " + "; ".join(sig) if sig else "")
    )
    lines.append("    " + cornerstone_line(entry, tol))
  return lines


def markdown(result: dict) -> str:
  """One table per task: drop, Shapley value and share per player, each with its interval."""
  level = f", level K = {result['level']}" if "level" in result else ""
  legend = (
    f"Values `value [low, high]`: 95 % percentile bootstrap interval over each task's examples "
    f"({result['intervals']['resamples']} resamples, seed {result['intervals']['bootstrap_seed']}); "
    f"`{COVERS}` marks an interval that covers 0."
  )
  out = [f"# Layer Shapley values: {result['model']} ({result['method']}{level})", "", legend, ""]
  tol = result["cornerstone_rule"]["tolerance"]
  for name, entry in result["tasks"].items():
    out += [
      f"## {task_header(name, entry)}",
      "",
      cornerstone_line(entry, tol),
      "",
      "| player | drop v(N) − v(N∖{i}) | Shapley value | share |",
      "| --- | --- | --- | --- |",
    ]
    shares, share_ci = entry["shares"], (entry["ci"]["shares"] or [None] * len(result["players"]))
    for i, p in enumerate(result["players"]):
      share = "—" if shares is None else _share(shares[i], share_ci[i])
      star = " ★" if p in entry["cornerstones"] else ""
      out.append(
        f"| {p}{star} | {cell(entry['ablation_drop'][i], entry['ci']['ablation_drop'][i])} | "
        f"{cell(entry['values'][i], entry['ci']['values'][i])} | {share} |"
      )
    out.append("")
  return "\n".join(out) + "\n"
