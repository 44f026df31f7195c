"""The baseline losses (SCL, TCC, ...) against float64 NumPy restatements of their papers' and
original codes' forward passes, finite gradients on degenerate and padded inputs, and a few
training steps through the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax, softmax, xlogy

from lac_jax import logs
from lac_jax import losses

B, T, E = 3, 7, 5


def _batch(seed, lengths=None, scale=1.0):
  """z [B, 2, T, E], sorted raw steps [B, 2, T], prefix masks, video lengths [B]."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(B, 2, T, E)) * scale
  video_len = rng.integers(2 * T, 3 * T, size=B)
  steps = np.sort(rng.integers(0, video_len[:, None, None], size=(B, 2, T)), axis=-1)
  mask = np.ones((B, 2, T), bool)
  for (b, v), n in (lengths or {}).items():
    mask[b, v, n:] = False
    steps[b, v, n:] = steps[b, v, n - 1]
  return z, steps, mask, video_len


PADDED = {(0, 1): 4, (2, 0): 5}


def _value(loss_name, z, steps, mask, lengths, **overrides):
  cfg = losses.default_config(loss_name)
  cfg.update(overrides)
  with jax.enable_x64(True):
    value, parts = losses.build(cfg)(None, jnp.asarray(z), jnp.asarray(steps), jnp.asarray(mask),
                                     lengths=jnp.asarray(lengths))
    return float(value), {k: float(v) for k, v in parts.items()}


def _grad_checks(loss_name, **overrides):
  """Finite gradients for identical views, zero embeddings and padded frames (no gradient to
  padded frames where masks are honoured)."""
  cfg = losses.default_config(loss_name)
  cfg.update(overrides)
  loss = losses.build(cfg)
  z, steps, mask, lengths = _batch(9, PADDED)
  same = np.concatenate([z[:, :1], z[:, :1]], 1)
  for case in (z, same, np.zeros_like(z), z * 1e3):
    grad = jax.grad(lambda x: loss(None, x, jnp.asarray(steps), jnp.asarray(mask),
                                   lengths=jnp.asarray(lengths))[0])(jnp.asarray(case, jnp.float32))
    assert bool(jnp.all(jnp.isfinite(grad))), loss_name
  if cfg.get("honour_masks", False):
    assert float(jnp.abs(grad[~mask]).max()) == 0.0


# ---------------------------------------------------------------------------------------------
# SCL.

def scl_reference(z, steps, mask, tau=0.1, var=10.0):
  """CARL's algos/scl.py per video: KL(Y || Q) summed over valid pairs of the two views, both
  directions, divided by the number of valid frames (float64; padded frames removed)."""
  out = []
  for b in range(len(z)):
    za, zb = z[b, 0][mask[b, 0]], z[b, 1][mask[b, 1]]
    sa, sb = steps[b, 0][mask[b, 0]], steps[b, 1][mask[b, 1]]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    total = 0.0
    for q, k, sq, sk in ((za, zb, sa, sb), (zb, za, sb, sa)):
      g = np.exp(-(sq[:, None] - sk[None, :]) ** 2 / (2 * var))
      y = g / g.sum(1, keepdims=True)
      p = softmax(unit(q) @ unit(k).T / tau, axis=1)
      total += np.sum(xlogy(y, y) - y * np.log(p + 1e-6))
    out.append(total / (len(za) + len(zb)))
  return np.mean(out)


def test_scl_matches_carl():
  z, steps, mask, lengths = _batch(0, PADDED)
  value, parts = _value("scl", z, steps, mask, lengths)
  np.testing.assert_allclose(value, scl_reference(z, steps, mask), rtol=1e-10)
  assert set(parts) == {"loss", "kl12", "kl21"}
  # Padded frames change nothing.
  z2 = z.copy()
  z2[~mask] = 50.0
  np.testing.assert_allclose(_value("scl", z2, steps, mask, lengths)[0], value, rtol=1e-12)
  _grad_checks("scl")


# ---------------------------------------------------------------------------------------------
# TCC.

