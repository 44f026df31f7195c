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
  def wrapped(argv: Sequence[str]) -> Optional[int]:
    logging.set_verbosity(logging.INFO)
    logs.quiet_library_logs()
    std_logging.getLogger("jax").setLevel(std_logging.WARNING)  # "Unable to initialize TPU"...
    try:
      return main(argv)
    except USER_ERRORS as e:
      if flags.FLAGS.debug:
        raise
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

  app.run(wrapped)


def _end_other_processes(message: str) -> None:
  """In a multi-process run: tell the other processes and exit now (see `distributed`)."""
  if distributed.is_multi_process():
    distributed.exit_after_failure(message)

