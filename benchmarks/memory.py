"""Memory of the paper-sized training step per trunk setting, and the setting chosen for a budget.

For ``configs/pouring.py`` (ResNet-50 cut at conv4c, 224 px, 2 videos x 2 views x 64 frames per
device; random weights, nothing is read) the script compiles the data-parallel training step of
`lac_jax.train` for each trunk setting (the whole trunk; chunks of 128 ... 16 frames,
rematerialised) and dtype, and prints XLA's footprint of the compiled step per device
(`lac_jax.memory.footprint`: arguments + outputs + temporaries - aliased) and the compile time;
then which setting `lac_jax.memory.fit` picks for common device sizes (16, 24, 40, 80 GiB) and
for this machine. Nothing is executed, so it runs on a CPU in minutes.

  python benchmarks/memory.py [--dtypes float32,bfloat16] [--chunks 0,128,64,32,16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
import train_step  # pylint: disable=g-import-not-at-top  (benchmarks/train_step.py)
from lac_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from lac_jax import distributed  # pylint: disable=g-import-not-at-top
from lac_jax import losses  # pylint: disable=g-import-not-at-top
from lac_jax import memory  # pylint: disable=g-import-not-at-top
from lac_jax import train  # pylint: disable=g-import-not-at-top


def footprints(dtype: str, chunks: list[int]) -> list[dict]:
  config = train_step.load_config("pouring", dtype)
  config.model.backbone_weights = "random"
  n_local = jax.local_device_count()
  config.data.batch_size = 2 * n_local
  config_lib.check_config(config)
  model, _ = train.build_models(config)
  state = train.create_train_state(
    config, model, jax.random.PRNGKey(0), 70, 10_000, load_weights=False
  )
  p_state = distributed.replicate(state)
  batch = distributed.shard_batch(
    train_step.random_batch(config, config.data.batch_size, np.random.default_rng(0)), n_local
  )
  loss = losses.build(config.loss)
  rows = []
  for chunk in chunks:
    cfg = config.copy_and_resolve_references()
    cfg.model.trunk_chunk, cfg.model.trunk_remat = chunk, chunk > 0
    model, _ = train.build_models(cfg)
    step = train.make_parallel_train_step(loss, cfg.model.num_context)
    start = time.perf_counter()
    compiled = step.lower(
      p_state.replace(apply_fn=model.apply), batch, jax.random.PRNGKey(1)
    ).compile()
    seconds = time.perf_counter() - start
    m = compiled.memory_analysis()
    row = {
      "dtype": dtype,
      "chunk": chunk,
      "remat": chunk > 0,
      "bytes": memory.footprint(compiled),
      "temp_bytes": int(m.temp_size_in_bytes),
      "argument_bytes": int(m.argument_size_in_bytes),
      "compile_s": seconds,
    }
    print(
      f"{dtype:<9} {'whole' if chunk == 0 else chunk:>6} {row['bytes'] / memory.GIB:>9.2f} "
      f"{row['temp_bytes'] / memory.GIB:>9.2f} {seconds:>9.1f}",
      flush=True,
    )
    rows.append(row)
    del compiled
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--chunks", default="0,128,64,32,16")
  args = parser.parse_args()
  print(
    f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
    f"{jax.local_device_count()} local device(s); Pouring-sized step per device"
  )
  print(f"{'dtype':<9} {'chunk':>6} {'GiB':>9} {'temp GiB':>9} {'compile s':>9}")
  rows = []
  for dtype in args.dtypes.split(","):
    rows += footprints(dtype, [int(c) for c in args.chunks.split(",")])
  budget, source = memory.device_budget()
  choices = []
  for gib, label in [
    (16, "16 GiB"),
    (24, "24 GiB"),
    (40, "40 GiB"),
    (80, "80 GiB"),
    (budget / memory.GIB, f"this machine ({source})"),
  ]:
    for dtype in args.dtypes.split(","):
      fits = [r for r in rows if r["dtype"] == dtype and r["bytes"] <= gib * memory.GIB]
      # fit's order: the whole trunk, then the largest chunk.
      best = min(fits, key=lambda r: (r["chunk"] != 0, -r["chunk"])) if fits else None
      choices.append(
        {
          "budget": label,
          "budget_gib": gib,
          "dtype": dtype,
          "chunk": None if best is None else best["chunk"],
        }
      )
      what = (
        "none fits"
        if best is None
        else "whole trunk"
        if best["chunk"] == 0
        else f"chunks of {best['chunk']}"
      )
      print(f"{label:<48} {dtype:<9} -> {what}")
  results.write("memory", vars(args), {"footprints": rows, "choices": choices})


if __name__ == "__main__":
  main()
