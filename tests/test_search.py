"""Local-alignment search (`lac_jax.alignment.local_search`, `lac_jax.search`) and label
transfer (`lac_jax.tools.transfer_labels`): the column sweep against the full-matrix hard
Smith-Waterman, repeated hits against a slow loop, the significance's calibration on null data,
planted occurrences in long videos (embeddings, then real files through the command line)."""

import json
import os

import numpy as np
import pytest

from lac_jax import align
from lac_jax import alignment
from lac_jax import search
from lac_jax import tools
from lac_jax.alignment import local_search
from lac_jax.alignment import smith_waterman_path
from lac_jax.data import encode
from lac_jax.data import synthetic
import launched
import tiny

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("search")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _blocks(mats):
  """``score_block`` over explicit float64 matrices ``[m, n_b]``."""

  def block(indices, start, stop):
    out = np.full((len(indices), mats[0].shape[0], stop - start), alignment.NEG, np.float32)
    for k, b in enumerate(indices):
      piece = mats[b][:, start:stop]
      out[k, :, : piece.shape[1]] = piece
    return out

  return block


@pytest.mark.parametrize("block", [3, 7, 64])
def test_sweep_equals_the_full_matrix_in_any_blocks(block):
  rng = np.random.default_rng(block)
  m, lengths = 9, [23, 40, 5, 17]
  mats = [rng.normal(size=(m, n)) - 0.4 for n in lengths]
  best = local_search.sweep(
    lambda a, b: _blocks(mats)(range(len(mats)), a, b), lengths, m, 1.2, 0.4, block=block
  )
  for b, mat in enumerate(mats):
    pairs, score = smith_waterman_path(mat, 1.2, 0.4)
    assert best.score[b] == pytest.approx(score, abs=1e-4)
    assert (best.end_i[b], best.end_j[b]) == tuple(pairs[-1])
    assert best.start_j[b] == pairs[0, 1]  # where the path starts: the window to rerun
    # The path from the window alone is the full matrix's path.
    window = lambda j0, j1, mat=mat: mat[:, j0:j1]
    got, exact = local_search.hit_path(
      window, best.end_i[b], best.end_j[b], best.start_j[b], 1.2, 0.4
    )
    np.testing.assert_array_equal(got, pairs)
    assert exact == pytest.approx(score, abs=1e-12)


def _slow_repeats(mat, go, ge, max_hits, min_score):
  """Waterman-Eggert by brute force: the full DP on the matrix with the hits' columns removed
  (each remaining stretch of columns aligned on its own), best stretch first."""
  masked = np.zeros(mat.shape[1], bool)
  hits = []
  for _ in range(max_hits):
    best = None
    j = 0
    while j < mat.shape[1]:
      if masked[j]:
        j += 1
        continue
      k = j
      while k < mat.shape[1] and not masked[k]:
        k += 1
      pairs, score = smith_waterman_path(mat[:, j:k], go, ge)
      if len(pairs) and (best is None or score > best[1]):
        best = (pairs + np.array([0, j]), score)
      j = k
    if best is None or best[1] < min_score:
      break
    hits.append(best)
    masked[best[0][0, 1] : best[0][-1, 1] + 1] = True
  return hits


def test_waterman_eggert_equals_a_slow_loop_and_never_overlaps():
  rng = np.random.default_rng(5)
  m, lengths = 6, [60, 45]
  mats = []
  for n in lengths:
    mat = rng.normal(size=(m, n)) - 0.8
    for at in rng.choice(n - m, 3, replace=False):  # planted diagonals, some overlapping
      mat[np.arange(m), at + np.arange(m)] += 2.5
    mats.append(mat)
  found = local_search.waterman_eggert(
    _blocks(mats),
    lambda b, j0, j1: mats[b][:, j0:j1],
    lengths,
    m,
    1.0,
    0.5,
    max_hits=4,
    accept=lambda score, n: score >= 3.0,
    block=8,
  )
  for b, mat in enumerate(mats):
    want = _slow_repeats(mat, 1.0, 0.5, 4, 3.0)
    assert len(found[b]) == len(want) >= 2
    for hit, (pairs, score) in zip(found[b], want):
      np.testing.assert_array_equal(hit.pairs, pairs)
      assert hit.score == pytest.approx(score, abs=1e-9)
    spans = sorted(h.target_span for h in found[b])
    assert all(a[1] < b_[0] for a, b_ in zip(spans, spans[1:]))  # no overlap


