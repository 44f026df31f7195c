"""SCL, the sequence contrastive loss of CARL (Chen et al. 2022; CARL_code ``algos/scl.py``).

For every frame of one view: the KL divergence between a Gaussian prior over the other view's
frames (by time distance, variance ``var`` frames) and the softmax of cosine similarity / ``tau``
over them; both views as queries, averaged over the valid frames of both. That is LAC's
``L_c`` (`lac.contrastive_loss`) with CARL's settings, reused here. CARL also gives padded frames
a 1e-6 weight in every denominator of the batch (official LAC is a verbatim copy,
baselines.md §1); here padded frames are removed exactly, which differs from that by < 1e-6
relative per pair.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections

from lac_jax import losses
from lac_jax.losses import lac
from lac_jax.losses import masks

NAME = "scl"
Array = jax.Array


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """SCL's fields (the official LAC code's SCL is CARL's loss, so both presets agree)."""
  c = losses.new_config(NAME, preset)
  c.tau = 0.1  # softmax temperature (CARL 0.1)
  c.var = 10.0  # variance of the Gaussian prior, frames (CARL label_varience 10)
  c.log_eps = 1e-6  # CARL: log(Q + 1e-6)
  c.normalize_eps = 1e-6  # cosine similarity: z / max(|z|, eps)
  c.honour_masks = True  # CARL honours masks (padded frames leave every sum)
  return c


def check_config(cfg: ml_collections.ConfigDict) -> None:
  losses.check_fields(cfg, positive=("tau", "var", "normalize_eps"), nonnegative=("log_eps",))


def scl_loss(z1: Array, z2: Array, steps1: Array, steps2: Array, *, tau: float, var: float,
             log_eps: float, normalize_eps: float, mask1: Optional[Array] = None,
             mask2: Optional[Array] = None) -> tuple[Array, dict[str, Array]]:
  """SCL per video: ``z1 [..., T1, E], z2 [..., T2, E]`` -> ``(loss [...], parts)``.

  The mean per-frame KL over the valid frames of both views (each view's frames query the
  other's), as CARL's sum over valid pairs divided by the number of valid frames.
  """
  _, parts = lac.contrastive_loss(
      z1, z2, steps1, steps2, tau=tau, var=var, similarity="cosine",
      normalize_eps=normalize_eps, normalization="T", directions=2, divergence="kl",
      log_eps=log_eps, mask1=mask1, mask2=mask2)
  n1 = masks.count(mask1, z1.shape[-2], z1.dtype)
  n2 = masks.count(mask2, z2.shape[-2], z2.dtype)
  loss = (n1 * parts["l_c12"] + n2 * parts["l_c21"]) / (n1 + n2)
  return loss, {"loss": loss, "kl12": parts["l_c12"], "kl21": parts["l_c21"]}


class SCL(losses.Loss):
  progress_parts = ("loss", "kl12", "kl21")

  def __init__(self, cfg: ml_collections.ConfigDict):
    check_config(cfg)
    self.kwargs = dict(tau=cfg.tau, var=cfg.var, log_eps=cfg.log_eps,
                       normalize_eps=cfg.normalize_eps)
    self.honour_masks = bool(cfg.honour_masks)

  def __call__(self, params: Optional[Mapping[str, Any]], z: Array, steps: Array,
               mask: Optional[Array] = None, lengths: Optional[Array] = None):
    del params, lengths
    z = jnp.asarray(z).astype(jnp.result_type(z, jnp.float32))
    if not self.honour_masks:
      mask = None
    m = (None, None) if mask is None else (mask[:, 0], mask[:, 1])
    _, parts = scl_loss(z[:, 0], z[:, 1], steps[:, 0], steps[:, 1], mask1=m[0], mask2=m[1],
                        **self.kwargs)
    parts = {k: jnp.mean(v) for k, v in parts.items()}
    return parts["loss"], parts


def build(cfg: ml_collections.ConfigDict) -> SCL:
  return SCL(cfg)
