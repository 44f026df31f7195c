"""Differentiable alignment kernels, each an anti-diagonal ``lax.scan`` (`layout`):

* `soft_smith_waterman` (local alignment, LAC's L_sw; `smith_waterman_path` its hard path),
* `soft_dtw` (global alignment, Cuturi and Blondel 2017; LAV's loss).
"""

from lac_jax.alignment.layout import NEG, default_num_segments
from lac_jax.alignment.smith_waterman import PAD_VALUE, smith_waterman_path, soft_smith_waterman
from lac_jax.alignment.soft_dtw import soft_dtw

__all__ = [
  "NEG",
  "PAD_VALUE",
  "default_num_segments",
  "smith_waterman_path",
  "soft_dtw",
  "soft_smith_waterman",
]
