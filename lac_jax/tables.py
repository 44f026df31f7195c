"""The paper's tables: rows of metrics (``metrics.evaluate_embeddings``, x100) formatted and
combined. `format_table` prints named rows in the paper's columns (`table_columns`), a value a
row lacks as '-'; `mean_over_actions` averages PennAction's per-action rows into its headline
row, summing the video counts (`COUNT_KEYS`).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import numpy as np

COUNT_KEYS = ("num_val", "num_labelled_train", "num_labelled_val")  # videos a row used


def mean_over_actions(per_action: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
  """Unweighted mean of per-action rows (PennAction's headline row: 13 actions, one vote each);
  the video counts (`COUNT_KEYS`) are summed.

  Every action must have the same keys; a NaN in any action gives NaN for that key.
  """
  if not per_action:
    raise ValueError("per_action: expected at least one action, got none")
  actions = list(per_action)
  keys = list(per_action[actions[0]])
  for action in actions[1:]:
    if set(per_action[action]) != set(keys):
      raise ValueError(
        f"per_action[{action!r}]: keys {sorted(per_action[action])} differ from "
        f"per_action[{actions[0]!r}] keys {sorted(keys)}"
      )
  return {
    k: float((np.sum if k in COUNT_KEYS else np.mean)([per_action[a][k] for a in actions]))
    for k in keys
  }


def table_columns(keys: Iterable[str]) -> list[tuple[str, str]]:
  """``(key, header)`` of the table's columns found in ``keys``: Class p... and AP@K... (sorted),
  Progress, Tau, Cycle (cycle consistency) and the videos used (Val, Labelled train/val)."""
  keys = set(keys)
  class_pcts = sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"class_(\d+)", k)))
  ap_ks = sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"ap_(\d+)", k)))
  fixed = [("progress", "Progress"), ("tau", "Tau"), ("cycle_consistency", "Cycle")]
  counts = [("num_val", "Val videos"), ("num_labelled", "Labelled tr/val")]
  return (
    [(f"class_{p}", f"Class {p}") for p in class_pcts]
    + [(f"ap_{k}", f"AP@{k}") for k in ap_ks]
    + [c for c in fixed if c[0] in keys]
    + [c for c in counts if c[0] in keys or f"{c[0]}_val" in keys]
  )


def _cell(row: Mapping[str, float], key: str, digits: int) -> str:
  if key == "num_labelled":
    if "num_labelled_train" not in row:
      return "-"
    return f"{int(row['num_labelled_train'])}/{int(row['num_labelled_val'])}"
  if key not in row:
    return "-"
  return f"{int(row[key])}" if key in COUNT_KEYS else f"{row[key]:.{digits}f}"


def format_table(rows: Mapping[str, Mapping[str, float]], digits: int = 2) -> str:
  """Formats named rows in the table's columns (`table_columns`); a value a row lacks is '-'."""
  if not rows:
    raise ValueError("rows: expected at least one named row, got none")
  columns = table_columns(set().union(*(r.keys() for r in rows.values())))
  names = [str(n) for n in rows]
  name_width = max(len(n) for n in names + ["method"])
  cells = [[_cell(row, k, digits) for k, _ in columns] for row in rows.values()]
  widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
  header = "  ".join(["".ljust(name_width)] + [h.rjust(w) for (_, h), w in zip(columns, widths)])
  lines = [header.rstrip(), "-" * len(header)]
  for name, row_cells in zip(names, cells):
    lines.append(
      "  ".join([name.ljust(name_width)] + [c.rjust(w) for c, w in zip(row_cells, widths)])
    )
  return "\n".join(lines)