def tcc_reference(z, steps, mask, lengths, pairs="videos", temperature=0.1, lam=0.001,
                  loss_type="regression_mse_var", honour=True):
  """google-research tcc deterministic_alignment + regression loss, float64, per ordered pair,
  rows concatenated (padded frames dropped when ``honour``)."""
  seqs = z.reshape(2 * B, T, E)
  times = steps.reshape(2 * B, T) / np.repeat(lengths, 2)[:, None]
  valid = mask.reshape(2 * B, T) if honour else np.ones((2 * B, T), bool)
  ids = range(0, 2 * B, 2) if pairs == "videos" else range(2 * B)
  rows = []
  for i in ids:
    for j in ids:
      if i == j:
        continue
      u, v, su = seqs[i][valid[i]], seqs[j][valid[j]], times[i][valid[i]]
      sim = lambda a, b: -((a[:, None] - b[None]) ** 2).sum(-1) / E / temperature
      nn = softmax(sim(u, v), axis=1) @ v
      logits = sim(nn, u)
      if loss_type == "classification":
        rows += list(-np.diag(log_softmax(logits, axis=1)))
        continue
      beta = softmax(logits, axis=1)
      mu = beta @ su
      nu = (beta * (su[None] - mu[:, None]) ** 2).sum(1)
      rows += list((su - mu) ** 2 / nu + lam * np.log(nu))
  return np.mean(rows)


@pytest.mark.parametrize("pairs, honour", [("videos", True), ("sequences", False)])
def test_tcc_matches_the_tcc_code(pairs, honour):
  z, steps, mask, lengths = _batch(1, PADDED)
  value, _ = _value("tcc", z, steps, mask, lengths, pairs=pairs, honour_masks=honour)
  np.testing.assert_allclose(value, tcc_reference(z, steps, mask, lengths, pairs, honour=honour),
                             rtol=1e-9)
  value, _ = _value("tcc", z, steps, mask, lengths, loss_type="classification")
  np.testing.assert_allclose(value, tcc_reference(z, steps, mask, lengths,
                                                  loss_type="classification"), rtol=1e-9)
  official = losses.default_config("tcc", "official_code")
  assert (official.pairs, official.honour_masks) == ("sequences", False)


def test_tcc_needs_two_videos_and_lengths():
  z, steps, mask, lengths = _batch(2)
  loss = losses.build(losses.default_config("tcc"))
  with pytest.raises(ValueError, match="at least 2 videos"):
    loss(None, jnp.asarray(z[:1]), jnp.asarray(steps[:1]), jnp.asarray(mask[:1]),
         lengths=jnp.asarray(lengths[:1]))
  with pytest.raises(ValueError, match="lengths"):
    loss(None, jnp.asarray(z), jnp.asarray(steps), jnp.asarray(mask))
  _grad_checks("tcc")


# ---------------------------------------------------------------------------------------------
# TCN.

def tcn_npairs_reference(z, mask, lam=0.002):
  out = []
  for b in range(len(z)):
    keep = mask[b, 0] & mask[b, 1]
    a, p = z[b, 0][keep], z[b, 1][keep]
    xent = -np.diag(log_softmax(a @ p.T, axis=1))
    out.append(xent.mean() + 0.25 * lam * ((a ** 2).sum(1).mean() + (p ** 2).sum(1).mean()))
  return np.mean(out)


def tcn_triplet_reference(z, steps, mask, margin=0.2, pos=10, neg=30):
  out = []
  for b in range(len(z)):
    per_anchor = []
    for i in np.flatnonzero(mask[b, 0]):
      gaps = np.abs(steps[b, 0, i] - steps[b, 1])
      ps = [j for j in range(T) if mask[b, 1, j] and gaps[j] <= pos]
      ns = [j for j in range(T) if mask[b, 1, j] and gaps[j] >= neg]
      if not ps or not ns:
        continue
      d = lambda j: np.linalg.norm(z[b, 0, i] - z[b, 1, j] + 1e-6)  # pylint: disable=cell-var-from-loop
      per_anchor.append(np.mean([max(d(p) - d(n) + margin, 0) for p in ps for n in ns]))
    out.append(np.mean(per_anchor) if per_anchor else 0.0)
  return np.mean(out)


