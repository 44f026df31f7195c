"""Tests for lac_jax.inference (a trained encoder on any video) and the saved run config."""

import json
import os

import jax
import numpy as np
import pytest
from tiny import tiny_encoder_config

from lac_jax import checkpoint
from lac_jax import config as config_lib
from lac_jax import evaluate
from lac_jax import inference
from lac_jax import train
from lac_jax.data import decode
from lac_jax.data import encode
from lac_jax.models import encoder

SIZE = 32


def make_trained(dataset="pouring", **model_overrides):
  """A TrainedEncoder of a randomly initialised tiny model (the maths does not need training)."""
  config = config_lib.base_config()
  config.model = tiny_encoder_config(pe_positions="linspace", **model_overrides)
  config.data.dataset = dataset
  config.data.image_size = SIZE
  model = encoder.build_encoder(config.model)
  nc = config.model.num_context
  variables = encoder.init_variables(model, jax.random.PRNGKey(3), (1, 2 * nc, SIZE, SIZE, 3))
  # Non-trivial BatchNorm statistics, so that running statistics matter.
  variables["batch_stats"] = jax.tree.map(lambda x: x + 0.1, variables["batch_stats"])
  return inference.TrainedEncoder(model, variables, config)


def random_frames(num_frames, height=40, width=48, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (1, height, width, 3))
  drift = rng.integers(-40, 40, (num_frames, 1, 1, 3)).cumsum(0)
  return np.clip(
    base + drift + rng.integers(-10, 10, (num_frames, height, width, 3)), 0, 255
  ).astype(np.uint8)


@pytest.mark.parametrize("num_context", [1, 2])
def test_embedding_equals_evaluation_for_any_chunk_size(num_context):
  trained = make_trained(num_context=num_context)
  frames = random_frames(37)  # 37: not a multiple of num_context, nor of any chunk below
  resized = np.stack([decode.resize_frame(f, SIZE) for f in frames])
  want = evaluate.embed_videos(trained.model, trained.variables, [resized], image_size=None)[0]
  assert want.shape == (37, 8)
  for chunk in (1, 5, 16, 64):
    got = trained.embed(frames, frames_per_chunk=chunk)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  # The transformer sees the whole video: the first frames depend on the last ones.
  part = trained.embed(frames[:20])
  assert np.abs(part - want[:20]).max() > 1e-3


def test_videos_longer_than_the_run_buckets():
  trained = make_trained()
  frames = random_frames(40)
  want = trained.embed(frames)
  trained.config.eval.bucket_sizes = (16, 24)  # Both shorter than the video.
  np.testing.assert_allclose(trained.embed(frames), want, atol=1e-5, rtol=0)


def test_progress_counts_every_frame_once():
  trained = make_trained()
  seen = []
  trained.embed(random_frames(23), frames_per_chunk=8, progress=seen.append)
  assert seen == [8, 8, 7]


def test_resize_follows_the_dataset_of_the_run():
  frames = random_frames(3, 64, 64)
  synthetic = make_trained("synthetic").resize(frames[0])
  real = make_trained("pouring").resize(frames[0])
  from lac_jax.data import augment  # pylint: disable=g-import-not-at-top

  np.testing.assert_array_equal(synthetic, augment.resize(frames[:1], SIZE)[0])
  np.testing.assert_array_equal(real, decode.resize_frame(frames[0], SIZE))


def test_frame_folder_gives_the_embeddings_of_the_mp4(tmp_path):
  trained = make_trained()
  video = tmp_path / "take 1.mp4"
  encode.write_video(video, random_frames(21, 36, 44), fps=30)
  decoded = decode.decode_video(video)
  encode.write_frames(tmp_path / "take1_frames", decoded)
  mp4 = inference.open_input(str(video))
  folder = inference.open_input(str(tmp_path / "take1_frames"))
  assert (mp4.kind, mp4.name, mp4.num_frames, mp4.fps) == ("video", "take 1", 21, 30.0)
  assert (folder.kind, folder.name, folder.num_frames, folder.fps) == (
    "frames",
    "take1_frames",
    21,
    None,
  )
  np.testing.assert_allclose(trained.embed(folder), trained.embed(mp4), atol=1e-6, rtol=0)


def test_frame_folder_order_and_bad_inputs(tmp_path):
  frames = random_frames(3, 8, 8)
  folder = tmp_path / "frames"
  folder.mkdir()
  from PIL import Image  # pylint: disable=g-import-not-at-top

  for name, frame in zip(("f10.png", "f2.jpg", "f1.png"), frames):
    Image.fromarray(frame).save(folder / name, quality=100)
  (folder / "notes.txt").write_text("not a frame")
  video = inference.open_input(str(folder))
  assert [os.path.basename(f) for f in video.files] == ["f1.png", "f2.jpg", "f10.png"]
  np.testing.assert_array_equal(video.read()[0], frames[2])

  (tmp_path / "empty").mkdir()
  (tmp_path / "junk.mp4").write_bytes(b"\x00not a video" * 10)
  for path, message in (
    (tmp_path / "missing.mp4", "no such file"),
    (tmp_path / "empty", "holds no .jpg/.jpeg/.png"),
    (tmp_path / "junk.mp4", "corrupt or unreadable video"),
  ):
    with pytest.raises(inference.InputError, match=message) as info:
      inference.open_input(str(path))
    assert str(info.value).count(str(path)) == 1  # named once, first
    assert str(info.value).startswith(str(path))
  (folder / "f3.png").write_bytes(b"broken")
  with pytest.raises(inference.InputError, match="f3.png: corrupt or unreadable image"):
    make_trained().embed(inference.open_input(str(folder)))


