"""The loss presets side by side: each trains ``configs/synthetic.py`` with several seeds.

Usage (from the repository root; about 5 minutes per run on 2 CPU cores, 18 runs by default)::

  python benchmarks/ablation.py                         # every setting, seeds 0 1 2
  python benchmarks/ablation.py --settings paper lc_only --seeds 0 1 2 3 4

Each run is ``python -m lac_jax.main --config=configs/synthetic.py[:preset] --workdir=...
--config.seed=S <overrides>`` in its own process (a shared compilation cache makes the seeds of
one setting compile once), which evaluates the untrained encoder and the trained one. A run whose
``eval/summary.json`` already holds the final step is not run again, so an interrupted ablation
resumes. Printed and written to ``--output`` (JSON: host, date, commit, commands, every run's
rows, and per setting the mean and standard deviation over seeds of every metric): the table,
and for each setting the metrics whose mean differs from the paper preset's by more than the
seed-to-seed spread (``|mean - mean_paper| > std + std_paper``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax import metrics  # pylint: disable=g-import-not-at-top

# name -> (config file argument, overrides, what it is).
SETTINGS = {
    "paper": ("configs/synthetic.py", {}, "the paper preset (default)"),
    "lc_only": ("configs/synthetic.py", {"loss.alpha": 0.0}, "L_c only (alpha = 0)"),
    "lc_ll": ("configs/synthetic.py", {"loss.beta": 0.0},
              "L_c + alpha L_l (beta = 0), the paper's Table 5 ablation"),
    "official_code": ("configs/synthetic.py:official_code", {},
                      "the official code's pipeline (configs/common.py:official_code)"),
    "carl_tau": ("configs/synthetic.py", {"loss.tau": 0.1}, "CARL's temperature (tau = 0.1)"),
    "max_sw": ("configs/synthetic.py", {"loss.sw_sign": -1, "loss.gap_positive": True},
               "maximised SW score (sw_sign = -1, positive gaps)"),
}
UNTRAINED, TRAINED = "untrained (step 0)", "trained"


def command(setting: str, seed: int, workdir: str) -> list[str]:
  config, overrides, _ = SETTINGS[setting]
  return ([sys.executable, "-m", "lac_jax.main", f"--config={config}", f"--workdir={workdir}",
           f"--config.seed={seed}"] + [f"--config.{k}={v}" for k, v in overrides.items()])


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
  return ({k: float(np.mean(v)) for k, v in values.items()},
          {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()})


def format_table(means: dict[str, dict[str, float]], stds: dict[str, dict[str, float]]) -> str:
  """One row per setting, ``mean ± std`` in the paper's columns (the rows are already x100)."""
  columns = metrics.table_columns(next(iter(means.values())))
  width = max(len(n) for n in list(means) + ["setting"]) + 2
  lines = ["setting".ljust(width) + "".join(f"{h:>15}" for _, h in columns)]
  for setting, mean in means.items():
    cells = [f"{mean[k]:.2f} ± {stds[setting][k]:.2f}" for k, _ in columns]
    lines.append(setting.ljust(width) + "".join(f"{c:>15}" for c in cells))
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
  parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
  parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "ablation"))
  parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results",
                                                       "ablation.json"))
  args = parser.parse_args()
  if len(args.seeds) < 2:
    parser.error("--seeds: give at least 2 seeds (a spread needs several)")
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(args.workdir, "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="1")
  runs: dict[str, dict[int, dict]] = {}
  for setting in args.settings:
    runs[setting] = {}
    for seed in args.seeds:
      workdir = os.path.join(args.workdir, setting, f"seed{seed}")
      cmd = command(setting, seed, workdir)
      rows, seconds = read_rows(workdir), None
      if rows is None:
        print(f"[{time.strftime('%H:%M:%S')}] {setting} seed {seed}: {' '.join(cmd[1:])}",
              flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode:
          sys.exit(f"{setting} seed {seed} failed:\n{proc.stderr[-4000:]}")
        rows = read_rows(workdir)
      runs[setting][seed] = {"rows": rows, "seconds": seconds,
                             "command": " ".join(["python"] + cmd[1:])}
  means, stds = {}, {}
  untrained = [r["rows"][UNTRAINED] for r in runs.get("paper", {}).values()]
  if untrained:
    means[UNTRAINED], stds[UNTRAINED] = stats(untrained)
  for setting, by_seed in runs.items():
    means[setting], stds[setting] = stats([r["rows"][TRAINED] for r in by_seed.values()])
  print(f"\nsynthetic config, seeds {args.seeds}: mean ± std over seeds; "
        f"'{UNTRAINED}' = the paper preset's step-0 evaluations")
  print(format_table(means, stds))
  differences = {}
  if "paper" in means:
    print("\nDifferences from the paper preset larger than the seed spread "
          "(|mean - mean_paper| > std + std_paper):")
    for setting in [s for s in means if s not in ("paper", UNTRAINED)]:
      beyond = {k: means[setting][k] - means["paper"][k] for k in means[setting]
                if abs(means[setting][k] - means["paper"][k]) > stds[setting][k] +
                stds["paper"][k]}
      differences[setting] = beyond
      headers = dict(metrics.table_columns(beyond))
      listed = ", ".join(f"{headers[k]} {d:+.2f}" for k, d in beyond.items() if k in headers)
      print(f"  {setting}: {listed or 'none'}")
  results.write("ablation", vars(args), {
      "settings": {s: {"config": SETTINGS[s][0], "overrides": SETTINGS[s][1],
                       "description": SETTINGS[s][2]} for s in runs},
      "runs": {s: {str(seed): r for seed, r in by_seed.items()} for s, by_seed in runs.items()},
      "mean": means, "std": stds, "beyond_seed_spread": differences}, path=args.output)


if __name__ == "__main__":
  main()