def test_tcn_npairs_and_triplets():
  z, steps, mask, lengths = _batch(3, PADDED)
  value, _ = _value("tcn", z, steps, mask, lengths)
  np.testing.assert_allclose(value, tcn_npairs_reference(z, mask), rtol=1e-10)
  z, steps, mask, lengths = _batch(4, PADDED)
  steps = np.sort(np.random.default_rng(4).integers(0, 80, size=(B, 2, T)), axis=-1)
  value, _ = _value("tcn", z, steps, mask, lengths, variant="triplet")
  np.testing.assert_allclose(value, tcn_triplet_reference(z, steps, mask), rtol=1e-10)
  assert losses.default_config("tcn", "official_code").variant == "triplet"
  _grad_checks("tcn")
  _grad_checks("tcn", variant="triplet")


def test_tcn_positive_sampling():
  from lac_jax.data import sampling  # pylint: disable=g-import-not-at-top
  cfg = sampling.default_config()
  cfg.num_frames, cfg.views, cfg.positive_window = 16, "tcn_positives", 5
  steps, mask = sampling.sample_two_views(60, cfg, np.random.default_rng(0))
  back = steps[0] - steps[1]
  assert np.all((back >= 1) & (back <= 5) | (steps[1] == 0))  # 1-5 frames before the anchor
  np.testing.assert_array_equal(mask[0], mask[1])


# ---------------------------------------------------------------------------------------------
# LAV.

def lav_reference(z, steps, mask, lengths, normalize=False, bug=False, honour=True, gamma=0.1,
                  alpha=0.5, sigma=10.0, margin=2.0):
  from test_soft_dtw import reference as sdtw  # pylint: disable=g-import-not-at-top
  seqs = z.reshape(2 * B, T, E)
  s = steps.reshape(2 * B, T).astype(float)
  vlen = np.repeat(lengths, 2).astype(float)
  valid = mask.reshape(2 * B, T) if honour else np.ones((2 * B, T), bool)
  sq = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)

  def idm(seq, idx):
    x, st, keep = seqs[seq], s[idx], valid[seq]
    total = 0.0
    for i in np.flatnonzero(keep):
      for j in np.flatnonzero(keep):
        d = ((x[i] - x[j]) ** 2).sum()
        gap = abs(st[i] - st[j])
        total += d if gap <= sigma else (1 + (gap / vlen[idx]) ** 2) * max(0.0, margin - d)
    return total

  out = []
  for k in range(B):
    a, b2 = k, k + B
    x, y = seqs[a][valid[a]], seqs[b2][valid[b2]]
    delta = sdtw(sq(x, y), gamma)
    if normalize:
      delta -= 0.5 * (sdtw(sq(x, x), gamma) + sdtw(sq(y, y), gamma))
    ia, ib = (2 * k, 2 * k + 1) if bug else (a, b2)
    out.append((delta + alpha * (idm(a, ia) + idm(b2, ib))) / T)
  return np.mean(out)


@pytest.mark.parametrize("preset", ["paper", "official_code"])
def test_lav_matches_lav_cvpr21(preset):
  z, steps, mask, lengths = _batch(5, PADDED, scale=0.3)
  cfg = losses.default_config("lav", preset)
  value, parts = _value("lav", z, steps, mask, lengths, **cfg.to_dict())
  want = lav_reference(z, steps, mask, lengths, normalize=cfg.normalize, bug=cfg.idm_index_bug,
                       honour=cfg.honour_masks)
  np.testing.assert_allclose(value, want, rtol=1e-9)
  np.testing.assert_allclose(parts["alignment"] + parts["idm"], value, rtol=1e-12)
  _grad_checks("lav", **cfg.to_dict())


# ---------------------------------------------------------------------------------------------
# GTA.

def smooth_dtw_reference(x, y, gf=0.1, gs=0.1):
  n, m = len(x), len(y)
  c = -log_softmax(x @ y.T / gf, axis=0)
  r = np.zeros((n + 1, m + 1))
  for a in range(1, n + 1):
    for b in range(1, m + 1):
      cands = []
      for (ia, ib) in ((a, b - 1), (a - 1, b - 1), (a - 1, b)):
        if (ia, ib) == (0, 0) or (ia >= 1 and ib >= 1):
          cands.append(r[ia, ib])
      cands = np.array(cands)
      pi = softmax(-cands / gs)
      r[a, b] = c[a - 1, b - 1] + (pi * cands).sum()
  return r[1:, 1:]


