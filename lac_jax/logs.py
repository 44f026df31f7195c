"""Training logs: a console progress line, JSON lines and (optionally) TensorBoard event files.

`MetricWriter` writes scalars, on process 0 only (every process trains, one writes), to
``workdir/metrics.jsonl`` (one JSON object per call, ``{"step": s, "<name>": value, ...}``,
appended: a resumed run continues the file, `truncate`d to its checkpoint's step) and, when
tensorboardX is installed (optional; clu's writers would pull in TensorFlow), to TensorBoard
event files in ``workdir/tensorboard``.
`Progress` turns step counts and wall time into the console line
``step 120/600 | 3.1 steps/s | ETA 2m35s | loss 2.91 ...``. `mean_metrics` averages the
per-step metric dicts of a log interval on the host.
"""

from __future__ import annotations

import json
import logging as logging_std
import math
import os
import time
from typing import Any, Mapping, Optional, Sequence

from absl import logging
import numpy as np

from lac_jax import files

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class _DropLibraryInfo(logging_std.Filter):
  """Drops INFO/DEBUG records logged from inside the named packages (orbax: ~30 lines/save)."""

  def __init__(self, packages: Sequence[str]):
    super().__init__()
    self._parts = tuple(f"{os.sep}{p}{os.sep}" for p in packages)

  def filter(self, record: logging_std.LogRecord) -> bool:
    if "OpenCV is not installed" in str(record.msg):  # TFDS's image decoder, once per process
      return False
    if record.levelno >= logging_std.WARNING:
      return True
    return not any(part in (record.pathname or "") for part in self._parts)


_QUIET = _DropLibraryInfo(("orbax", "tensorflow_datasets"))


def quiet_library_logs() -> None:
  """Hides orbax's and TFDS's INFO lines (they go through absl's logger); warnings stay.
  Idempotent."""
  logger = logging_std.getLogger("absl")
  if _QUIET not in logger.filters:
    logger.addFilter(_QUIET)


def _to_float(value: Any) -> float:
  return float(np.asarray(value, dtype=np.float64))


class MetricWriter:
  """Scalars to ``workdir/metrics.jsonl`` and TensorBoard; a no-op where ``enabled`` is False.

  Args:
    workdir: the run directory (created if missing).
    tensorboard: also write TensorBoard event files (needs the optional ``tensorboardX``;
      without it a warning is logged once and only the JSON lines are written).
    enabled: default: True on process 0 only.
  """

  def __init__(self, workdir: str, tensorboard: bool = True, enabled: Optional[bool] = None):
    if enabled is None:
      import jax  # pylint: disable=g-import-not-at-top

      enabled = jax.process_index() == 0
    self.enabled = bool(enabled)
    self.path = os.path.join(workdir, METRICS_FILE)
    self._tb = None
    if not self.enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    if tensorboard:
      try:
        import tensorboardX  # pylint: disable=g-import-not-at-top

        self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))
      except ImportError:
        logging.warning(
          "tensorboardX is not installed: no TensorBoard files (the metrics still "
          "go to %s). pip install tensorboardX to get them.",
          self.path,
        )

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Appends ``{"step": step, **scalars}`` (values made Python floats; NaN stays NaN)."""
    if not self.enabled:
      return
    row = {"step": int(step)}
    row.update({k: _to_float(v) for k, v in scalars.items()})
    # json writes NaN/Infinity tokens (Python's json reads them back).
    with files.naming_errors(self.path), open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in row.items():
        if k != "step":
          self._tb.add_scalar(k, v, int(step))

  def truncate(self, step: int) -> None:
    """Drops the rows after ``step`` (atomically): a run resumed from the checkpoint of ``step``
    redoes the later steps that a killed run had logged. A half-written last line goes too."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path, encoding="utf-8") as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      if line.endswith("\n") and isinstance(row, dict) and row.get("step", 0) <= step:
        kept.append(line)
    if len(kept) == len(lines):
      return
    logging.info(
      "%s: %d row(s) after step %d dropped (the resumed run redoes those steps)",
      self.path,
      len(lines) - len(kept),
      step,
    )
    with files.atomic_path(self.path) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(kept)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