def test_run_config_round_trip_and_errors(tmp_path):
  config = config_lib.base_config()
  config.model = tiny_encoder_config()
  config.eval.bucket_sizes = (32, 64)
  config.model.backbone_weights = "/weights.npz"
  checkpoint.write_config(str(tmp_path), config)
  back = checkpoint.read_config(str(tmp_path), config_lib.base_config())
  assert back.to_dict() == config.to_dict()
  assert isinstance(back.model.mlp_sizes, tuple) and isinstance(back.eval.bucket_sizes, tuple)

  with pytest.raises(FileNotFoundError, match="--config"):
    checkpoint.read_config(str(tmp_path / "old_run"), config_lib.base_config())
  values = json.loads((tmp_path / "config.json").read_text())
  values["model"]["no_such_field"] = 1
  (tmp_path / "config.json").write_text(json.dumps(values))
  with pytest.raises(ValueError, match="model.no_such_field"):
    checkpoint.read_config(str(tmp_path), config_lib.base_config())


def test_runs_saved_before_fields_moved_still_load(tmp_path):
  """A config.json with the old flat fields (model.resnet_depth, model.cut, data.fps ...) loads
  into their new places (lac_jax.config.RENAMED); without the renames it is refused."""
  config = config_lib.base_config()
  values = config.to_dict()
  del values["model"]["trunk_options"], values["data"]["videos"]
  values["model"].update(resnet_depth=18, cut="conv2a")
  values["data"].update(val_fraction=0.3, fps=7.5, max_frames=64)
  (tmp_path / "config.json").write_text(json.dumps(values))
  with pytest.raises(ValueError, match="is not in this version.s config"):
    checkpoint.read_config(str(tmp_path), config_lib.saved_config_template)
  back = checkpoint.read_config(
    str(tmp_path), config_lib.saved_config_template, renamed=config_lib.RENAMED
  )
  assert back.model.trunk_options.to_dict() == {"depth": 18, "cut": "conv2a"}
  assert back.data.videos.to_dict() == {"val_fraction": 0.3, "fps": 7.5, "max_frames": 64}
  config_lib.prepare_config(back)


def _save_run(workdir, config):
  model, _ = train.build_models(config)
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), 4, 1, load_weights=False)
  ckpts = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.CHECKPOINT_DIR))
  ckpts.save(5, state)
  ckpts.close()
  return state


def test_load_trained_restores_the_checkpoint_and_checks_the_model(tmp_path):
  config = config_lib.base_config()
  config.model = tiny_encoder_config()
  config.data.image_size = SIZE
  config.data.sampling.num_frames = 4
  state = _save_run(str(tmp_path), config)
  with pytest.raises(FileNotFoundError, match="--config"):
    inference.load_trained(str(tmp_path))
  checkpoint.write_config(str(tmp_path), config)
  trained = inference.load_trained(str(tmp_path))
  assert trained.step == 5 and trained.output_dim == 8 and trained.image_size == SIZE
  for got, want in zip(
    jax.tree.leaves(trained.variables["params"]), jax.tree.leaves(state.params["encoder"])
  ):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  gaps = trained.gap_penalties()
  np.testing.assert_allclose(gaps["gap_open"], np.ones((4, 4)), rtol=1e-6)

  other = config.copy_and_resolve_references()
  other.model.output_dim = 16
  with pytest.raises(ValueError, match="params/output/(bias|kernel) has shape"):
    inference.load_trained(str(tmp_path), config=other)
  with pytest.raises(FileNotFoundError, match="step 7"):
    inference.load_trained(str(tmp_path), step=7)
  with pytest.raises(FileNotFoundError, match="no such directory"):
    inference.load_trained(str(tmp_path / "nothing_here"))
  (tmp_path / "not_a_run").mkdir()
  with pytest.raises(FileNotFoundError, match="no checkpoints/ folder"):
    inference.load_trained(str(tmp_path / "not_a_run"))


def _write_with_pyav(path, frames, codec, pix_fmt):
  import av  # pylint: disable=g-import-not-at-top

  with av.open(str(path), "w") as container:
    stream = container.add_stream(codec, rate=24)
    stream.height, stream.width, stream.pix_fmt = frames.shape[1], frames.shape[2], pix_fmt
    for frame in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())


def test_other_containers(tmp_path):
  trained = make_trained()
  frames = random_frames(9, 32, 32)
  for suffix, codec, pix_fmt in (
    (".webm", "libvpx-vp9", "yuv420p"),
    (".avi", "mjpeg", "yuvj420p"),
    (".mov", "libx264", "yuv420p"),
  ):
    path = tmp_path / f"clip{suffix}"
    _write_with_pyav(path, frames, codec, pix_fmt)
    video = inference.open_input(str(path))
    assert (video.kind, video.name) == ("video", "clip")
    decoded = video.read()
    assert decoded.shape == frames.shape
    # Lossy codecs blur the per-pixel noise, but each frame keeps its mean colour.
    np.testing.assert_allclose(decoded.mean((1, 2)), frames.mean((1, 2)), atol=8)
    emb = trained.embed(video)
    assert emb.shape == (9, 8) and np.all(np.isfinite(emb))
