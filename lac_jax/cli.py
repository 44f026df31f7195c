"""How the command-line programs end on a user's mistake: one line, no traceback.

A bad path, config value, missing data or weights raise FileNotFoundError, NotADirectoryError or
ValueError (a step that cannot fit the memory budget: MemoryError) with a message that names
the field or file; `run` prints it as
``lac_jax.<program>: error: <message>`` and exits with status 1 (``--debug``: the traceback).
In a multi-process run any error also ends the other processes (`lac_jax.distributed`).
"""

from __future__ import annotations

import logging as std_logging
import sys
import traceback
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging

from lac_jax import distributed
from lac_jax import logs

flags.DEFINE_bool("debug", False, "On an error, show the traceback instead of one line.")
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError, MemoryError)


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
      return main(argv)
    except USER_ERRORS as e:
      if flags.FLAGS.debug:
        raise
      _close_progress_bars()
      print(f"lac_jax.{program}: error: {e}", file=sys.stderr)
      _end_other_processes(f"{type(e).__name__}: {e}")
      return 1
    except BaseException as e:  # pylint: disable=broad-except
      if distributed.is_multi_process() and not (isinstance(e, SystemExit) and
                                                  e.code in (None, 0)):
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


def _override_error(error: BaseException) -> str:
  """One line for a config override that names no field, keeping ml_collections' suggestion."""
  while error.args and isinstance(error.args[0], BaseException):  # AttributeError(KeyError)
    error = error.args[0]
  text = str(error.args[0] if error.args else error).strip().strip("'\"")
  key, _, hint = text.partition("\n")
  key = key.strip("'\"")
  flag = next((a.split("=")[0] for a in sys.argv[1:] if a.startswith("--") and key in a), key)
  return (f"{flag}: the config has no field {key!r}" +
          (f"; {hint.strip().rstrip('?')}?" if hint.strip() else ""))


def _close_progress_bars() -> None:
  """Ends any live tqdm bar, so that the error line starts a line of its own."""
  tqdm = sys.modules.get("tqdm")
  for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
    bar.close()


def _end_other_processes(message: str) -> None:
  """In a multi-process run: tell the other processes and exit now (see `distributed`)."""
  if distributed.is_multi_process():
    distributed.exit_after_failure(message)

