"""Checkpoints of the training state with orbax's `CheckpointManager` (``workdir/checkpoints``).

The state is saved as its flax state dict (nested dicts of host NumPy arrays: params, batch
statistics, optimiser state, gap penalties, step, skipped-step counter), so a checkpoint is
independent of the number of devices it was written from, and is restored into a template
state built from the same config (`restore`). Every process calls `save`; orbax writes the
host arrays once, from process 0.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from absl import logging
import jax
from flax import serialization
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


def check_workdir(workdir: str) -> str:
  """The absolute ``workdir``; raises if it is an existing file (a directory is created later).

  Raises:
    NotADirectoryError: ``workdir`` (or a parent of it) exists and is not a directory.
  """
  if not workdir:
    raise ValueError("--workdir: expected a directory path, got an empty string")
  path = os.path.abspath(os.path.expanduser(str(workdir)))
  probe = path
  while probe and not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if os.path.exists(probe) and not os.path.isdir(probe):
    raise NotADirectoryError(
        f"--workdir {workdir!r}: {probe!r} is a file, expected a directory (the run's "
        "checkpoints, metrics and evaluation results go there; it is created if missing)")
  return path


class Checkpoints:
  """Saves and restores training states under ``directory``, keeping the last ``keep``.

  Args:
    directory: e.g. ``workdir/checkpoints`` (created on first save).
    keep: number of checkpoints kept (older ones are deleted); None keeps all.
  """

  def __init__(self, directory: str, keep: Optional[int] = 3):
    if keep is not None and keep < 1:
      raise ValueError(f"config.train.keep_checkpoints: need >= 1, got {keep}")
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    """The step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Saves ``state`` (a single-copy pytree: unreplicate pmapped states first) as ``step``.

    Writing continues in the background; `wait` or `close` finish it. Saving a step that
    already exists is a no-op.
    """
    if step in self._manager.all_steps():
      return
    host = jax.device_get(serialization.to_state_dict(state))
    self._manager.save(int(step), args=ocp.args.StandardSave(host), force=True)

  def restore(self, template: Any, step: Optional[int] = None) -> Any:
    """``template`` with every array replaced by the checkpoint's (the newest if ``step`` is None).

    Raises:
      FileNotFoundError: there is no checkpoint (or not ``step``).
      ValueError: the checkpoint does not fit the template (different config), naming both.
    """
    step = self.latest_step() if step is None else int(step)
    if step is None or step not in self._manager.all_steps():
      raise FileNotFoundError(
          f"No checkpoint{'' if step is None else f' for step {step}'} in {self.directory} "
          f"(steps present: {self.all_steps()}); train first with --mode=train and the same "
          "--workdir")
    target = jax.device_get(serialization.to_state_dict(template))
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(
          f"Checkpoint {self.directory}/{step} does not match the state built from the config "
          f"(was it written with another model/loss/data config?): {e}") from e
    logging.info("Restored checkpoint %s/%d", self.directory, step)
    return serialization.from_state_dict(template, restored)

  def restore_raw(self, step: Optional[int] = None) -> Any:
    """The saved state dict as nested dicts of NumPy arrays, without a template (inspection)."""
    step = self.latest_step() if step is None else int(step)
    if step is None or step not in self._manager.all_steps():
      raise FileNotFoundError(f"No checkpoint{'' if step is None else f' for step {step}'} in "
                              f"{self.directory} (steps present: {self.all_steps()})")
    return self._manager.restore(step, args=ocp.args.StandardRestore())

  def wait(self) -> None:
    """Blocks until background writes are done."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
