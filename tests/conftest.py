"""Test-session set-up: one persistent XLA compilation cache for the whole session.

Many tests build the same small train step or evaluation pass more than once (a run, then the
same run stopped and resumed; the same tiny config in several files, in this process and in
subprocesses). Each build is a new jit, so without a persistent cache each one compiles again.
The cache is a fresh temporary folder per session, so no test ever meets entries from another
JAX version or another checkout. Subprocesses find it through the environment; a size limit
turns on JAX's file lock around each read and write, so processes can share it safely.
"""

import os
import shutil
import tempfile

import jax
import pytest

_ENV = "LAC_TEST_XLA_CACHE"  # set by the session's first process; pytest-xdist workers share it
_OWNER = _ENV not in os.environ
XLA_CACHE_DIR = os.environ.setdefault(_ENV, tempfile.mkdtemp(prefix="lac_jax_test_xla_cache_"))
# Only compiles worth a disk round trip (small ones are faster to redo than to load).
_MIN_COMPILE_SECS = "0.5"
_MAX_BYTES = str(32 << 30)


def pytest_configure(config):  # pylint: disable=unused-argument
  os.environ.update(
    JAX_COMPILATION_CACHE_DIR=XLA_CACHE_DIR,
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=_MIN_COMPILE_SECS,
    JAX_COMPILATION_CACHE_MAX_SIZE=_MAX_BYTES,
  )
  jax.config.update("jax_compilation_cache_dir", XLA_CACHE_DIR)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(_MIN_COMPILE_SECS))
  jax.config.update("jax_compilation_cache_max_size", int(_MAX_BYTES))


def pytest_unconfigure(config):  # pylint: disable=unused-argument
  if _OWNER:
    shutil.rmtree(XLA_CACHE_DIR, ignore_errors=True)


# The modules with the longest runs (whole trainings in subprocesses), started first: with
# pytest-xdist each then runs alongside the many short tests instead of ending the session alone.
_LONG_FIRST = (
  "test_train.py",
  "test_baselines.py",
  "test_preemption.py",
  "test_notebook.py",
  "test_install.py",
  "test_search.py",
  "test_tools.py",
  "test_accelerator.py",
)


def pytest_collection_modifyitems(session, config, items):  # pylint: disable=unused-argument
  rank = {name: i for i, name in enumerate(_LONG_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept


@pytest.fixture
def fast_compile():
  """For a test that checks plumbing or behaviour (files, resumption, which parameters move),
  not numbers against a reference: XLA skips its optimisation passes, which halves the compile
  time of its programs (and can split a max's gradient wrongly among tied maxima: never check a
  gradient here, docs/dependencies.md section 2). A whole module:
  ``pytestmark = pytest.mark.usefixtures(...)``."""
  before = jax.config.values["jax_disable_most_optimizations"]
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)
