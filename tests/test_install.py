"""``pip install -e .`` in a fresh virtual environment, then the package, its console scripts and
the config files used from another directory (as a user who installed lac_jax runs them)."""

import os
import subprocess
import sys

import numpy as np

from lac_jax.data import encode
import tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd, env=None, timeout=300):
  return subprocess.run(
    args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
  )


def _venv_with_these_packages(venv) -> str:
  """A new virtual environment that sees this interpreter's packages; returns its python.

  ``venv --system-site-packages`` would expose the *base* interpreter's site-packages, which are
  not this environment's when the tests run inside a virtual environment (a newcomer's set-up):
  a .pth file names this interpreter's own site-packages folders instead, so the test works
  from a virtual environment and from a base interpreter alike. No pip of its own (3 s): this
  interpreter's pip installs into it (``pip --python``)."""
  made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv.parent)
  assert made.returncode == 0, made.stderr
  python = str(venv / "bin" / "python")
  found = _run(
    [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv.parent
  )
  ours = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
  assert ours, sys.path
  with open(os.path.join(found.stdout.strip(), "_outer_packages.pth"), "w") as f:
    f.write("\n".join(ours) + "\n")
  return python


def test_editable_install_runs_the_tools_from_anywhere(tmp_path):
  venv = tmp_path / "venv"
  python = _venv_with_these_packages(venv)  # only lac_jax itself is installed into it
  bin_dir = venv / "bin"
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"  # plumbing: compile fast (tests/launched.py)
  dependencies = _run([python, "-c", "import jax, flax, absl, av"], elsewhere, env)
  assert dependencies.returncode == 0, dependencies.stderr
  # Not importable from another folder until installed (unless this environment has it already).
  here = _run([sys.executable, "-c", "import lac_jax"], elsewhere, env).returncode == 0
  before = _run([python, "-c", "import lac_jax"], elsewhere, env)
  assert (before.returncode == 0) == here
  installed = _run(
    [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "-e", REPO],
    elsewhere,
    env,
    timeout=600,
  )
  assert installed.returncode == 0, installed.stdout + installed.stderr
  where = _run([python, "-c", "import lac_jax; print(lac_jax.__file__)"], elsewhere, env)
  assert where.stdout.strip().startswith(REPO), where.stdout + where.stderr

  # A workdir with a tiny model's checkpoint and the config.json training writes.
  config = tiny.save_untrained_run(tmp_path / "run")
  frames = [np.full((24, 24, 3), 10 * i, np.uint8) for i in range(12)]
  encode.write_video(elsewhere / "clip.mp4", frames, fps=10)

  embed = _run(
    [
      str(bin_dir / "lac-embed"),
      f"--workdir={tmp_path / 'run'}",
      "--output=out",
      "--noprogress",
      "clip.mp4",
    ],
    elsewhere,
    env,
  )
  assert embed.returncode == 0, embed.stderr
  assert np.load(elsewhere / "out" / "clip.npy").shape == (12, config.model.output_dim)
  for tool, own_flag in (
    ("lac-align", "--gap_open"),
    ("lac-retrieve", "--query"),
    ("lac-train", "--mode"),
  ):
    helped = _run([str(bin_dir / tool), "--helpfull"], elsewhere, env)  # absl exits 1 after it
    assert "Traceback" not in helped.stderr and own_flag in helped.stdout, tool
  # python -m lac_jax.main with a config file given by path, from another directory: the file
  # finds configs/common.py; the bad data folder is reported before anything is trained.
  main = _run(
    [
      python,
      "-m",
      "lac_jax.main",
      f"--config={REPO}/configs/synthetic.py",
      "--workdir=run2",
      "--config.data.dataset=videos",
      "--config.data.data_dir=no_such_folder",
    ],
    elsewhere,
    env,
  )
  assert main.returncode == 1
  assert "lac_jax.main: error: config.data.data_dir='no_such_folder': no such folder" in (
    main.stderr
  )
