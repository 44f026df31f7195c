"""LAC and its baselines side by side: each method's loss trains the same CPU-sized setting (same
encoder, data, budget and evaluation) with several seeds, on the synthetic videos or on one
rendered action.

Usage (from the repository root; about 1.5-3 minutes a run on 2 CPU cores)::

  python benchmarks/methods.py                                  # synthetic, 18 runs
  python benchmarks/methods.py --settings lac tcc --seeds 0 1 2
  python benchmarks/methods.py --dataset=rendered [--action=drop]   # 7 settings x 3 seeds

Each method uses its own paper's and code's defaults (`lac_jax.losses`); ``lac`` is the same run
as the ablation's ``paper`` setting; ``lc_only`` (rendered) is LAC's L_c alone (alpha = 0). The
runs, resuming and the outputs: `seeds` (``benchmarks/results/methods.json``, and
``methods_rendered.json`` for the door, ``methods_rendered_<action>.json`` for another action).
The synthetic videos rank the methods by a property of the generator (docs/synthetic.md): a
smoke test of each loss, not a ranking for real video.
"""

import argparse
import os
import sys

import seeds
from lac_jax.data import rendered  # pylint: disable=g-import-not-at-top  (after seeds: sys.path)

# Every rendered run reads its videos from one store (rendered once; keyed by action and settings).
RENDER_CACHE = os.path.join(seeds.ROOT, "runs", "rendered_cache")

METHODS = {
  "lac": ("", {}, "LAC, the paper's loss"),
  "scl": ("scl", {}, "SCL (CARL)"),
  "tcc": ("tcc", {}, "TCC, cycle-back regression with variance"),
  "tcn": ("tcn", {}, "TCN, n-pairs with positives 1-5 frames back"),
  "lav": ("lav", {}, "LAV, soft-DTW + contrastive IDM"),
  "gta": ("gta", {}, "GTA, smoothDTW + global cycle consistency"),
}
LC_ONLY = ("", {"loss.alpha": 0}, "L_c alone (LAC without L_l and the SW terms)")


def settings(dataset: str, action: str) -> dict[str, tuple[str, dict, str]]:
  """``{name: (config argument, overrides, what)}`` for `seeds`."""
  if dataset == "synthetic":
    return {
      k: ("configs/synthetic.py" + (f":{m}" if m else ""), o, w) for k, (m, o, w) in METHODS.items()
    }
  chosen = {"lac": METHODS["lac"], "lc_only": LC_ONLY}
  chosen.update({k: v for k, v in METHODS.items() if k != "lac"})
  return {
    k: (
      f"configs/rendered.py:{action}" + (f",{m}" if m else ""),
      {**o, "data.cache_dir": RENDER_CACHE},
      w,
    )
    for k, (m, o, w) in chosen.items()
  }


if __name__ == "__main__":
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument("--dataset", choices=("synthetic", "rendered"), default="synthetic")
  parser.add_argument("--action", choices=rendered.ACTIONS, default="door")
  known, rest = parser.parse_known_args()
  sys.argv = [sys.argv[0], *rest]
  name = "methods" if known.dataset == "synthetic" else "methods_rendered"
  if known.dataset == "rendered" and known.action != "door":
    name += f"_{known.action}"
  seeds.main(name, settings(known.dataset, known.action), "lac", __doc__.split("\n")[0])
