"""Which property of the synthetic videos ranks the methods table (docs/synthetic.md).

In the default videos (``data.synthetic.end_state='start'``) the cup's path is a round trip:
the return retraces the reach, untilt retraces tilt, and the idle frames at the end repeat the
pose of those at the start, so only the fill levels (liquid in the cup and in the bowl) change
one way over time. ``end_state='away'`` (the cup leaves sideways past the bowl) and ``'lifted'``
(straight up) end elsewhere; the frames before the return are the same.

Usage (from the repository root)::

  python benchmarks/synthetic_property.py --part=generator   # seconds, no training
  python benchmarks/synthetic_property.py                    # + training and diagnostics
  python benchmarks/synthetic_property.py --workdir=runs/methods --methods lac lav scl

``--part=generator`` measures the videos themselves (val split, 32 px as evaluated):

* pixels (no noise, no camera shake): the percentage of pixels that differ between the first
  and the last frame, between the first frame and the middle of the pour, between each reach
  frame and the return frame at the mirrored point of the path (progress p vs 1 - p), and
  between each reach frame and the one a quarter of the phase later;
* the paper's metrics of two *ground-truth* embeddings, the generator's own per-frame state
  (start = 0, pour position = 1, the same in mirrored videos): ``pose`` = the cup's centre,
  tilt and whether drops fall (everything that moves except the fill levels), ``pose+fill`` =
  the same plus the fraction poured. What ``pose`` loses to ``pose+fill`` is what the metrics
  owe to telling before from after by the fill levels alone.

``--part=training`` trains ``configs/synthetic.py`` with each method of ``--methods`` and each
seed on each generator of ``--end_states`` (settings ``<method>`` for 'start', the methods
table's runs, and ``<method>_<end_state>``; runs whose summary exists are read, not rerun, so
``--workdir`` = the workdir of ``benchmarks/methods.py`` reuses its runs) and prints the means,
standard deviations and each method's difference from LAC on each generator.

``--part=embeddings`` reads those runs' encoders back and embeds the videos again: the share of
the Class 100 probe's errors that give the retraced phase (reach <-> return, tilt <-> untilt),
the share of the embedding variance between videos, and Kendall's tau over the pairs of val
videos facing the same way (both mirrored or both not) and facing opposite ways.

The default part, ``all``, does the three. Writes ``benchmarks/results/synthetic_property.json``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
import seeds  # pylint: disable=g-import-not-at-top  (benchmarks/seeds.py)
from lac_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from lac_jax import metrics  # pylint: disable=g-import-not-at-top
from lac_jax import tables  # pylint: disable=g-import-not-at-top
from lac_jax.data import augment, synthetic  # pylint: disable=g-import-not-at-top

END_STATES = synthetic.END_STATES
METHOD_CONFIG = {"lac": "configs/synthetic.py"}  # others: configs/synthetic.py:<method>
GROUND_TRUTH_ENDS = {"start": None, "away": (2.0, 1.0), "lifted": (1.0, 2.0)}
COLUMNS = ("class_100", "ap_5", "progress", "tau", "cycle_consistency")
SIDES = ("tau_same_side", "tau_opposite_sides")


def _config(end_state: str):
  c = synthetic.default_config()
  c.end_state = end_state
  return c


def pixel_distances(end_state: str, size: int = 32) -> dict[str, float]:
  """Percent of pixels that differ (by over 16 of 255 in some channel) between two frames, mean
  over the val videos (32 px, as evaluated; no noise or camera shake, so only the scene
  counts)."""
  config = _config(end_state)
  config.max_noise = 0.0
  config.jitter_pixels = 0
  first_last, first_pour, mirror, step = [], [], [], []
  for i in range(config.num_val):
    frames = augment.resize(synthetic.render(i, "val", config), size).astype(np.float32)
    tl = synthetic.timeline(i, "val", config)
    d = lambda a, b: 100.0 * float((np.abs(frames[a] - frames[b]).max(-1) > 16).mean())
    pour_mid = (tl.phase_starts[2] + tl.phase_ends[2]) // 2
    first_last.append(d(0, tl.num_frames - 1))
    first_pour.append(d(0, pour_mid))
    # Reach at progress p against return at progress 1 - p (the same point of the path when
    # the cup comes back), and against the reach frame a quarter of the phase later.
    reach = np.arange(tl.phase_starts[0], tl.phase_ends[0])
    for t in reach:
      p = (t - tl.phase_starts[0] + 0.5) / tl.durations[0]
      back = tl.phase_starts[4] + int((1 - p) * tl.durations[4])
      mirror.append(d(t, min(back, tl.phase_ends[4] - 1)))
      later = t + max(1, tl.durations[0] // 4)
      if later < tl.phase_ends[0]:
        step.append(d(t, later))
  return {
    "first_vs_last": float(np.mean(first_last)),
    "first_vs_mid_pour": float(np.mean(first_pour)),
    "reach_vs_mirrored_return": float(np.mean(mirror)),
    "reach_vs_quarter_phase_later": float(np.mean(step)),
  }


GROUND_TRUTHS = ("pose", "pose+fill")


def ground_truth_embedding(index: int, split: str, end_state: str, kind: str) -> np.ndarray:
  """The generator's per-frame state: cup x, y, tilt, drops falling (``pose``), the same plus
  the fraction poured (``pose+fill``).

  Units: start = 0, pour position = 1 (x and y, y up), full tilt = 1; 'away' ends at x = 2,
  'lifted' at y = 2. Relative to the scene: a mirrored video has the same state."""
  config = _config(end_state)
  tl = synthetic.timeline(index, split, config)
  end = GROUND_TRUTH_ENDS[end_state]
  phase, cx, cy, angle, poured = synthetic.cup_path(tl, (0.0, 0.0), (1.0, 1.0), 1.0, end)
  columns = [cx, cy, angle, (phase == 2).astype(float)]  # drops fall during the pour only
  if kind == "pose+fill":
    columns.append(poured)
  return np.stack(columns, 1).astype(np.float64)


def tau_by_side(
  embs: list[np.ndarray], labels: list[np.ndarray], mirrored: np.ndarray
) -> dict[str, float]:
  """Kendall's tau (x100, the evaluation's stride) over all val pairs, over the pairs whose
  videos are both mirrored or both not (same side), and over the others (opposite sides)."""
  per_pair = metrics.kendalls_tau(embs, config_lib.eval_config().tau_stride, labels=labels).per_pair
  same = (mirrored[:, None] == mirrored[None, :]) & ~np.eye(len(mirrored), dtype=bool)
  return {
    "tau_same_side": 100.0 * float(np.nanmean(per_pair[same])),
    "tau_opposite_sides": 100.0
    * float(np.nanmean(per_pair[mirrored[:, None] != mirrored[None, :]])),
  }


def ground_truth_rows() -> dict[str, dict[str, float]]:
  config = synthetic.default_config()
  sizes = (("train", config.num_train), ("val", config.num_val))
  labels = {s: [synthetic.timeline(i, s, config).labels() for i in range(n)] for s, n in sizes}
  mirrored = np.array([synthetic.is_mirrored(i, "val", config) for i in range(config.num_val)])
  rows = {}
  for end_state in END_STATES:
    for kind in GROUND_TRUTHS:
      embs = {
        s: [ground_truth_embedding(i, s, end_state, kind) for i in range(n)] for s, n in sizes
      }
      row = metrics.evaluate_embeddings(embs["train"], labels["train"], embs["val"], labels["val"])
      row.update(tau_by_side(embs["val"], labels["val"], mirrored))
      rows[f"{end_state}: {kind}"] = row
  return rows


MIRRORS = {(0, 4), (4, 0), (1, 3), (3, 1)}  # reach <-> return, tilt <-> untilt


def embedding_diagnostics(workdir: str) -> dict[str, float]:
  """What a trained encoder's errors are made of (its val and train videos, as evaluated).

  ``mirror_share``: the share of the Class 100 probe's wrong frames that it gives the phase
  whose pose retraces the true one (reach <-> return, tilt <-> untilt); ``between_video``: the
  share of the embedding's variance that is between the videos' mean embeddings (appearance);
  ``centred``: the metrics after subtracting each video's mean embedding."""
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from lac_jax import data as data_lib, evaluate, inference  # pylint: disable=g-import-not-at-top

  trained = inference.load_trained(workdir)
  config = trained.config
  eval_config = config.eval
  size = evaluate.eval_image_size(config)
  splits = {s: data_lib.load_split(config.data, s) for s in ("train", "val")}
  embs = evaluate.embed_videos(
    trained.model,
    trained.variables,
    splits["train"] + splits["val"],
    image_size=size,
    log=lambda m: None,
  )
  n = len(splits["train"])
  labels = [v.labels for v in splits["train"] + splits["val"]]
  row = metrics.evaluate_embeddings(embs[:n], labels[:n], embs[n:], labels[n:], eval_config)
  centred = [e - e.mean(0, keepdims=True) for e in embs]
  row_c = metrics.evaluate_embeddings(centred[:n], labels[:n], centred[n:], labels[n:], eval_config)
  x, y = np.concatenate(embs[:n]), np.concatenate(labels[:n])
  xv, yv = np.concatenate(embs[n:]), np.concatenate(labels[n:])
  pred = (
    linear_model.LogisticRegression(C=1.0, solver="lbfgs", max_iter=100000).fit(x, y).predict(xv)
  )
  wrong = pred != yv
  mirror = np.array([(int(a), int(b)) in MIRRORS for a, b in zip(yv, pred)])
  every = np.concatenate(embs)
  means = np.stack([e.mean(0) for e in embs])
  weights = np.array([len(e) for e in embs], float)
  between = float(
    np.sum(weights[:, None] * (means - every.mean(0)) ** 2) / np.sum((every - every.mean(0)) ** 2)
  )
  out = {k: float(row[k]) for k in COLUMNS}
  out.update({f"centred_{k}": float(row_c[k]) for k in COLUMNS})
  mirrored = np.array(
    [synthetic.is_mirrored(i, "val", config.data.synthetic) for i in range(len(splits["val"]))]
  )
  out.update(tau_by_side(embs[n:], labels[n:], mirrored))
  out.update(
    class_error=100.0 * float(wrong.mean()),
    mirror_share=100.0 * float(mirror[wrong].mean()) if wrong.any() else 0.0,
    between_video=100.0 * between,
  )
  return out


