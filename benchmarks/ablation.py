"""The loss presets side by side: each trains ``configs/synthetic.py`` with several seeds.

Usage (from the repository root; about 5 minutes per run on 2 CPU cores, 18 runs by default)::

  python benchmarks/ablation.py                         # every setting, seeds 0 1 2
  python benchmarks/ablation.py --settings paper lc_only --seeds 0 1 2 3 4

The runs, resuming and the outputs: `seeds` (``benchmarks/results/ablation.json``).
"""

import seeds

SETTINGS = {
  "paper": ("configs/synthetic.py", {}, "the paper preset (default)"),
  "lc_only": ("configs/synthetic.py", {"loss.alpha": 0.0}, "L_c only (alpha = 0)"),
  "lc_ll": (
    "configs/synthetic.py",
    {"loss.beta": 0.0},
    "L_c + alpha L_l (beta = 0), the paper's Table 5 ablation",
  ),
  "official_code": (
    "configs/synthetic.py:official_code",
    {},
    "the official code's pipeline (configs/common.py:official_code)",
  ),
  "carl_tau": ("configs/synthetic.py", {"loss.tau": 0.1}, "CARL's temperature (tau = 0.1)"),
  "max_sw": (
    "configs/synthetic.py",
    {"loss.sw_sign": -1, "loss.gap_positive": True},
    "maximised SW score (sw_sign = -1, positive gaps)",
  ),
}

if __name__ == "__main__":
  seeds.main("ablation", SETTINGS, "paper", __doc__.split("\n")[0])
