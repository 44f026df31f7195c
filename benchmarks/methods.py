"""LAC and its baselines side by side: each method's loss trains ``configs/synthetic.py`` (same
encoder, data, budget and evaluation) with several seeds.

Usage (from the repository root; 18 runs by default, about 1.5-3 minutes each on 2 CPU cores,
90 s for LAC on an idle AMD EPYC VM)::

  python benchmarks/methods.py
  python benchmarks/methods.py --settings lac tcc --seeds 0 1 2

Each method uses its own paper's and code's defaults (`lac_jax.losses`); ``lac`` is the same run
as the ablation's ``paper`` setting. The runs, resuming and the outputs: `seeds`
(``benchmarks/results/methods.json``). The synthetic videos rank the methods by a property of
the generator (docs/synthetic.md, ``benchmarks/synthetic_property.py``): a smoke test of each
loss, not a ranking for real video.
"""

import seeds

SETTINGS = {
  "lac": ("configs/synthetic.py", {}, "LAC, the paper's loss"),
  "scl": ("configs/synthetic.py:scl", {}, "SCL (CARL)"),
  "tcc": ("configs/synthetic.py:tcc", {}, "TCC, cycle-back regression with variance"),
  "tcn": ("configs/synthetic.py:tcn", {}, "TCN, n-pairs with positives 1-5 frames back"),
  "lav": ("configs/synthetic.py:lav", {}, "LAV, soft-DTW + contrastive IDM"),
  "gta": ("configs/synthetic.py:gta", {}, "GTA, smoothDTW + global cycle consistency"),
}

if __name__ == "__main__":
  seeds.main("methods", SETTINGS, "lac", __doc__.split("\n")[0])
