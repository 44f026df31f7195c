"""What a user sees on the command line: one-line errors (a mistyped config override too) and a
progress line with an ETA from the first interval when the step was compiled ahead of time."""

import os
import subprocess
import sys
import time

from lac_jax import logs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_mistyped_override_is_one_line_with_the_suggestion(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "lac_jax.main", "--config=configs/synthetic.py",
       f"--workdir={tmp_path}", "--config.train.num_stepz=3"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert lines == ["lac_jax.main: error: --config.train.num_stepz: the config has no field "
                   "'num_stepz'; Did you mean \"num_steps\" instead of \"num_stepz\"?"]


def test_progress_eta_from_the_first_interval_after_an_ahead_of_time_compile():
  fresh = logs.Progress(0, 100)
  assert fresh.update(10)["eta_sec"] == float("inf")  # the first interval includes compiling
  progress = logs.Progress(0, 100)
  progress.restart(compiled=True)
  time.sleep(0.01)
  timing = progress.update(10)
  assert 0 < timing["eta_sec"] < float("inf") and not timing["includes_compile"]
  assert "ETA ?" not in progress.line(10, {}, timing)
