"""Fitting the training step into the device's memory: trunk chunking and rematerialisation.

`device_budget` says how many bytes a step may use (``model.memory_budget_gb``, or what the
device reports; on CPU ``CPU_FRACTION`` of the host's memory). `fit` compiles the step for
candidate trunk settings, fastest first (whole trunk, then ever smaller rematerialised chunks),
and returns the first whose compiled footprint fits. Chunking makes BatchNorm statistics per
chunk; the choice is logged. Details: docs/performance.md#fitting-the-step-into-memory.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Optional

from absl import logging
import jax
import ml_collections
import numpy as np

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
  return f"{num_bytes / GIB:.2f} GiB" if num_bytes >= GIB else f"{num_bytes / (1 << 20):.1f} MiB"


def device_budget(budget_gb: float = 0.0, device: Optional[jax.Device] = None) -> tuple[int, str]:
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
  return int(CPU_FRACTION * physical), (
    f"{CPU_FRACTION:.0%} of the host's "
    f"{physical / GIB:.1f} GiB ({device.platform} devices "
    "report no memory limit)"
  )


def footprint(compiled: Any) -> int:
  """Bytes per device of a compiled (pmapped or jitted) computation."""
  m = compiled.memory_analysis()
  return int(
    m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
  )


def candidates(frames_per_device: int) -> list[tuple[int, bool]]:
  """(chunk, remat) settings, fastest first: whole, then halves down to one frame."""
  out = [(0, False)]
  chunk = frames_per_device // 2
  while chunk >= 1:
    out.append((chunk, True))
    chunk //= 2
  return out


def fit(
  compile_step: Callable[[int, bool], Any],
  frames_per_device: int,
  budget: int,
  log: Optional[Callable[[str], None]] = None,
  settings: Optional[list[tuple[int, bool]]] = None,
) -> tuple[Plan, Any]:
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
      log(
        f"Memory: {plan.describe()} per device, within the budget of {size(budget)}"
        + (f" (too large: {'; '.join(p.describe() for p in tried[:-1])})" if len(tried) > 1 else "")
      )
      return plan, compiled
    del compiled
  smallest = min(tried, key=lambda p: p.bytes)
  raise MemoryError(
    f"the training step needs at least {size(smallest.bytes)} per device "
    f"({smallest.describe()}), more than the budget of {size(budget)}: lower "
    "config.data.batch_size or data.sampling.num_frames, use more devices, set "
    "config.model.dtype=bfloat16, or raise config.model.memory_budget_gb"
  )


def fit_step(
  model_config: ml_collections.ConfigDict,
  make_step: Callable[[int, bool], tuple[Any, Callable]],
  p_state: Any,
  batch: Mapping[str, np.ndarray],
  rng: jax.Array,
) -> tuple[Any, Any, Plan]:
  """The compiled parallel train step for the trunk setting that fits the memory budget.

  With ``model.trunk_chunk=0``, ``trunk_remat=False`` and ``memory_budget_gb >= 0`` the setting
  is chosen by `fit` (the whole trunk when it fits); otherwise the configured one is compiled
  and its footprint logged. Every process takes process 0's choice.

  Args:
    model_config: ``config.model``.
    make_step: ``(trunk_chunk, trunk_remat) -> (model, pmapped step)`` for that setting.
    p_state: the replicated state; batch: one sharded batch; rng: the dropout key, as the step
      will get them.
  Returns:
    ``(compiled step, p_state with the chosen model's apply_fn, plan)``.
  """
  m = model_config
  budget, source = device_budget(max(float(m.memory_budget_gb), 0.0))
  frames = int(np.prod(batch["frames"].shape[1:4]))  # per device: videos x 2 views x T
  auto = m.memory_budget_gb >= 0 and m.trunk_chunk == 0 and not m.trunk_remat
  models, steps = {}, {}

  def compile_step(chunk: int, remat: bool) -> Any:
    models[(chunk, remat)], steps[(chunk, remat)] = make_step(int(chunk), bool(remat))
    state = p_state.replace(apply_fn=models[(chunk, remat)].apply)
    return steps[(chunk, remat)].lower(state, batch, rng).compile()

  logging.info("Memory budget per device: %s (%s)", size(budget), source)
  if auto:
    plan, compiled = fit(compile_step, frames, budget)
  else:
    compiled = compile_step(int(m.trunk_chunk), bool(m.trunk_remat))
    plan = Plan(int(m.trunk_chunk), bool(m.trunk_remat), footprint(compiled))
    over = m.memory_budget_gb >= 0 and plan.bytes > budget
    (logging.warning if over else logging.info)(
      "Memory: %s per device (config.model.trunk_chunk / trunk_remat as set)%s",
      plan.describe(),
      " - more than the budget" if over else "",
    )
  if jax.process_count() > 1:  # Every process must run the same program.
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    chunk, remat = (
      int(v)
      for v in multihost_utils.broadcast_one_to_all(
        np.array([plan.chunk, int(plan.remat)], np.int32)
      )
    )
    if (chunk, bool(remat)) != (plan.chunk, plan.remat):
      compiled = compile_step(chunk, bool(remat))
      plan = Plan(chunk, bool(remat), footprint(compiled))
      logging.info("Memory: process 0 chose %s", plan.describe())
    # A multi-process pmap compiled ahead of time expects global arrays; the pmapped function
    # takes this process's shards (and compiles once more).
    compiled = steps[(plan.chunk, plan.remat)]
  return compiled, p_state.replace(apply_fn=models[(plan.chunk, plan.remat)].apply), plan
