"""Do the rendered actions rank the methods alike? The tables of `benchmarks/methods.py
--dataset=rendered` compared action by action: per metric, the order of the settings' means and
Kendall's tau between two actions' orders, and per setting the verdicts against ``lac`` (better,
worse, or within the seed spread: ``|mean - mean_ref| <= std + std_ref``).

Usage (from the repository root; reads the JSON files, trains nothing)::

  python benchmarks/rank_agreement.py [--actions door drop roll]

The first actions are the benchmark's, the last the held-out one; the pairs compared are every
pair of actions. Writes ``benchmarks/results/rank_agreement.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import numpy as np
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import results  # noqa: E402  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)

METRICS = ("class_100", "ap_5", "progress", "tau", "cycle_consistency")
REFERENCE = "lac"


def table_path(action: str) -> str:
  name = "methods_rendered" + ("" if action == "door" else f"_{action}")
  return os.path.join(ROOT, "benchmarks", "results", f"{name}.json")


def load(action: str) -> dict:
  """``{'mean': {setting: row}, 'std': {setting: row}}`` of one action's methods table."""
  path = table_path(action)
  if not os.path.exists(path):
    sys.exit(
      f"{path}: missing; run python benchmarks/methods.py --dataset=rendered --action={action}"
    )
  with open(path) as f:
    out = json.load(f)["results"]
  drop = lambda rows: {k: v for k, v in rows.items() if not k.startswith("untrained")}
  return {"mean": drop(out["mean"]), "std": drop(out["std"])}


def verdicts(table: dict) -> dict[str, dict[str, str]]:
  """``{setting: {metric: '+' | '-' | '='}}`` against `REFERENCE` (``=``: within the spread)."""
  mean, std = table["mean"], table["std"]
  out = {}
  for setting in [s for s in mean if s != REFERENCE]:
    row = {}
    for k in METRICS:
      d = mean[setting][k] - mean[REFERENCE][k]
      row[k] = "=" if abs(d) <= std[setting][k] + std[REFERENCE][k] else ("+" if d > 0 else "-")
    out[setting] = row
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--actions", nargs="+", default=["door", "drop", "roll"])
  args = parser.parse_args()
  tables = {a: load(a) for a in args.actions}
  settings = [
    s for s in tables[args.actions[0]]["mean"] if all(s in t["mean"] for t in tables.values())
  ]
  order, taus = {}, {}
  for k in METRICS:
    order[k] = {
      a: sorted(settings, key=lambda s, a=a: -tables[a]["mean"][s][k]) for a in args.actions
    }
    print(f"\n{k}: settings from best to worst")
    for a in args.actions:
      print(f"  {a:>6}: {' > '.join(order[k][a])}")
    for a, b in itertools.combinations(args.actions, 2):
      x = [tables[a]["mean"][s][k] for s in settings]
      y = [tables[b]["mean"][s][k] for s in settings]
      taus.setdefault(f"{a}-{b}", {})[k] = float(stats.kendalltau(x, y).statistic)
  verdict = {a: verdicts(tables[a]) for a in args.actions}
  print(
    f"\nAgainst {REFERENCE!r} (+ better, - worse, = within the seed spread), {', '.join(METRICS)}:"
  )
  for s in [s for s in settings if s != REFERENCE]:
    cells = "   ".join(f"{a} {''.join(verdict[a][s][k] for k in METRICS)}" for a in args.actions)
    print(f"  {s:>8}: {cells}")
  print("\nKendall's tau between the actions' orders:")
  for pair, row in taus.items():
    print(f"  {pair:>10}: " + "  ".join(f"{k} {v:+.2f}" for k, v in row.items()))
    row["mean"] = float(np.mean(list(row.values())))
  path = results.write(
    "rank_agreement", vars(args), {"order": order, "kendall_tau": taus, "verdicts": verdict}
  )
  print(f"\nwrote {path}")


if __name__ == "__main__":
  main()
