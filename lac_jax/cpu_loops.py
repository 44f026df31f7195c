"""Opt-in XLA:CPU option that compiles small ``while`` loops (the SW kernel's scans) whole.

XLA:CPU dispatches each kernel of a loop body separately on every iteration, which is most of
the Smith-Waterman kernel's time for one or a few pairs. `enable` sets XLA's
``xla_cpu_small_while_loop_byte_threshold`` (a backend extra option) so such loops compile into
one function: same HLO, same numbers. Call it before the first JAX computation of the process.
Why, the shell equivalent and the measurements: docs/sw_kernel.md (the ``cpu_loops`` section).
"""

from __future__ import annotations

import logging
import os

OPTION = "xla_cpu_small_while_loop_byte_threshold"
# Per-iteration bytes below which a loop is compiled whole. 64 MiB covers the SW kernel up to
# a few hundred pairs at T=128, and stays far below a ResNet trunk chunk's activations
# (hundreds of MB per scanned layer), which keep XLA's usual loop execution.
DEFAULT_BYTES = 64 << 20
_EXTRA = "--xla_backend_extra_options="


def merged_xla_flags(xla_flags: str, threshold: int = DEFAULT_BYTES) -> str:
  """``xla_flags`` with ``OPTION=threshold`` added to ``--xla_backend_extra_options``.

  An ``OPTION`` value already present is kept (the user's choice wins); other extra options
  and flags are kept unchanged.
  """
  if threshold < 0:
    raise ValueError(f"cpu_loops: threshold must be >= 0 bytes, got {threshold}")
  parts = xla_flags.split()
  for i, part in enumerate(parts):
    if part.startswith(_EXTRA):
      entries = [e for e in part[len(_EXTRA) :].split(",") if e]
      if any(e.split("=", 1)[0] == OPTION for e in entries):
        return xla_flags
      parts[i] = _EXTRA + ",".join(entries + [f"{OPTION}={threshold}"])
      return " ".join(parts)
  return " ".join(parts + [f"{_EXTRA}{OPTION}={threshold}"])


def enable(threshold: int = DEFAULT_BYTES) -> bool:
  """Turns the option on for this process. Returns False (and warns) if it is too late.

  Call it before anything runs on JAX (e.g. first thing in a notebook). It only affects the
  CPU backend.
  """
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top

  if xla_bridge.backends_are_initialized():
    logging.warning(
      "lac_jax.cpu_loops.enable(): JAX backends already exist, so XLA_FLAGS is "
      "not read again; call it before the first JAX computation."
    )
    return False
  os.environ["XLA_FLAGS"] = merged_xla_flags(os.environ.get("XLA_FLAGS", ""), threshold)
  return True
