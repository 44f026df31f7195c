"""Masks of padded frames in the loss terms: bool ``[..., T]``, False = padded (a prefix of
valid frames followed by padding, as `lac_jax.data.sampling` makes them)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from lac_jax.alignment import NEG

Array = jax.Array


def masked_log_softmax(x: Array, col_valid: Optional[Array]) -> Array:
  """Row log-softmax of ``x [..., T1, T2]`` over the valid columns (``col_valid [..., T2]``)."""
  if col_valid is not None:
    x = jnp.where(col_valid[..., None, :], x, NEG)
  return jax.nn.log_softmax(x, axis=-1)


def count(mask: Optional[Array], t: int, dtype) -> Array:
  return jnp.asarray(t, dtype) if mask is None else mask.sum(-1).astype(dtype)


def row_average(per_row: Array, row_mask: Optional[Array], divisor: Array) -> Array:
  """``sum_i per_row[..., i] (over valid rows) / divisor``; divisor clipped to >= 1."""
  if row_mask is not None:
    per_row = jnp.where(row_mask, per_row, 0.0)
  return per_row.sum(-1) / jnp.maximum(divisor, 1.0)


def valid_length(mask: Array) -> Array:
  """Index of the last valid frame + 1 (clipped to >= 1): ``[..., T] -> int32 [...]``."""
  t = mask.shape[-1]
  last = jnp.max(jnp.where(mask, jnp.arange(1, t + 1, dtype=jnp.int32), 0), axis=-1)
  return jnp.maximum(last, 1)


def check_mask(mask, name: str, shape: tuple, what: str = "lac_loss") -> Optional[Array]:
  """Validates a bool mask of ``shape``; checks the prefix assumption when it is concrete."""
  if mask is None:
    return None
  if not isinstance(mask, jax.core.Tracer):
    m = np.asarray(mask)
    if m.shape != shape:
      raise ValueError(f"{what}: {name} must have shape {shape}, got {m.shape}")
    if m.dtype != np.bool_:
      raise ValueError(f"{what}: {name} must be bool (False = padded frame), got {m.dtype}")
    if np.any(m[..., 1:] & ~m[..., :-1]):
      raise ValueError(
        f"{what}: {name} must be a prefix of valid frames followed by padding "
        "(the SW lengths assume it), got a padded frame before a valid one"
      )
    if not np.all(m.any(-1)):
      raise ValueError(f"{what}: {name} has a view with no valid frame")
    return jnp.asarray(m)
  if mask.shape != shape or mask.dtype != jnp.bool_:
    raise ValueError(f"{what}: {name} must be bool {shape}, got {mask.dtype} {mask.shape}")
  return mask
