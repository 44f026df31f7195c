"""How the command-line programs end on a user's mistake: one line, no traceback.

A bad path, config value, missing data or weights raise FileNotFoundError, NotADirectoryError or
ValueError (a step that cannot fit the memory budget: MemoryError) with a message that names
the field or file; `run` prints it as
``lac_jax.<program>: error: <message>`` and exits with status 1 (``--debug``: the traceback).
So do a folder that cannot be written (permission denied, a full disk, a quota, a read-only
file system: `storage_error`, naming the path) and a ``--config`` file that does not exist.
In a multi-process run any error also ends the other processes (`lac_jax.distributed`).
"""

from __future__ import annotations

import errno
import logging as std_logging
import os
import re
import sys
import traceback
from typing import Callable, Iterator, Optional, Sequence

from absl import app
from absl import flags
from absl import logging

from lac_jax import distributed
from lac_jax import logs

flags.DEFINE_bool("debug", False, "On an error, show the traceback instead of one line.")
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError, MemoryError)
# OSError numbers that mean "this place cannot be written", and how the error line says it.
STORAGE_ERRNOS = {
  errno.ENOSPC: "no space left on device",
  errno.EDQUOT: "disk quota exceeded",
  errno.EROFS: "read-only file system",
  errno.EACCES: "permission denied",
  errno.EPERM: "operation not permitted",
}
# tensorstore (orbax's writer) reports an OS error in its message: "... [os_error_code='28']".
_TENSORSTORE_ERRNO = re.compile(r"\[os_error_code='(\d+)'\]")
_TENSORSTORE_PATH = re.compile(r'(?:local file|Failed writing:) "([^"]+)"')


def run(program: str, main: Callable[[Sequence[str]], Optional[int]]) -> None:
  """``app.run(main)`` with INFO logs (library chatter quieted) and one-line user errors."""
  started = False

  def wrapped(argv: Sequence[str]) -> Optional[int]:
    nonlocal started
    started = True
    logging.set_verbosity(logging.INFO)
    logs.quiet_library_logs()
    std_logging.getLogger("jax").setLevel(std_logging.WARNING)  # "Unable to initialize TPU"...
    try:
      _check_config_files()
      return main(argv)
    except BaseException as e:  # pylint: disable=broad-except
      message = storage_error(e) or (str(e) if isinstance(e, USER_ERRORS) else None)
      if message is not None and not flags.FLAGS.debug:
        _close_progress_bars()
        print(f"lac_jax.{program}: error: {message}", file=sys.stderr)
        _end_other_processes(f"{type(e).__name__}: {message}")
        return 1
      if message is not None:
        raise
      if distributed.is_multi_process() and not (isinstance(e, SystemExit) and e.code in (None, 0)):
        traceback.print_exc()
        message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
        if distributed.peer_lost(e):
          message += " (another process stopped or was lost: see its log)"
        print(f"lac_jax.{program}: error: {message}", file=sys.stderr)
        _end_other_processes(message)
      raise

  try:
    app.run(wrapped)
  except (AttributeError, KeyError) as e:
    if started or "--debug" in sys.argv:
      raise
    # A --config.<path>=value override naming no field fails while absl parses the flags.
    print(f"lac_jax.{program}: error: {_override_error(e)}", file=sys.stderr)
    sys.exit(1)


def _causes(error: BaseException) -> Iterator[BaseException]:
  """``error``, then its causes, contexts and (exception groups) members, each once."""
  seen, todo = set(), [error]
  while todo:
    e = todo.pop(0)
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    yield e
    todo += [
      e.__cause__,
      None if e.__suppress_context__ else e.__context__,
      *getattr(e, "exceptions", ()),
    ]


def storage_error(error: BaseException) -> Optional[str]:
  """``'<path>: no space left on device'`` (or another of `STORAGE_ERRNOS`) when ``error`` or one
  of its causes is such an OSError, or orbax's tensorstore writer's error for one; else None."""
  if isinstance(error, (KeyboardInterrupt, SystemExit)):
    return None
  for e in _causes(error):
    if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
      path = e.filename if e.filename is not None else "(a file)"
      detail = e.strerror if e.strerror and e.strerror != os.strerror(e.errno) else ""
      return f"{path}: {STORAGE_ERRNOS[e.errno]}" + (f" ({detail})" if detail else "")
  for e in _causes(error):
    code = _TENSORSTORE_ERRNO.search(str(e))
    if code and int(code.group(1)) in STORAGE_ERRNOS:
      path = _TENSORSTORE_PATH.search(str(e))
      # The step folder, not orbax's temporary one inside it.
      where = path.group(1).split(".orbax-checkpoint-tmp")[0] if path else "(a checkpoint)"
      return f"{where}: {STORAGE_ERRNOS[int(code.group(1))]}"
  return None


def _check_config_files() -> None:
  """A ``--config`` file (of ml_collections, which reports a failed load only when the config
  is first used, in a long traceback) that does not exist is a one-line error."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  for name in list(flags.FLAGS):
    flag = flags.FLAGS[name]
    if not flag.present:
      continue
    try:
      filename = config_flags.get_config_filename(flag)
    except (TypeError, flags.Error):  # not a config file flag
      continue
    if not os.path.isfile(filename.split(":", 1)[0]):  # 'file.py:argument'
      raise FileNotFoundError(
        f"--{name}={filename}: no such file (a Python file with "
        "get_config(), e.g. configs/synthetic.py)"
      )


def _override_error(error: BaseException) -> str:
  """One line for a config override that names no field, keeping ml_collections' suggestion."""
  while error.args and isinstance(error.args[0], BaseException):  # AttributeError(KeyError)
    error = error.args[0]
  text = str(error.args[0] if error.args else error).strip().strip("'\"")
  key, _, hint = text.partition("\n")
  key = key.strip("'\"")
  flag = next((a.split("=")[0] for a in sys.argv[1:] if a.startswith("--") and key in a), key)
  return f"{flag}: the config has no field {key!r}" + (
    f"; {hint.strip().rstrip('?')}?" if hint.strip() else ""
  )


def _close_progress_bars() -> None:
  """Ends any live tqdm bar, so that the error line starts a line of its own."""
  tqdm = sys.modules.get("tqdm")
  for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
    bar.close()


def _end_other_processes(message: str) -> None:
  """In a multi-process run: tell the other processes and exit now (see `distributed`)."""
  if distributed.is_multi_process():
    distributed.exit_after_failure(message)
