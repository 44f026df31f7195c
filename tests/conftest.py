"""Test-session set-up: a persistent XLA compilation cache for this pytest process.

Many tests build the same small train step or evaluation pass more than once (a run, then the
same run stopped and resumed). Each build is a new jit, so without a persistent cache each one
compiles again. The cache is a fresh temporary folder per session, so no test ever meets entries
from another JAX version or another checkout. It holds only this process's compiles: the
subprocess runs (test_train.py, test_baselines.py, test_tools.py) set caches of their own.
"""

import shutil
import tempfile

import jax

XLA_CACHE_DIR = tempfile.mkdtemp(prefix="lac_jax_test_xla_cache_")


def pytest_configure(config):  # pylint: disable=unused-argument
  jax.config.update("jax_compilation_cache_dir", XLA_CACHE_DIR)
  # Only compiles worth a disk round trip (small ones are faster to redo than to load).
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):  # pylint: disable=unused-argument
  shutil.rmtree(XLA_CACHE_DIR, ignore_errors=True)
