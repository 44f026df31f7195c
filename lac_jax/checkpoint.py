"""Checkpoints of the training state with orbax's `CheckpointManager` (``workdir/checkpoints``).

The state is saved as its flax state dict (nested dicts of host NumPy arrays: params, batch
statistics, optimiser state, gap penalties, step, skipped-step counter), so a checkpoint is
independent of the number of devices it was written from, and is restored into a template
state built from the same config (`restore`). Every process calls `save`; orbax writes the
host arrays once, from process 0.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Union

from absl import logging
import jax
from flax import serialization
import ml_collections
import orbax.checkpoint as ocp

from lac_jax import files

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"  # the resolved config of the run, written when training starts


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


def write_config(workdir: str, config: ml_collections.ConfigDict) -> str:
  """Writes the resolved ``config`` to ``workdir/config.json`` (atomically); returns the path.

  Tools that use a trained workdir (``lac_jax.embed``, ``align``, ``retrieve``) rebuild the
  model from it with `read_config`.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  files.write_json(path, config.copy_and_resolve_references().to_dict())
  return path


def _merge(target: ml_collections.ConfigDict, values: dict, where: str) -> None:
  for key, value in values.items():
    name = f"{where}.{key}" if where else key
    if key not in target:
      raise ValueError(f"field {name!r} is not in this version's config (the run was written "
                       "by another version of lac_jax?); pass the training config with --config")
    if isinstance(target[key], ml_collections.ConfigDict) and isinstance(value, dict):
      _merge(target[key], value, name)
      continue
    if isinstance(value, list):  # JSON has no tuples; config sequences are tuples.
      value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    try:
      target[key] = value
    except (TypeError, ValueError) as e:
      raise ValueError(f"field {name!r}: cannot set {value!r}: {e}") from None


def _rename(values: dict, renamed: Mapping[str, str]) -> None:
  """Moves each saved field ``old`` (a dotted path) to ``new``, in place."""
  for old, new in renamed.items():
    *head, last = old.split(".")
    section = values
    for key in head:
      section = section.get(key) if isinstance(section, dict) else None
    if not isinstance(section, dict) or last not in section:
      continue
    value = section.pop(last)
    *head, last = new.split(".")
    section = values
    for key in head:
      section = section.setdefault(key, {})
    section[last] = value


def read_config(workdir: str, template: Union[ml_collections.ConfigDict,
                                               Callable[[dict], ml_collections.ConfigDict]],
                renamed: Optional[Mapping[str, str]] = None) -> ml_collections.ConfigDict:
  """The config saved in ``workdir/config.json``, merged into a copy of ``template`` (or of
  ``template(values)``, the template for the saved values, e.g. with their loss's fields).
  ``renamed``: ``{old: new}`` dotted paths of fields that moved since older runs were saved.

  Raises:
    FileNotFoundError: no ``config.json`` (a workdir written before configs were saved): the
      message says to pass ``--config``.
    ValueError: the file is not valid JSON or has a field the template lacks, naming it.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"{path} not found (runs trained before lac_jax saved its config there have none): "
        "pass the config the run was trained with, e.g. --config=configs/synthetic.py")
  values = files.read_json_object(path, path)
  _rename(values, renamed or {})
  if callable(template):
    template = template(values)
  config = template.copy_and_resolve_references()
  try:
    _merge(config, values, "")
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  return config


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
    """Waits for pending saves, then closes (idempotent)."""
    if self._manager is None:
      return
    self._manager.wait_until_finished()
    self._manager.close()
    self._manager = None

  def __enter__(self) -> "Checkpoints":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()
