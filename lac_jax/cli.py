"""How the command-line programs end on a user's mistake: one line, no traceback.

A bad path, config value, missing data or weights raise FileNotFoundError, NotADirectoryError or
ValueError with a message that names the field or file; `run` prints it as
``lac_jax.<program>: error: <message>`` and exits with status 1 (``--debug``: the traceback).
"""

from __future__ import annotations

import logging as std_logging
import sys
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging

from lac_jax import logs

flags.DEFINE_bool("debug", False, "On an error, show the traceback instead of one line.")
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError)


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
      return 1

  app.run(wrapped)
