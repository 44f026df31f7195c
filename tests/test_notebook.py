"""Runs notebooks/explore.ipynb top to bottom (its smoke settings: LAC_EXPLORE_FAST=1), so that
the colab tour cannot rot: every cell must run, and the pictures must be shown. The notebook is
committed executed with its full settings (`python tests/test_notebook.py` re-executes it)."""

import json
import os

import nbformat
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "notebooks", "explore.ipynb")


def test_explore_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  monkeypatch.setenv("LAC_EXPLORE_FAST", "1")
  monkeypatch.setenv("LAC_EXPLORE_WORKDIR", str(workdir))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("PYTHONPATH", REPO)
  # Every cell must run and show its pictures; no number is checked against a reference, so
  # XLA's optimisation passes are skipped (they dominate this run's compile time).
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  # Committed executed (the full settings), so that a reader on the web sees the pictures.
  committed = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert sum("image/png" in o.get("data", {}) for o in committed) >= 5
  for cell in notebook.cells:  # this run starts from a clean notebook
    if cell.cell_type == "code":
      cell.outputs, cell.execution_count = [], None
  NotebookClient(
    notebook,
    timeout=600,
    kernel_name="python3",
    resources={"metadata": {"path": os.path.join(REPO, "notebooks")}},
  ).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  # Alignment (file and nearest neighbours), retrieval grid, trajectories, progress.
  assert len(images) >= 5, [o.get("data", {}).keys() for o in outputs]
  assert any("video/mp4" in str(o.get("data", {}).get("text/html", "")) for o in outputs)
  text = "".join(o.get("text", "") for o in outputs)
  assert "Class 100" in text and "frame pairs" in text
  # Section 8: a folder of mp4s, some labelled, trained through the 'videos' dataset.
  assert "Cycle" in text and "Labelled tr/val" in text
  assert (workdir / "own" / "cache").is_dir()
  assert "planted at frames" in text  # section 9 (search) ran
  with open(workdir / "align" / "alignment.json") as f:
    assert json.load(f)["mode"] == "smith_waterman"
  assert (workdir / "config.json").exists()


if __name__ == "__main__":  # Re-execute the committed notebook with its full settings.
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(
    notebook,
    timeout=1800,
    kernel_name="python3",
    resources={"metadata": {"path": os.path.join(REPO, "notebooks")}},
  ).execute()
  nbformat.write(notebook, NOTEBOOK)
