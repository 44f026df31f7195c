"""Fitting the training step into the device's memory: trunk chunking and rematerialisation.

`device_budget` says how many bytes a step may use (``model.memory_budget_gb``, or what the
device reports: ``memory_stats()['bytes_limit']`` on GPU / TPU; on CPU, where JAX reports
nothing, ``CPU_FRACTION`` of the host's physical memory). `fit` compiles the step for
candidate trunk settings, fastest first (the whole trunk at once; then chunks of half, a
quarter, ... of the device's frames, each rematerialised in the backward pass) and keeps the
first whose compiled footprint (XLA's buffer assignment: arguments + outputs + temporaries -
aliased) fits. The compiled step is returned, so the search costs no extra compile when the
first setting fits.

Chunking changes the maths slightly: BatchNorm statistics are then per chunk (ghost batch
norm); the choice is logged.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional

from absl import logging
import jax

CPU_FRACTION = 0.75  # of physical memory: the rest is for the input pipeline and the host
GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Plan:
  """A trunk setting and its compiled footprint on one device."""

  chunk: int  # frames per trunk call (0: all at once)
  remat: bool  # rematerialise each chunk in the backward pass
  bytes: int  # arguments + outputs + temporaries - aliased, per device

  def describe(self) -> str:
    how = "whole trunk" if self.chunk == 0 else f"trunk in chunks of {self.chunk} frames"
    return f"{how}{', rematerialised' if self.remat else ''}: {size(self.bytes)}"


def size(num_bytes: float) -> str:
  """``'1.25 GiB'`` / ``'310.0 MiB'``."""
  return (f"{num_bytes / GIB:.2f} GiB" if num_bytes >= GIB else
          f"{num_bytes / (1 << 20):.1f} MiB")


def device_budget(budget_gb: float = 0.0, device: Optional[jax.Device] = None
                  ) -> tuple[int, str]:
  """(bytes a step may use on ``device``, where that number comes from).

  ``budget_gb > 0`` is taken as given; otherwise the device's ``bytes_limit``, or on a device
  that reports none (CPU) `CPU_FRACTION` of the host's physical memory.
  """
  if budget_gb > 0:
    return int(budget_gb * GIB), "config.model.memory_budget_gb"
  device = jax.local_devices()[0] if device is None else device
  try:
    stats = device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  (backends without memory stats)
    stats = {}
  if stats.get("bytes_limit"):
    return int(stats["bytes_limit"]), f"{device.platform} memory_stats()['bytes_limit']"
  physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return int(CPU_FRACTION * physical), (f"{CPU_FRACTION:.0%} of the host's "
                                        f"{physical / GIB:.1f} GiB ({device.platform} devices "
                                        "report no memory limit)")


def footprint(compiled: Any) -> int:
  """Bytes per device of a compiled (pmapped or jitted) computation."""
  m = compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes -
             m.alias_size_in_bytes)


def candidates(frames_per_device: int) -> list[tuple[int, bool]]:
  """(chunk, remat) settings, fastest first: whole, then halves down to one frame."""
  out = [(0, False)]
  chunk = frames_per_device // 2
  while chunk >= 1:
    out.append((chunk, True))
    chunk //= 2
  return out


def fit(compile_step: Callable[[int, bool], Any], frames_per_device: int, budget: int,
        log: Optional[Callable[[str], None]] = None,
        settings: Optional[list[tuple[int, bool]]] = None) -> tuple[Plan, Any]:
  """The first of ``settings`` (default `candidates`) whose compiled step fits in ``budget``.

  Args:
    compile_step: ``(chunk, remat) -> compiled step`` (e.g. ``pmap(...).lower(...).compile()``).
    frames_per_device: frames through the trunk per device and step (videos x 2 views x T).
    budget: bytes (`device_budget`).
    log: where the choice is reported (default absl ``logging.info``).
    settings: the (chunk, remat) settings to try, in order.
  Returns:
    ``(plan, compiled step)``.
  Raises:
    MemoryError: no setting fits, naming the smallest footprint and the knobs.
  """
  tried = []
  settings = candidates(frames_per_device) if settings is None else settings
  log = logging.info if log is None else log
  for chunk, remat in settings:
    compiled = compile_step(chunk, remat)
    plan = Plan(chunk, remat, footprint(compiled))
    tried.append(plan)
    if plan.bytes <= budget:
      log(f"Memory: {plan.describe()} per device, within the budget of {size(budget)}"
          + (f" (too large: {'; '.join(p.describe() for p in tried[:-1])})"
             if len(tried) > 1 else ""))
      return plan, compiled
    del compiled
  smallest = min(tried, key=lambda p: p.bytes)
  raise MemoryError(
      f"the training step needs at least {size(smallest.bytes)} per device "
      f"({smallest.describe()}), more than the budget of {size(budget)}: lower "
      "config.data.batch_size or data.sampling.num_frames, use more devices, set "
      "config.model.dtype=bfloat16, or raise config.model.memory_budget_gb")