def read_metrics(workdir: str) -> list[dict[str, float]]:
  """The rows of ``workdir/metrics.jsonl`` (empty list if there is none)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def mean_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
  """Mean of each key over the rows that have it (NaN-propagating, float64)."""
  keys: dict[str, list[float]] = {}
  for row in rows:
    for k, v in row.items():
      keys.setdefault(k, []).append(_to_float(v))
  return {k: float(np.mean(v)) for k, v in keys.items()}


def format_duration(seconds: float) -> str:
  """``3725`` -> ``'1h02m05s'``; ``95`` -> ``'1m35s'``; ``4.2`` -> ``'4s'``."""
  if not math.isfinite(seconds):
    return "?"
  s = int(round(seconds))
  h, rem = divmod(s, 3600)
  m, s = divmod(rem, 60)
  if h:
    return f"{h}h{m:02d}m{s:02d}s"
  if m:
    return f"{m}m{s:02d}s"
  return f"{s}s"


class Progress:
  """Steps/s and ETA from the wall time between `update` calls.

  The first interval after construction includes compilation, so ``steps/s`` is measured from
  the second `update` on (the first returns the raw rate, marked as including compile time),
  unless `restart` says the step was compiled ahead of time.
  """

  def __init__(self, start_step: int, total_steps: int):
    self.total_steps = int(total_steps)
    self._last_step = int(start_step)
    self._last_time = time.perf_counter()
    self._first = True

  def restart(self, compiled: bool = False) -> None:
    """Times from now on; ``compiled``: the step is already compiled, so the first interval's
    rate (and ETA) count."""
    self._last_time = time.perf_counter()
    self._first = self._first and not compiled

  def update(self, step: int) -> dict[str, float]:
    """``{'steps_per_sec', 'eta_sec'}`` for the steps since the previous call."""
    now = time.perf_counter()
    dt = max(now - self._last_time, 1e-9)
    rate = (step - self._last_step) / dt
    self._last_step, self._last_time = int(step), now
    first, self._first = self._first, False
    # The first interval's rate includes compilation: no ETA from it.
    if step >= self.total_steps:
      eta = 0.0
    else:
      eta = (self.total_steps - step) / rate if rate > 0 and not first else float("inf")
    return {"steps_per_sec": rate, "eta_sec": eta, "includes_compile": float(first)}

  def line(
    self,
    step: int,
    scalars: Mapping[str, float],
    timing: Mapping[str, float],
    keys: Sequence[str] = (),
  ) -> str:
    """The console line: step, steps/s, ETA and the named scalars (all of them if empty)."""
    keys = list(keys) or sorted(scalars)
    parts = [
      f"step {step}/{self.total_steps}",
      f"{timing['steps_per_sec']:.2f} steps/s"
      + (" (incl. compile)" if timing.get("includes_compile") else ""),
      f"ETA {format_duration(timing['eta_sec'])}",
    ]
    parts += [f"{k.split('/')[-1]} {scalars[k]:.4g}" for k in keys if k in scalars]
    return " | ".join(parts)


def progress_bar(enabled: bool, **kwargs: Any):
  """A tqdm bar on stderr (a no-op one when disabled or when stderr is no terminal), for the
  tools and the video decoding; ``kwargs`` go to ``tqdm.tqdm`` (``total``, ``unit``, ...)."""
  import tqdm  # pylint: disable=g-import-not-at-top

  # disable=None: no bar when stderr is not a terminal (logs, CI), where its redraws would
  # interleave with other lines.
  return tqdm.tqdm(disable=None if enabled else True, dynamic_ncols=True, **kwargs)