def setting_name(method: str, end_state: str) -> str:
  return method if end_state == "start" else f"{method}_{end_state}"


def train_settings(methods: list[str], end_states: list[str]) -> seeds.Settings:
  settings = {}
  for end_state in end_states:
    for method in methods:
      config = METHOD_CONFIG.get(method, f"configs/synthetic.py:{method}")
      overrides = {} if end_state == "start" else {"data.synthetic.end_state": end_state}
      settings[setting_name(method, end_state)] = (
        config,
        overrides,
        f"{method.upper()}, synthetic end_state={end_state!r}",
      )
  return settings


def _row(name: str, values: dict[str, str], width: int) -> str:
  return name.ljust(width) + "".join(f"{values.get(k, ''):>16}" for k in COLUMNS)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--part", choices=("generator", "training", "embeddings", "all"), default="all"
  )
  parser.add_argument("--methods", nargs="+", default=["lac", "lav"])
  parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
  parser.add_argument("--end_states", nargs="+", default=list(END_STATES), choices=END_STATES)
  parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "methods"))
  parser.add_argument(
    "--output", default=os.path.join(ROOT, "benchmarks", "results", "synthetic_property.json")
  )
  args = parser.parse_args()
  headers = dict(tables.table_columns(COLUMNS))
  out = {}
  if args.part in ("generator", "all"):
    pixels = {e: pixel_distances(e) for e in END_STATES}
    print("Pixels that differ, % (val videos, 32 px, no noise or shake):")
    for e, row in pixels.items():
      print(f"  end_state={e!r}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    truth = ground_truth_rows()
    width = max(map(len, truth)) + 2
    print("\nGround-truth embeddings (the generator's state; metrics x100):")
    print(
      "".ljust(width)
      + "".join(f"{headers[k]:>16}" for k in COLUMNS)
      + "".join(f"{k:>20}" for k in SIDES)
    )
    for name, row in truth.items():
      print(
        _row(name, {k: f"{row[k]:.2f}" for k in COLUMNS}, width)
        + "".join(f"{row[k]:>20.2f}" for k in SIDES)
      )
    out.update(pixels=pixels, ground_truth=truth)
  if args.part in ("training", "all"):
    settings = train_settings(args.methods, args.end_states)
    runs = seeds.run_all(settings, list(settings), args.seeds, args.workdir)
    means, stds = {}, {}
    for setting, by_seed in runs.items():
      means[setting], stds[setting] = seeds.stats(
        [r["rows"][seeds.TRAINED] for r in by_seed.values()]
      )
    width = max(map(len, means)) + 2
    print(f"\nTrained, seeds {args.seeds} (mean ± std):")
    print("".ljust(width) + "".join(f"{headers[k]:>16}" for k in COLUMNS))
    for s in means:
      print(_row(s, {k: f"{means[s][k]:.2f} ± {stds[s][k]:.2f}" for k in COLUMNS}, width))
    gaps = {}
    if "lac" in args.methods:
      print("\nDifference from LAC on the same generator (mean; * = beyond std + std_LAC):")
      for end_state in args.end_states:
        ref = setting_name("lac", end_state)
        for method in [m for m in args.methods if m != "lac"]:
          s = setting_name(method, end_state)
          gaps[s] = {k: means[s][k] - means[ref][k] for k in COLUMNS}
          cells = {
            k: f"{gaps[s][k]:+.2f}" + ("*" if abs(gaps[s][k]) > stds[s][k] + stds[ref][k] else " ")
            for k in COLUMNS
          }
          print(_row(f"{s} - {ref}", cells, width + 8))
    out.update(
      settings={
        s: {"config": c, "overrides": o, "description": d} for s, (c, o, d) in settings.items()
      },
      runs=runs,
      mean=means,
      std=stds,
      difference_from_lac=gaps,
    )
  if args.part in ("embeddings", "all"):
    diagnostics = {}
    for setting in train_settings(args.methods, args.end_states):
      for seed in args.seeds:
        run_dir = os.path.join(args.workdir, setting, f"seed{seed}")
        if seeds.read_rows(run_dir) is not None:
          diagnostics[f"{setting} seed {seed}"] = embedding_diagnostics(run_dir)
    if diagnostics:
      keys = (
        "class_error",
        "mirror_share",
        "between_video",
        "tau",
        "tau_same_side",
        "tau_opposite_sides",
        "centred_tau",
      )
      width = max(map(len, diagnostics)) + 2
      print(
        "\nTrained encoders: Class 100 errors (%), % of them that are the retraced phase, % "
        "of the variance between videos, tau (all, same-side, opposite-side pairs; per-video "
        "centred):"
      )
      print("".ljust(width) + "".join(f"{k:>20}" for k in keys))
      for name, d in diagnostics.items():
        print(name.ljust(width) + "".join(f"{d[k]:>20.2f}" for k in keys))
    out.update(embeddings=diagnostics)
  results.write("synthetic_property", vars(args), out, path=args.output)


if __name__ == "__main__":
  main()
