"""Preemption: SIGTERM or SIGINT during training ends the run at a step boundary, checkpointed.

While `StopRequest` is active (the training loop), either signal only sets a flag: the loop
finishes its step, saves a checkpoint, logs ``preempted at step N: checkpoint saved`` and the
command exits 0; rerunning it resumes to the parameters of an uninterrupted run. Several
processes agree on the step through a tiny pmapped ``psum`` of the flags, read one step late.
Details: docs/performance.md, "Preemption".
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Optional

from absl import logging
import jax
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_active: Optional["StopRequest"] = None


def active() -> Optional["StopRequest"]:
  """The `StopRequest` now installed (in this process), or None."""
  return _active


class StopRequest:
  """A context manager: while active, SIGTERM and SIGINT set `requested` instead of ending the
  process (installed only from the main thread: elsewhere the signals keep their handlers).

  The loop calls `should_stop` once per step, on every process, in step order.
  """

  def __init__(self, signals: tuple[int, ...] = SIGNALS):
    self.signals = tuple(signals)
    self.signum: Optional[int] = None  # the first signal received
    self.count = 0  # signals received
    self._previous: dict[int, Any] = {}
    self._sum = None  # the pmapped psum (several processes)
    self._pending = None  # the sum dispatched at the previous step

  @property
  def requested(self) -> bool:
    """Whether this process received one of the signals."""
    return self.signum is not None

  def __enter__(self) -> "StopRequest":
    global _active
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.signal(s, self._handle)
    else:
      logging.warning(
        "Training outside the main thread: SIGTERM/SIGINT keep their handlers "
        "(no checkpoint on preemption)"
      )
    if jax.process_count() > 1:
      self._sum = jax.pmap(lambda x: jax.lax.psum(x, "processes"), axis_name="processes")
    _active = self
    return self

  def __exit__(self, *exc: Any) -> None:
    global _active
    for s, previous in self._previous.items():
      # None: a handler that was not set from Python; the nearest is the default.
      signal.signal(s, signal.SIG_DFL if previous is None else previous)
    self._previous = {}
    self._sum = self._pending = None
    if _active is self:
      _active = None

  def _handle(self, signum: int, frame: Any) -> None:  # pylint: disable=unused-argument
    name = signal.Signals(signum).name
    self.count += 1
    if self.signum is None:
      self.signum = signum
      text = (
        f"lac_jax: {name} received: finishing this step, then saving a checkpoint and exiting\n"
      )
    else:
      text = (
        f"lac_jax: {name} received again: still finishing the step and saving the "
        "checkpoint (SIGKILL stops at once)\n"
      )
    try:  # os.write: no buffered stream is entered from a handler.
      os.write(2, text.encode())
    except OSError:
      pass

  def should_stop(self) -> bool:
    """Whether every process stops after the step just dispatched (call once per step, on
    every process, after the step).

    One process: whether it was signalled. Several: whether any process had been signalled
    when the previous step's call was made; this call queues the sum for the next one.
    """
    if self._sum is None:
      return self.requested
    flags = np.full((jax.local_device_count(),), int(self.requested), np.int32)
    previous, self._pending = self._pending, self._sum(flags)
    if previous is None:
      return False
    return int(np.asarray(previous.addressable_data(0)).reshape(-1)[0]) > 0