def test_significance_is_calibrated_on_null_data():
  """On unrelated (random) embeddings, the fraction of videos whose best hit has E <= e is
  1 - exp(-e), within sampling error (3.5 standard errors: binomial, plus the null fit's own
  noise)."""
  fractions = {0.2: [], 1.0: []}
  for seed in (0, 1):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(20, 8))
    library = [search.LibraryVideo(f"v{i}", f"v{i}", rng.normal(size=(300, 8))) for i in range(200)]
    hits, details = search.search(
      None, query, library, max_hits_per_video=1, max_evalue=1e9, seed=seed
    )
    assert details["null"]["samples"] == 500
    evalues = np.array([h.evalue for h in hits] + [np.inf] * (200 - len(hits)))
    for e in fractions:
      fractions[e].append(np.mean(evalues <= e))
  for e, got in fractions.items():
    want = -np.expm1(-e)
    se = np.sqrt(want * (1 - want) / 400)
    assert abs(np.mean(got) - want) < 3.5 * se, (e, got, want)


def test_a_null_without_alignments_falls_back_to_its_empirical_tail():
  """When most null targets hold no positive cell (a point mass at 0), no Gumbel fits: the
  E-value is the null's own tail, (targets scoring >= S + 1) / (samples + 1), per null length."""
  scores = [0.0] * 300 + list(np.linspace(1.0, 5.0, 100))
  null = local_search.fit_gumbel(scores, 10, 200)
  assert null.empirical is not None
  assert null.evalue(4.5, 200) == pytest.approx((1 + sum(s >= 4.5 for s in scores)) / 401)
  assert null.evalue(50.0, 400) == pytest.approx(2 / 401)  # a longer target: more chances
  fitted = local_search.fit_gumbel(list(np.linspace(1.0, 5.0, 100)), 10, 200)
  assert fitted.empirical is None and fitted.scale > 0


def test_planted_occurrences_are_found_in_long_videos():
  rng = np.random.default_rng(7)
  pattern = rng.normal(size=(30, 8))
  truth = {0: [(300, 326), (2500, 2526)], 1: [(4100, 4126)], 2: []}
  library = []
  for v, spans in truth.items():
    emb = rng.normal(size=(5000, 8))
    for start, _ in spans:  # the action at another speed: 27 of its 30 frames, noisy
      keep = np.sort(rng.choice(30, 27, replace=False))
      emb[start : start + 27] = pattern[keep] + 0.3 * rng.normal(size=(27, 8))
    library.append(search.LibraryVideo(f"v{v}", f"v{v}", emb, fps=25.0))
  hits, _ = search.search(None, pattern, library, block=700)  # spans cross block boundaries
  found = sorted((int(h.video[1:]), h.start, h.end) for h in hits)
  want = sorted((v, s, e) for v, spans in truth.items() for s, e in spans)
  assert len(found) == len(want)
  for (v, s, e), (wv, ws, we) in zip(found, want):
    assert v == wv and abs(s - ws) <= 2 and abs(e - we) <= 2
  assert all(h.evalue < 1e-6 for h in hits)
  assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
  assert hits[0].to_json()["start_time"] == pytest.approx(hits[0].start / 25.0)


def test_transfer_labels_through_an_alignment():
  labels_a = np.array([0, 0, 1, 1, 2, 2])
  pairs = np.array([[1, 3], [2, 4], [3, 6], [5, 7]])  # B frame 5: a gap in A
  got = tools.transfer_labels(pairs, labels_a, 10)
  assert got.tolist() == [-1, -1, -1, 0, 1, 1, 1, 2, -1, -1]
  report = tools.transfer_report(got, np.array([9, 9, 9, 0, 1, 2, 1, 2, 2, 2]))
  assert report["aligned_frames"] == 5 and report["coverage"] == 0.5
  assert report["accuracy_aligned"] == pytest.approx(4 / 5)
  assert report["accuracy_all"] == pytest.approx(4 / 10)