def gta_reference(z, pairs="videos", transpose=True, ls=0.1, weight=0.1):
  seqs = z.reshape(2 * B, T, E)
  seqs = seqs / np.linalg.norm(seqs, axis=-1, keepdims=True)
  partners = range(2, 2 * B, 2) if pairs == "videos" else range(1, 2 * B)
  ces, cxy, cyx = [], [], []
  for j in partners:
    rxy, ryx = smooth_dtw_reference(seqs[0], seqs[j]), smooth_dtw_reference(seqs[j], seqs[0])
    p = softmax(-rxy, axis=0) @ softmax(-ryx, axis=0)
    logits = p.T if transpose else p
    target = (1 - ls) * np.eye(T) + ls / T
    ces.append(-(target * log_softmax(logits, axis=1)).sum(1).mean())
    cxy.append(rxy[-1, -1])
    cyx.append(ryx[-1, -1])
  return np.mean(ces) + weight * (np.mean(cxy) + np.mean(cyx))


@pytest.mark.parametrize("preset", ["paper", "official_code"])
def test_gta_matches_video_alignment(preset):
  z, steps, mask, lengths = _batch(6)
  cfg = losses.default_config("gta", preset)
  value, parts = _value("gta", z, steps, mask, lengths, **cfg.to_dict())
  np.testing.assert_allclose(value, gta_reference(z, cfg.pairs, cfg.transpose), rtol=1e-9)
  np.testing.assert_allclose(parts["consistency"] + parts["cost"], value, rtol=1e-12)
  _grad_checks("gta", **cfg.to_dict())


# ---------------------------------------------------------------------------------------------
# End to end: every baseline trains through the trainer (--config.loss.name=...), is evaluated
# by the same pass and resumes.

TRAIN_SCRIPT = '''
import importlib.util, json, sys
import jax, numpy as np
spec = importlib.util.spec_from_file_location("tiny", sys.argv[1])
tiny = importlib.util.module_from_spec(spec); spec.loader.exec_module(tiny)
from lac_jax import checkpoint, train
root = sys.argv[2]
out = {}
for name in ("scl", "tcc", "tcn", "lav", "gta"):
  cfg = tiny.get_config()
  cfg.loss.name = name  # as --config.loss.name=<name>: the trainer takes that loss's defaults
  cfg.train.num_steps, cfg.train.eval_at_end = 3, True
  state = train.train_and_evaluate(cfg, f"{root}/{name}")
  out[name] = int(state.step)
cfg = tiny.get_config()
cfg.loss.name = "tcc"
cfg.train.num_steps, cfg.train.stop_at_step = 4, 2
train.train_and_evaluate(cfg, f"{root}/resumed")
cfg.train.stop_at_step = 0
resumed = train.train_and_evaluate(cfg, f"{root}/resumed")
whole = train.train_and_evaluate(cfg, f"{root}/whole")
same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(resumed.params),
                                                 jax.tree.leaves(whole.params)))
json.dump({"steps": out, "resume_equal": same, "resumed_step": int(resumed.step)},
          open(f"{root}/results.json", "w"))
'''


def test_every_baseline_trains_evaluates_and_resumes(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from test_train import TINY_CONFIG, _env  # pylint: disable=g-import-not-at-top
  (tmp_path / "tiny.py").write_text(TINY_CONFIG)
  (tmp_path / "run.py").write_text(TRAIN_SCRIPT)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "tiny.py"),
                         str(tmp_path)], cwd=repo, env=_env(cache=str(tmp_path / "cache")),
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-5000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["steps"] == {name: 3 for name in ("scl", "tcc", "tcn", "lav", "gta")}
  assert results["resume_equal"] and results["resumed_step"] == 4
  for name in results["steps"]:
    saved = json.loads((tmp_path / name / "config.json").read_text())
    assert saved["loss"]["name"] == name
    assert (saved["data"]["sampling"]["views"] == "tcn_positives") == (name == "tcn")
    summary = json.loads((tmp_path / name / "eval" / "summary.json").read_text())
    row = summary["rows"]["trained (step 3)"]
    assert all(np.isfinite(v) for k, v in row.items() if k in ("class_100", "ap_5", "tau"))
    rows = [r for r in logs.read_metrics(tmp_path / name) if "train/loss" in r]
    parts = {"lav": "train/idm", "gta": "train/consistency", "scl": "train/kl12"}
    assert len(rows) == 3 and all(np.isfinite(r["train/loss"]) for r in rows)
    assert parts.get(name, "train/loss") in rows[-1]
