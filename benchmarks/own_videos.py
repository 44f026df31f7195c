"""Training on a folder of videos, as a user would: the synthetic config on mp4 files through the
'videos' dataset, untrained vs trained.

Writes the synthetic generator's 48 training and 16 validation videos as mp4 files (64 px,
H.264) with their labels.json, then runs ``python -m lac_jax.main --config=configs/synthetic.py
--config.data.dataset=videos`` on (1) ``train/`` + ``val/`` with labels and (2) the same 64 files
in one flat folder without labels, plus one corrupt file skipped with
``data.skip_unreadable=True``. Prints both closing tables and writes
``benchmarks/results/own_videos.json``. About 5 minutes on 2 CPU cores.

  python benchmarks/own_videos.py [--workdir=/tmp/own_videos]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax import tables  # pylint: disable=g-import-not-at-top
from lac_jax.data import synthetic  # pylint: disable=g-import-not-at-top


def train(data_dir: str, workdir: str, *extra: str) -> dict:
  """Runs the main job on ``data_dir``; returns its summary rows and wall time."""
  start = time.perf_counter()
  subprocess.run(
    [
      sys.executable,
      "-m",
      "lac_jax.main",
      "--config=configs/synthetic.py",
      f"--workdir={workdir}",
      "--config.data.dataset=videos",
      f"--config.data.data_dir={data_dir}",
      *extra,
    ],
    cwd=ROOT,
    check=True,
  )
  with open(os.path.join(workdir, "eval", "summary.json"), encoding="utf-8") as f:
    rows = json.load(f)["rows"]
  return {"rows": rows, "seconds": time.perf_counter() - start}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="/tmp/own_videos", help="replaced if it exists")
  args = parser.parse_args()
  shutil.rmtree(args.workdir, ignore_errors=True)
  labelled, flat = os.path.join(args.workdir, "labelled"), os.path.join(args.workdir, "flat")
  config = synthetic.default_config()
  for split in ("train", "val"):
    for path in synthetic.write_videos(os.path.join(labelled, split), split, None, config):
      os.makedirs(flat, exist_ok=True)
      shutil.copy(path, flat)
  with open(os.path.join(flat, "broken.mp4"), "wb") as f:
    f.write(b"\x00 not a video " * 100)
  out = {
    "labelled": train(labelled, os.path.join(args.workdir, "run_labelled")),
    "flat_unlabelled": train(
      flat, os.path.join(args.workdir, "run_flat"), "--config.data.skip_unreadable=True"
    ),
  }
  with open(os.path.join(args.workdir, "run_flat", "skipped.json"), encoding="utf-8") as f:
    out["flat_unlabelled"]["skipped"] = [
      os.path.basename(s["path"]) for s in json.load(f)["skipped"]
    ]
  for name, run in out.items():
    print(f"\n{name} ({run['seconds']:.0f} s):\n{tables.format_table(run['rows'])}")
  results.write("own_videos", vars(args), out)


if __name__ == "__main__":
  main()