# ------------------------------------------------------------------------------------------
# Real files, through the command lines.


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny model without a transformer (frame embeddings depend on the frame only), saved as a
  training run is."""
  root = tmp_path_factory.mktemp("search")
  config = tiny.tiny_train_config()
  config.model.num_layers = 0
  config.model.pe_positions = "none"
  tiny.save_untrained_run(root / "run", config)
  return root


def _run(tool, *args, cwd=REPO):
  return launched.run(["-m", f"lac_jax.{tool}", *args], cwd=cwd, timeout=600)


def test_search_and_label_transfer_on_video_files(workdir, tmp_path):
  syn = synthetic.default_config()
  syn.height = syn.width = 32
  syn.min_frames, syn.max_frames = 60, 60
  clips = [synthetic.generate_video(i, "val", syn) for i in range(4)]
  source = clips[0]
  # Long recordings: other clips back to back with still frames between; the source clip's
  # frames planted twice in the first, once in the second, never in the third.
  still = lambda clip: np.repeat(clip.frames[:1], 40, 0)
  plant = source.frames[10:40]
  parts = {
    "long_a": [
      clips[1].frames,
      still(clips[2]),
      plant,
      still(clips[1]),
      clips[2].frames,
      plant,
      still(clips[3]),
    ],
    "long_b": [still(clips[3]), clips[3].frames, plant, still(clips[2])],
    "long_c": [clips[1].frames, still(clips[2]), clips[3].frames, still(clips[1])],
  }
  truth = {}
  for name, pieces in parts.items():
    starts = np.cumsum([0] + [len(p) for p in pieces])
    truth[name] = [int(s) for s, p in zip(starts, pieces) if p is plant]
    encode.write_video(tmp_path / f"{name}.mp4", np.concatenate(pieces), fps=10, crf=0)
  encode.write_video(tmp_path / "query.mp4", source.frames, fps=10, crf=0)
  run = str(workdir / "run")
  # The library as files for two videos, and as a lac_jax.embed folder for the third.
  embedded = _run(
    "embed",
    f"--workdir={run}",
    f"--output={tmp_path / 'emb'}",
    "--noprogress",
    str(tmp_path / "long_c.mp4"),
  )
  assert embedded.returncode == 0, embedded.stderr
  result = _run(
    "search",
    f"--workdir={run}",
    f"--query={tmp_path / 'query.mp4'}:10:40",
    f"--output={tmp_path / 'out'}",
    "--clips",
    "--noprogress",
    str(tmp_path / "long_a.mp4"),
    str(tmp_path / "long_b.mp4"),
    str(tmp_path / "emb"),
  )
  assert result.returncode == 0, result.stderr
  with open(tmp_path / "out" / search.JSON_FILE, encoding="utf-8") as f:
    payload = json.load(f)
  found = sorted((h["video"], h["start_frame"], h["end_frame"]) for h in payload["hits"])
  want = sorted((v, s, s + 29) for v, starts in truth.items() for s in starts)
  assert len(found) == len(want), (found, want)
  for (v, s, e), (wv, ws, we) in zip(found, want):
    assert v == wv and abs(s - ws) <= 3 and abs(e - we) <= 3
  assert [h["score"] for h in payload["hits"]] == sorted(
    (h["score"] for h in payload["hits"]), reverse=True
  )
  assert all(h["evalue"] <= 0.01 for h in payload["hits"])
  assert (tmp_path / "out" / search.PNG_FILE).stat().st_size > 0
  assert all((tmp_path / "out" / h["clip"]).exists() for h in payload["hits"])

  # Label transfer: the query's phases onto one long recording.
  labels_b = np.full(len(np.concatenate(parts["long_b"])), -1)
  at = truth["long_b"][0]
  labels_b[at : at + 30] = source.labels[10:40]  # B is labelled where the action is
  labels = {"query": source.labels.tolist(), "long_b": labels_b.tolist()}
  (tmp_path / "labels.json").write_text(json.dumps({"labels": labels}))
  aligned = _run(
    "align",
    f"--workdir={run}",
    f"--output={tmp_path / 'al'}",
    "--novideo",
    "--noprogress",
    f"--labels={tmp_path / 'labels.json'}",
    str(tmp_path / "query.mp4"),
    str(tmp_path / "long_b.mp4"),
  )
  assert aligned.returncode == 0, aligned.stderr
  with open(tmp_path / "al" / align.JSON_FILE, encoding="utf-8") as f:
    alignment = json.load(f)
  assert alignment["transfer"]["accuracy_aligned"] >= 0.9
  assert "accuracy" in aligned.stdout


def test_search_errors_are_one_line(workdir, tmp_path):
  frames = [np.full((16, 16, 3), 20 * i, np.uint8) for i in range(10)]
  encode.write_video(tmp_path / "q.mp4", frames, fps=10)
  run = str(workdir / "run")
  cases = [
    (
      [f"--query={tmp_path / 'q.mp4'}:5:50", str(tmp_path / "q.mp4")],
      "the span 5:50 is not inside the video's 10 frames",
    ),
    ([f"--query={tmp_path / 'q.mp4'}"], "give at least one LIBRARY input"),
    ([f"--query={tmp_path / 'q.mp4'}", str(tmp_path / "missing.mp4")], "missing.mp4: no such file"),
  ]
  for args, message in cases:
    result = _run("search", f"--workdir={run}", f"--output={tmp_path / 'o'}", "--noprogress", *args)
    assert result.returncode != 0 and message in result.stderr, (args, result.stderr[-500:])
  # Embeddings written by another model are refused, naming the folder.
  emb_dir = tmp_path / "emb"
  emb_dir.mkdir()
  np.save(emb_dir / "x.npy", np.zeros((10, 8), np.float32))
  (emb_dir / tools.INDEX_FILE).write_text(
    json.dumps(
      {
        "workdir": "elsewhere",
        "checkpoint_step": 9,
        "fingerprint": "0" * 20,
        "inputs": [{"input": "x.mp4", "name": "x", "file": "x.npy"}],
      }
    )
  )
  result = _run(
    "search",
    f"--workdir={run}",
    f"--output={tmp_path / 'o'}",
    "--noprogress",
    f"--query={tmp_path / 'q.mp4'}",
    str(emb_dir),
  )
  errors = [l for l in result.stderr.splitlines() if "error:" in l]
  assert len(errors) == 1 and "embedded by elsewhere step 9" in errors[0]
