"""What the rendered videos give away without learning (docs/rendered.md): the paper's metrics of
embeddings read straight from the simulation or the pixels, per action, on the val split.

Usage (from the repository root; about a minute per action, no training)::

  python benchmarks/rendered_property.py [--actions door drop roll] [--cache_dir=DIR]

Embeddings, one vector per frame (mirrored videos folded back: x -> mirror * x):
  * ``time``: the frame's fraction of the video (what a clock alone scores);
  * ``actor``: the scripted actor's position (the pusher, the gripper), 3 numbers;
  * ``object``: the physics object's state (the door's angle; the dropped object's or the
    ball's position);
  * ``actor+object``: both, each standardised;
  * ``colour``: the frame's mean RGB at 32 px (a colour that only one phase has would show here);
  * ``pixels``: the 32 px frame itself (what a nearest-neighbour on raw pixels scores).
A generator whose phases could be read from one static cue would give ``colour`` or ``actor``
high classification, progress or tau. Writes ``benchmarks/results/rendered_property.json``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax import config as config_lib  # noqa: E402  # pylint: disable=g-import-not-at-top
from lac_jax import metrics  # noqa: E402  # pylint: disable=g-import-not-at-top
from lac_jax import tables  # noqa: E402  # pylint: disable=g-import-not-at-top
from lac_jax.data import augment, rendered  # noqa: E402  # pylint: disable=g-import-not-at-top

COLUMNS = ("class_100", "ap_5", "progress", "tau", "cycle_consistency")
EVAL_SIZE = 32  # what configs/rendered.py evaluates at


def embeddings(action: str, split: str, cfg, data) -> tuple[dict[str, list], list[np.ndarray]]:
  """``({name: [T_i, D] per video}, [labels_i])`` for ``split`` of ``action``."""
  videos = rendered.load_split(data, split, action, None)
  out: dict[str, list] = {
    k: [] for k in ("time", "actor", "object", "actor+object", "colour", "pixels")
  }
  labels = []
  for i, video in enumerate(videos):
    sim = rendered.simulate(action, split, i, cfg, render=False)
    np.testing.assert_array_equal(sim.labels, video.labels)  # the store holds the same video
    t = len(sim.labels)
    fold = np.array([sim.mirror, 1.0, 1.0])
    actor = np.stack([r["mocap"][0] * fold for r in sim.rec])
    if action == "door":
      obj = np.array([[r["angle"]] for r in sim.rec])
    else:
      obj = np.stack([r["qpos"][:3] * fold for r in sim.rec])
    frames = augment.resize(np.asarray(video.frames), EVAL_SIZE).astype(np.float32) / 255
    out["time"].append(np.arange(t, dtype=np.float32)[:, None] / max(t - 1, 1))
    out["actor"].append(actor)
    out["object"].append(obj)
    out["actor+object"].append(np.concatenate([actor, obj], 1))
    out["colour"].append(frames.mean((1, 2)))
    out["pixels"].append(frames.reshape(t, -1))
    labels.append(np.asarray(video.labels))
  return out, labels


def measure(action: str, data) -> dict[str, dict[str, float]]:
  cfg = rendered.options(data)
  train, train_labels = embeddings(action, "train", cfg, data)
  val, val_labels = embeddings(action, "val", cfg, data)
  rows = {}
  for name in train:
    tr, va = train[name], val[name]
    if name == "actor+object":  # one scale for every column, from the train split
      mean = np.concatenate(tr).mean(0)
      std = np.concatenate(tr).std(0) + 1e-6
      tr, va = [(x - mean) / std for x in tr], [(x - mean) / std for x in va]
    row = metrics.evaluate_embeddings(tr, train_labels, va, val_labels, config_lib.eval_config())
    rows[name] = {k: float(row[k]) for k in COLUMNS}
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--actions", nargs="+", default=list(rendered.ACTIONS))
  parser.add_argument("--cache_dir", default=os.path.join(ROOT, "runs", "rendered_cache"))
  args = parser.parse_args()
  data = config_lib.base_config().data
  data.dataset, data.cache_dir = "rendered", args.cache_dir
  data.rendered.height = data.rendered.width = 64  # configs/rendered.py's videos
  out = {}
  for action in args.actions:
    out[action] = measure(action, data)
    print(f"\n{action} (val split, {EVAL_SIZE} px):")
    print(tables.format_table(out[action]))
  path = results.write("rendered_property", vars(args), out)
  print(f"\nwrote {path}")


if __name__ == "__main__":
  main()
