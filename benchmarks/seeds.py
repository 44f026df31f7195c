"""Trains configurations with several seeds and compares them: the runner behind
``benchmarks/ablation.py`` (loss presets) and ``benchmarks/methods.py`` (LAC and its baselines).

Each run is ``python -m lac_jax.main --config=<config> --workdir=<workdir>/<setting>/seed<S>
--config.seed=S <overrides>`` in its own process (a shared compilation cache makes the seeds of
one setting compile once); the config evaluates the untrained and the trained encoder. A run
whose ``eval/summary.json`` already holds the final step is not run again, so an interrupted
comparison resumes. Printed and written to ``--output``: every run's rows and, per setting, the
mean and standard deviation over seeds of every metric, and the metrics whose mean differs from
the reference setting's by more than the seed-to-seed spread (``|mean - mean_ref| > std +
std_ref``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Mapping

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax import tables  # pylint: disable=g-import-not-at-top

Settings = Mapping[str, tuple[str, dict, str]]  # name -> (config argument, overrides, what)

UNTRAINED, TRAINED = "untrained (step 0)", "trained"


def command(settings: Settings, setting: str, seed: int, workdir: str) -> list[str]:
  config, overrides, _ = settings[setting]
  return [
    sys.executable,
    "-m",
    "lac_jax.main",
    f"--config={config}",
    f"--workdir={workdir}",
    f"--config.seed={seed}",
  ] + [f"--config.{k}={v}" for k, v in overrides.items()]


def read_rows(workdir: str) -> dict[str, dict[str, float]] | None:
  """``{UNTRAINED: row, TRAINED: row}`` of a finished run, else None."""
  path = os.path.join(workdir, "eval", "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    summary = json.load(f)
  trained = [r for name, r in summary["rows"].items() if name.startswith("trained")]
  if UNTRAINED not in summary["rows"] or not trained:
    return None
  as_float = lambda row: {k: (np.nan if v is None else float(v)) for k, v in row.items()}
  return {UNTRAINED: as_float(summary["rows"][UNTRAINED]), TRAINED: as_float(trained[0])}


def stats(rows: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
  keys = rows[0].keys()
  values = {k: np.array([r[k] for r in rows]) for k in keys}
  return (
    {k: float(np.mean(v)) for k, v in values.items()},
    {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()},
  )


def format_table(means: dict[str, dict[str, float]], stds: dict[str, dict[str, float]]) -> str:
  """One row per setting, ``mean ± std`` in the paper's columns (the rows are already x100)."""
  columns = [
    (k, h)
    for k, h in tables.table_columns(next(iter(means.values())))
    if k not in tables.COUNT_KEYS and k != "num_labelled"
  ]  # metrics, not video counts
  width = max(len(n) for n in list(means) + ["setting"]) + 2
  lines = ["setting".ljust(width) + "".join(f"{h:>15}" for _, h in columns)]
  for setting, mean in means.items():
    cells = [f"{mean[k]:.2f} ± {stds[setting][k]:.2f}" for k, _ in columns]
    lines.append(setting.ljust(width) + "".join(f"{c:>15}" for c in cells))
  return "\n".join(lines)


def run_all(
  settings: Settings, names: list[str], seed_list: list[int], workdir: str
) -> dict[str, dict[str, dict]]:
  """Trains each setting of ``names`` once per seed under ``workdir/<setting>/seed<seed>``
  (a run whose evaluation is already there is read, not run again); returns
  ``{setting: {str(seed): {rows, seconds, command}}}``. A failed run exits with its stderr."""
  env = dict(
    os.environ,
    JAX_COMPILATION_CACHE_DIR=os.path.join(workdir, "jax_cache"),
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="1",
  )
  runs: dict[str, dict[str, dict]] = {}
  for setting in names:
    runs[setting] = {}
    for seed in seed_list:
      run_dir = os.path.join(workdir, setting, f"seed{seed}")
      cmd = command(settings, setting, seed, run_dir)
      rows, seconds = read_rows(run_dir), None
      if rows is None:
        print(
          f"[{time.strftime('%H:%M:%S')}] {setting} seed {seed}: {' '.join(cmd[1:])}", flush=True
        )
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode:
          sys.exit(f"{setting} seed {seed} failed:\n{proc.stderr[-4000:]}")
        rows = read_rows(run_dir)
      runs[setting][str(seed)] = {
        "rows": rows,
        "seconds": seconds,
        "command": " ".join(["python"] + cmd[1:]),
      }
  return runs


def main(name: str, settings: Settings, reference: str, description: str) -> None:
  """The command line of a comparison: ``--settings``, ``--seeds``, ``--workdir``, ``--output``
  (default ``benchmarks/results/<name>.json``)."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--settings", nargs="+", default=list(settings), choices=list(settings))
  parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
  parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", name))
  parser.add_argument(
    "--output", default=os.path.join(ROOT, "benchmarks", "results", f"{name}.json")
  )
  args = parser.parse_args()
  if len(args.seeds) < 2:
    parser.error("--seeds: give at least 2 seeds (a spread needs several)")
  runs = run_all(settings, args.settings, args.seeds, args.workdir)
  means, stds = {}, {}
  untrained = [r["rows"][UNTRAINED] for r in runs.get(reference, {}).values()]
  if untrained:
    means[UNTRAINED], stds[UNTRAINED] = stats(untrained)
  for setting, by_seed in runs.items():
    means[setting], stds[setting] = stats([r["rows"][TRAINED] for r in by_seed.values()])
  print(
    f"\nseeds {args.seeds}: mean ± std over seeds; '{UNTRAINED}' = the {reference!r} "
    "runs' step-0 evaluations"
  )
  print(format_table(means, stds))
  differences = {}
  if reference in means:
    print(
      f"\nDifferences from {reference!r} larger than the seed spread "
      "(|mean - mean_ref| > std + std_ref):"
    )
    for setting in [s for s in means if s not in (reference, UNTRAINED)]:
      beyond = {
        k: means[setting][k] - means[reference][k]
        for k in means[setting]
        if k not in tables.COUNT_KEYS
        and abs(means[setting][k] - means[reference][k]) > stds[setting][k] + stds[reference][k]
      }
      differences[setting] = beyond
      headers = dict(tables.table_columns(beyond))
      listed = ", ".join(f"{headers[k]} {d:+.2f}" for k, d in beyond.items() if k in headers)
      print(f"  {setting}: {listed or 'none'}")
  results.write(
    name,
    vars(args),
    {
      "reference": reference,
      "settings": {
        s: {"config": settings[s][0], "overrides": settings[s][1], "description": settings[s][2]}
        for s in runs
      },
      "runs": runs,
      "mean": means,
      "std": stds,
      "beyond_seed_spread": differences,
    },
    path=args.output,
  )
