"""The ``rendered`` dataset: multi-phase physical actions simulated and rendered in 3D (MuJoCo).

Only the actors are scripted (a mocap pusher or gripper); the rest moves by ``mj_step``, and every
frame is labelled from the simulation's state (contacts, joint velocities, the grip weld). Looks,
timing, camera and direction vary per video, drawn from ``(seed, action, split, index)``. Videos
are rendered once, in parallel ('spawn' processes), into one ``array_record`` store each under
``data.cache_dir``; ``python -m lac_jax.data.rendered --output=DIR`` writes them as a folder of
mp4s + labels.json (the ``videos`` layout), ``--long`` as long recordings. docs/rendered.md.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
from typing import Any, Optional

from absl import logging
import ml_collections
import numpy as np

from lac_jax.data import entries
from lac_jax.data import record
from lac_jax.data.record import Video

NAME = "rendered"
PHASES: dict[str, tuple[str, ...]] = {
  "door": ("approach", "push", "swing", "rest"),
  "drop": ("reach", "carry", "fall", "settle"),
  "roll": ("approach", "descend", "cross", "stop"),
}
ACTIONS = tuple(PHASES)
NUM_PHASES = {a: len(p) for a, p in PHASES.items()}
SPLITS = ("train", "val")
RESIZE_ON_LOAD = False  # rendered at data.rendered's size
DECODE_CACHE = True  # training puts data.cache_dir under the workdir when it is unset
# The generator's version per action: bump an action's when its draws render different frames
# (the other actions' cached videos stay valid).
VERSION = {"door": 1, "drop": 3, "roll": 2}
DEFAULT_CACHE = os.path.join("~", ".cache", "lac_jax", "rendered")
LABELS_FILE = "labels.json"
TAKES_FILE = "takes.json"
FPS = 25.0
_SUBSTEPS = 10  # physics steps per frame (timestep 4 ms)
_STORE_NAME = "frames"
_META = "meta.json"
_GL_HINT = (
  "no OpenGL backend for MuJoCo's offscreen renderer (MUJOCO_GL={gl!r}): install libegl1 and "
  "libgl1-mesa-dri (MUJOCO_GL=egl) or libosmesa6 (MUJOCO_GL=osmesa); scripts/install.sh does"
)


def default_config() -> ml_collections.ConfigDict:
  """This dataset's options, ``config.data.rendered`` (docs/rendered.md)."""
  c = ml_collections.ConfigDict()
  c.num_train = 192  # training videos per action
  c.num_val = 16  # validation videos per action
  c.height = 64  # frame height, pixels
  c.width = 64  # frame width, pixels
  c.min_frames = 40  # shortest video; a draw whose events do not fit is drawn again
  c.max_frames = 100  # longest video
  c.seed = 0  # video i of split s of action a is drawn from the stream (seed, a, s, i)
  c.max_distractors = 3  # 0..this static distractor objects per video
  c.camera_shake = 0.4  # per-frame camera motion amplitude, degrees of azimuth/elevation
  c.workers = 0  # render processes: 0 = every CPU core, 1 = in this process
  return c


def options(data: Any) -> ml_collections.ConfigDict:
  """``data.rendered`` over `default_config` (a data config may omit the section)."""
  c = default_config()
  c.update(dict(data.get("rendered", None) or {}))
  return c


def _check(cfg: ml_collections.ConfigDict) -> None:
  if cfg.height < 16 or cfg.width < 16:
    raise ValueError(f"config.data.rendered.height/width: need >= 16, got {cfg.height}x{cfg.width}")
  if not 20 <= cfg.min_frames <= cfg.max_frames:
    raise ValueError(
      "config.data.rendered.min_frames/max_frames: need 20 <= min_frames <= max_frames, got "
      f"{cfg.min_frames}, {cfg.max_frames}"
    )
  if cfg.num_train < 2 or cfg.num_val < 1:
    raise ValueError(
      f"config.data.rendered.num_train/num_val: need >= 2 and >= 1, got {cfg.num_train}, "
      f"{cfg.num_val}"
    )
  if not 0 <= cfg.max_distractors <= 3:
    raise ValueError(f"config.data.rendered.max_distractors: need 0..3, got {cfg.max_distractors}")


def _rng(seed: int, action: str, split: str, index: int) -> np.random.Generator:
  return np.random.default_rng([int(seed), ACTIONS.index(action), SPLITS.index(split), index])


# ------------------------------------------------------------------------------------------
# Draws: everything a video's looks and timing depend on.


def _rgb(rng: np.random.Generator, lo: float = 0.1, hi: float = 0.95) -> str:
  return " ".join(f"{v:.3f}" for v in rng.uniform(lo, hi, 3))


def _material(rng: np.random.Generator, name: str, repeat: tuple[int, int] = (1, 4)) -> str:
  """A texture + material with a random builtin pattern, colours and shininess."""
  builtin = rng.choice(["flat", "checker", "gradient"])
  return (
    f'<texture name="{name}" type="2d" builtin="{builtin}" rgb1="{_rgb(rng)}" '
    f'rgb2="{_rgb(rng)}" width="32" height="32"/>'
    f'<material name="{name}" texture="{name}" texrepeat="{rng.integers(*repeat)} '
    f'{rng.integers(*repeat)}" specular="{rng.uniform(0, 0.6):.2f}" '
    f'shininess="{rng.uniform(0, 0.8):.2f}"/>'
  )


@dataclasses.dataclass
class Draw:
  """One video's random choices (``mirror``: +1 or -1, the x direction of the motion)."""

  mirror: float
  camera: tuple[float, float, float]  # azimuth, elevation (degrees), distance (m)
  assets: str  # MJCF <asset> contents
  stage: str  # MJCF floor, lights and distractors
  params: dict[str, float]


def _draw(rng: np.random.Generator, cfg: ml_collections.ConfigDict) -> Draw:
  mirror = float(rng.choice([-1.0, 1.0]))
  assets = (
    _material(rng, "floor", (6, 24)) + f'<texture type="skybox" builtin="gradient" '
    f'rgb1="{_rgb(rng)}" rgb2="{_rgb(rng, 0.0, 0.4)}" width="32" height="32"/>'
  )
  assets += "".join(_material(rng, n) for n in ("actor", "thing", "fixture"))
  assets += "".join(_material(rng, f"extra{i}") for i in range(3))
  light_dir = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), -1.0])
  light = rng.uniform(0.4, 0.9)
  stage = (
    '<geom name="floor" type="plane" size="3 3 0.1" material="floor" contype="1" '
    'conaffinity="1"/>'
    f'<light directional="true" castshadow="true" pos="0 0 3" dir="{light_dir[0]:.3f} '
    f'{light_dir[1]:.3f} -1" diffuse="{light:.2f} {light:.2f} {light:.2f}"/>'
  )
  for i in range(int(rng.integers(0, cfg.max_distractors + 1))):
    kind = rng.choice(["box", "sphere", "cylinder"])
    size = rng.uniform(0.03, 0.08)
    # Behind the action (y > 0.35) or far to a side, so they never touch it.
    x, y = rng.uniform(-0.7, 0.7), rng.uniform(0.4, 0.8)
    stage += (
      f'<geom type="{kind}" size="{size:.3f} {size:.3f} {size:.3f}" pos="{x:.3f} {y:.3f} '
      f'{size:.3f}" material="extra{i}" contype="0" conaffinity="0"/>'
    )
  camera = (90.0 + rng.uniform(-30, 30), rng.uniform(-55, -25), rng.uniform(0.9, 1.3))
  return Draw(mirror, camera, assets, stage, {})


def _xml(draw: Draw, body: str, equality: str = "") -> str:
  return (
    '<mujoco><option timestep="0.004"/>'
    '<visual><quality shadowsize="512"/><headlight ambient="0.35 0.35 0.35" '
    'diffuse="0.2 0.2 0.2"/></visual>'
    f"<asset>{draw.assets}</asset><worldbody>{draw.stage}{body}</worldbody>{equality}</mujoco>"
  )


def _smooth(x: np.ndarray | float) -> np.ndarray | float:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3 - 2 * x)


# ------------------------------------------------------------------------------------------
# The actions: a scene, a script for the actor and the per-frame phase from the sim state.


class _Door:
  """A mocap pusher approaches a hinged door, pushes it (contact), withdraws; the door swings
  on and comes to rest against its stop (the hinge's range)."""

  zoom = 1.0  # the camera's distance, as a fraction of the drawn one

  def __init__(self, rng: np.random.Generator, draw: Draw) -> None:
    m = draw.mirror
    self.width = rng.uniform(0.25, 0.4)
    height = rng.uniform(0.25, 0.45)
    self.stop = rng.uniform(75, 115)
    self.radius = rng.uniform(0.025, 0.045)
    self.start = rng.uniform(0.15, 0.35)  # pusher's distance from the door face
    self.depth = rng.uniform(0.08, 0.14)  # how far past the closed face it pushes
    self.speed = rng.uniform(0.5, 0.9)  # m/s
    self.pause = rng.uniform(0.0, 0.6)  # s before it moves
    self.hold = rng.uniform(0.0, 0.2)  # s at the deepest point
    self.y = -0.15 + rng.uniform(0.65, 0.9) * self.width
    self.mirror = m
    damping = rng.uniform(0.002, 0.01)
    self.rest_frames = int(rng.integers(8, 20))
    self.xml = _xml(
      draw,
      f'<body name="door" pos="0 -0.15 0.01"><joint name="hinge" type="hinge" axis="0 0 {m:g}" '
      f'limited="true" range="0 {self.stop:.1f}" damping="{damping:.4f}" '
      f'frictionloss="0.01" solreflimit="0.03 3"/>'
      f'<geom name="door" type="box" size="0.012 {self.width / 2:.3f} '
      f'{height / 2:.3f}" pos="0 {self.width / 2:.3f} {height / 2:.3f}" material="thing" '
      f'density="{rng.uniform(200, 600):.0f}" contype="2" conaffinity="2"/></body>'
      f'<body name="post" pos="0 -0.17 0"><geom type="cylinder" size="0.015 {height / 2:.3f}" '
      f'pos="0 0 {height / 2:.3f}" material="fixture" contype="0" conaffinity="0"/></body>'
      f'<body name="pusher" mocap="true" pos="{m * (0.012 + self.radius + self.start):.3f} '
      f'{self.y:.3f} {height / 2:.3f}"><geom name="pusher" type="sphere" '
      f'size="{self.radius:.3f}" material="actor" contype="2" conaffinity="2"/>'
      f'<geom type="capsule" fromto="0 0 0 {m * 0.5:.2f} 0 0" size="0.012" material="actor" '
      'contype="0" conaffinity="0"/></body>',
    )
    travel = self.start + self.depth
    self.t_in = travel / self.speed
    self.lookat = np.array([m * 0.05, 0.0, 0.12])

  def script(self, model: Any, data: Any, t: float, state: dict) -> None:
    """Pusher x(t): pause, smooth push to the deepest point, hold, smooth withdrawal."""
    travel = self.start + self.depth
    t1 = self.pause + 1.5 * self.t_in
    if t < self.pause:
      u = 0.0
    elif t < t1:
      u = float(_smooth((t - self.pause) / (1.5 * self.t_in)))
    else:
      u = 1.0 - float(_smooth((t - t1 - self.hold) / (2.5 * self.t_in)))
    data.mocap_pos[0, 0] = self.mirror * (0.012 + self.radius + self.start - travel * u)

  def flags(self, model: Any, data: Any) -> dict[str, bool]:
    return {"contact": _touching(model, data, "pusher", "door")}

  def state(self, model: Any, data: Any) -> dict[str, float]:
    return {"angle": float(np.degrees(data.qpos[0])), "speed": float(abs(data.qvel[0]))}

  def labels(self, rec: list[dict]) -> Optional[np.ndarray]:
    """approach until the first frame with pusher-door contact, push through the last one,
    swing until the door's speed stays under 0.05 rad/s, then rest (-> None: a phase missing
    or the door stopped away from its stop)."""
    contact = np.array([r["contact"] for r in rec])
    if not contact.any():
      return None
    first, last = np.flatnonzero(contact)[[0, -1]]
    moving = np.array([r["speed"] >= 0.05 for r in rec])
    moving[: last + 1] = True
    rest = int(np.flatnonzero(moving)[-1]) + 1
    if rest >= len(rec) or rest <= last + 1 or rec[-1]["angle"] < self.stop - 8:
      return None
    return _phase_labels(len(rec), [first, last + 1, rest])

  def done(self, rec: list[dict]) -> bool:
    labels = self.labels(rec) if rec[-1]["speed"] < 0.05 else None
    return labels is not None and int((labels == 3).sum()) >= self.rest_frames


class _Drop:
  """A mocap gripper reaches down to an object (first contact grips it: a weld turns on),
  carries it over a bin and releases it (the weld turns off); it falls, lands (first contact
  with the bin) and settles."""

  zoom = 0.7

  def __init__(self, rng: np.random.Generator, draw: Draw) -> None:
    m = self.mirror = draw.mirror
    self.size = rng.uniform(0.05, 0.065)
    shape = rng.choice(["box", "cylinder", "ellipsoid"])
    self.obj_x = m * rng.uniform(-0.22, -0.14)
    self.bin_x = m * rng.uniform(0.14, 0.2)
    bin_half, wall = rng.uniform(0.11, 0.13), rng.uniform(0.04, 0.08)
    self.start = np.array([self.obj_x + m * rng.uniform(-0.1, 0.15), 0.0, rng.uniform(0.3, 0.45)])
    self.lift = rng.uniform(0.25, 0.4)
    self.speed = rng.uniform(0.4, 0.7)
    self.pause = rng.uniform(0.0, 0.5)
    self.hold = rng.uniform(0.05, 0.4)  # s over the bin before the release
    self.rest_frames = int(rng.integers(8, 20))
    self.back = rng.uniform(0.6, 1.0)  # s to return to the start after the release
    self.returned = False
    s = self.size
    walls = "".join(
      f'<geom name="bin{i}" type="box" size="{sx:.3f} {sy:.3f} {sz:.3f}" pos="{px:.3f} {py:.3f} '
      f'{pz:.3f}" material="fixture" contype="1" conaffinity="1"/>'
      for i, (sx, sy, sz, px, py, pz) in enumerate(
        [
          (bin_half, bin_half, 0.006, self.bin_x, 0, 0.006),
          (0.006, bin_half, wall, self.bin_x - bin_half, 0, wall),
          (0.006, bin_half, wall, self.bin_x + bin_half, 0, wall),
          (bin_half, 0.006, wall, self.bin_x, -bin_half, wall),
          (bin_half, 0.006, wall, self.bin_x, bin_half, wall),
        ]
      )
    )
    self.xml = _xml(
      draw,
      f'<body name="bin" pos="0 0 0">{walls}</body>'
      f'<body name="obj" pos="{self.obj_x:.3f} 0 {s + 0.001:.4f}"><freejoint/>'
      f'<geom name="obj" type="{shape}" size="{s:.3f} {s:.3f} {s:.3f}" material="thing" '
      f'density="{rng.uniform(300, 900):.0f}" friction="{rng.uniform(0.4, 1.0):.2f}"/></body>'
      f'<body name="gripper" mocap="true" pos="{self.start[0]:.3f} 0 {self.start[2]:.3f}">'
      f'<geom name="pad" type="box" size="{s * 1.3:.3f} {s * 1.3:.3f} 0.008" material="actor"/>'
      f'<geom type="cylinder" size="0.016 0.3" pos="0 0 0.31" material="actor" contype="0" '
      'conaffinity="0"/></body>',
      f'<equality><weld name="grip" body1="gripper" body2="obj" active="false" '
      f'relpose="0 0 {-(s + 0.009):.4f} 1 0 0 0" solref="0.01 1"/></equality>',
    )
    self.lookat = np.array([(self.obj_x + self.bin_x) / 2, 0.0, 0.15])

  def script(self, model: Any, data: Any, t: float, state: dict) -> None:
    """Reach: smooth move above the object, then down until the pad touches it (the grip);
    carry: up, over the bin, hold, release; then back up."""
    s = self.size
    if "grip" not in state:
      above = np.array([self.obj_x, 0.0, 2 * s + 0.12])
      t1 = self.pause + np.linalg.norm(above - self.start) / self.speed
      if t < self.pause:
        pos = self.start
      elif t < t1:
        pos = self.start + (above - self.start) * _smooth((t - self.pause) / (t1 - self.pause))
      else:  # straight down at a steady speed until the contact
        pos = above - np.array([0, 0, 0.5 * self.speed * (t - t1)])
      data.mocap_pos[0] = pos
      if _touching(model, data, "pad", "obj"):
        state["grip"], state["at"] = t, data.mocap_pos[0].copy()
        data.eq_active[0] = 1
      return
    tg, at = state["grip"], state["at"]
    up = np.array([at[0], 0.0, self.lift])
    over = np.array([self.bin_x, 0.0, self.lift])
    d1 = max(0.2, (self.lift - at[2]) / self.speed)
    d2 = max(0.2, abs(self.bin_x - at[0]) / self.speed)
    t = t - tg
    if t < d1:
      pos = at + (up - at) * _smooth(t / d1)
    elif t < d1 + d2:
      pos = up + (over - up) * _smooth((t - d1) / d2)
    else:  # after the release, back to where it started (its path overlaps reach and carry)
      t3 = t - d1 - d2 - self.hold
      pos = over + (self.start - over) * _smooth((t3 - 0.1) / self.back)
      if t3 >= 0:
        data.eq_active[0] = 0
      self.returned = t3 >= self.back + 0.1
    data.mocap_pos[0] = pos

  def flags(self, model: Any, data: Any) -> dict[str, bool]:
    return {
      "gripped": bool(data.eq_active[0]),
      "landed": any(_touching(model, data, "obj", f"bin{i}") for i in range(5)),
    }

  def state(self, model: Any, data: Any) -> dict[str, float]:
    return {"height": float(data.qpos[2]), "speed": float(np.linalg.norm(data.qvel[:3]))}

  def labels(self, rec: list[dict]) -> Optional[np.ndarray]:
    """reach until the first frame in which the grip holds (the pad touched the object),
    carry while it holds, fall from its release to the first contact with the bin, then
    settle (-> None: a phase missing)."""
    gripped = np.array([r["gripped"] for r in rec])
    if not gripped.any():
      return None
    first, last = np.flatnonzero(gripped)[[0, -1]]
    landed = np.array([r["landed"] for r in rec])
    landed[: last + 1] = False
    if last + 1 >= len(rec) or not landed.any():
      return None
    land = int(np.flatnonzero(landed)[0])
    if land <= last + 1 or first == 0:
      return None
    return _phase_labels(len(rec), [first, last + 1, land])

  def done(self, rec: list[dict]) -> bool:
    labels = self.labels(rec) if rec[-1]["speed"] < 0.02 and self.returned else None
    return labels is not None and int((labels == 3).sum()) >= self.rest_frames


class _Roll:
  """A mocap pusher nudges a ball off a platform: it rolls down a ramp (released by the push),
  across the floor (first contact with the floor), hits a wall (first contact) and comes to
  rest; the pusher goes back to where it started."""

  zoom = 0.85

  def __init__(self, rng: np.random.Generator, draw: Draw) -> None:
    m = self.mirror = draw.mirror
    self.r = r = rng.uniform(0.055, 0.075)
    h = rng.uniform(0.06, 0.1)  # platform height
    slope = np.radians(rng.uniform(18, 30))
    run = h / np.tan(slope)  # the ramp's horizontal length
    edge = -0.2 + rng.uniform(-0.05, 0.05)  # platform edge (x, before mirroring)
    self.ball_x = edge - rng.uniform(0.04, 0.08)
    wall_x = edge + run + rng.uniform(0.2, 0.35) + r
    self.start = rng.uniform(0.06, 0.12)  # pusher's distance from the ball
    self.depth = rng.uniform(0.02, 0.05)  # how far it goes past the first touch
    self.speed = rng.uniform(0.35, 0.7)
    self.pause = rng.uniform(0.0, 0.6)
    self.rest_frames = int(rng.integers(8, 20))
    self.returned = False
    pr = rng.uniform(0.02, 0.035)  # pusher radius
    self.x0 = self.ball_x - r - pr - self.start  # pusher start, before mirroring
    self.z = h + r
    roll = f"{rng.uniform(0.008, 0.014):.4f}"  # rolling friction: the ball stops on the floor
    half = rng.uniform(0.1, 0.16)  # half width (y) of platform, ramp and wall
    ramp_len = np.hypot(h, run)
    ramp = (  # a thin slab from the platform's edge down to the floor
      f'<geom name="ramp" type="box" size="{ramp_len / 2:.4f} {half:.3f} 0.005" '
      f'pos="{m * (edge + run / 2):.4f} 0 {h / 2 - 0.005:.4f}" '
      f'euler="0 {np.degrees(slope) * m:.3f} 0" material="fixture" condim="6" '
      f'friction="1 0.005 {roll}"/>'
    )
    self.xml = _xml(
      draw,
      f'<geom name="platform" type="box" size="0.15 {half:.3f} {h / 2:.4f}" '
      f'pos="{m * (edge - 0.15):.4f} 0 {h / 2:.4f}" material="fixture" condim="6" '
      f'friction="1 0.005 {roll}"/>{ramp}'
      f'<geom name="wall" type="box" size="0.02 {half:.3f} {rng.uniform(0.06, 0.12):.3f}" '
      f'pos="{m * (wall_x + 0.02):.4f} 0 0.06" material="thing" solref="0.02 0.6"/>'
      f'<body name="ball" pos="{m * self.ball_x:.4f} 0 {self.z + 0.001:.4f}"><freejoint/>'
      f'<geom name="ball" type="sphere" size="{r:.3f}" material="extra2" condim="6" '
      f'friction="1 0.005 {roll}" density="{rng.uniform(300, 1200):.0f}"/></body>'
      f'<body name="pusher" mocap="true" pos="{m * self.x0:.4f} 0 {self.z:.4f}">'
      f'<geom name="pusher" type="sphere" size="{pr:.3f}" material="actor"/>'
      f'<geom type="capsule" fromto="0 0 0 {-m * 0.4:.2f} 0 0" size="0.01" material="actor" '
      'contype="0" conaffinity="0"/></body>',
    )
    self.lookat = np.array([m * (self.ball_x + wall_x) / 2, 0.0, 0.06])

  def script(self, model: Any, data: Any, t: float, state: dict) -> None:
    """Pusher x(t): pause, smooth push to ``depth`` past the ball's start, then straight back."""
    travel = self.start + self.depth
    t_in = 1.5 * travel / self.speed
    if t < self.pause:
      u = 0.0
    elif t < self.pause + t_in:
      u = float(_smooth((t - self.pause) / t_in))
    else:
      back = (t - self.pause - t_in) / (2.0 * t_in)
      u = 1.0 - float(_smooth(back))
      self.returned = back >= 1.0
    data.mocap_pos[0, 0] = self.mirror * (self.x0 + travel * u)

  def flags(self, model: Any, data: Any) -> dict[str, bool]:
    return {
      "contact": _touching(model, data, "pusher", "ball"),
      "floor": _touching(model, data, "ball", "floor"),
      "wall": _touching(model, data, "ball", "wall"),
    }

  def state(self, model: Any, data: Any) -> dict[str, float]:
    return {"x": float(data.qpos[0]), "speed": float(np.linalg.norm(data.qvel[:3]))}

  def labels(self, rec: list[dict]) -> Optional[np.ndarray]:
    """approach until the first pusher-ball contact, descend until the ball's first contact
    with the floor, cross until its first contact with the wall, then stop (-> None: a phase
    missing or out of order)."""
    events = []
    for key in ("contact", "floor", "wall"):
      hit = np.flatnonzero([r[key] for r in rec])
      hit = hit[hit > (events[-1] if events else 0)]
      if not hit.size:
        return None
      events.append(int(hit[0]))
    return _phase_labels(len(rec), events)

  def done(self, rec: list[dict]) -> bool:
    labels = self.labels(rec) if rec[-1]["speed"] < 0.01 and self.returned else None
    return labels is not None and int((labels == 3).sum()) >= self.rest_frames


_ACTIONS = {"door": _Door, "drop": _Drop, "roll": _Roll}


def _phase_labels(length: int, starts: list[int]) -> np.ndarray:
  """int32 ``[length]``: the number of ``starts`` at or before each frame."""
  return np.searchsorted(np.asarray(starts), np.arange(length), side="right").astype(np.int32)


def _touching(model: Any, data: Any, a: str, b: str) -> bool:
  """Whether geoms ``a`` and ``b`` are in contact now (``data.contact``)."""
  import mujoco  # pylint: disable=g-import-not-at-top

  ga = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, a)
  gb = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, b)
  pairs = zip(data.contact.geom1[: data.ncon], data.contact.geom2[: data.ncon])
  return any({int(g1), int(g2)} == {ga, gb} for g1, g2 in pairs)


# ------------------------------------------------------------------------------------------
# Simulation and rendering.


@dataclasses.dataclass
class Rendered:
  """One simulated video: uint8 ``[T, H, W, 3]`` frames, int32 ``[T]`` labels and the per-frame
  sim record (``rec[t]``: the flags any of the frame's physics steps saw, and the state at the
  frame's end, when it is rendered)."""

  frames: np.ndarray
  labels: np.ndarray
  rec: list[dict]
  mirror: float
  camera: tuple[float, float, float]


def _mujoco() -> Any:
  """``mujoco``, imported with ``MUJOCO_GL=egl`` unless the user chose a backend."""
  os.environ.setdefault("MUJOCO_GL", "egl")
  try:
    import mujoco  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as e:
    if e.name != "mujoco":
      raise
    raise ModuleNotFoundError(
      "config.data.dataset='rendered' needs the mujoco package: pip install -r requirements.txt",
      name="mujoco",
    ) from None
  except (ImportError, AttributeError, OSError):  # PyOpenGL without the backend's library
    raise RuntimeError(_GL_HINT.format(gl=os.environ.get("MUJOCO_GL"))) from None
  return mujoco


def simulate(
  action: str, split: str, index: int, cfg: ml_collections.ConfigDict, render: bool = True
) -> Rendered:
  """Video ``index`` of ``split`` of ``action``: deterministic in (cfg.seed, action, split,
  index). A draw whose events do not fit in ``[min_frames, max_frames]`` is drawn again (from the
  same stream, so still deterministic)."""
  if action not in PHASES:
    raise ValueError(f"config.data.action: rendered has actions {list(ACTIONS)}, got {action!r}")
  mujoco = _mujoco()
  rng = _rng(cfg.seed, action, split, index)
  for _ in range(20):
    draw = _draw(rng, cfg)
    actor = _ACTIONS[action](rng, draw)
    az, el, distance = draw.camera
    draw.camera = (az, el, distance * actor.zoom)  # how much of the scene the action needs
    shake = rng.normal(size=(int(cfg.max_frames), 2)).cumsum(0)
    shake = cfg.camera_shake * np.clip(shake / 3.0, -1.5, 1.5)
    model = mujoco.MjModel.from_xml_string(actor.xml)
    data = mujoco.MjData(model)
    rec: list[dict] = []
    state: dict = {}
    while len(rec) < cfg.max_frames and not (rec and actor.done(rec)):
      seen: dict[str, bool] = {}
      for _ in range(_SUBSTEPS):
        actor.script(model, data, data.time, state)
        mujoco.mj_step(model, data)
        for k, v in actor.flags(model, data).items():
          seen[k] = seen.get(k, False) or v
      rec.append({**seen, **actor.state(model, data), "qpos": data.qpos.copy()})
      rec[-1]["mocap"] = data.mocap_pos.copy()
      rec[-1]["eq"] = data.eq_active.copy()
    labels = actor.labels(rec)
    if labels is not None and actor.done(rec) and len(rec) >= cfg.min_frames:
      break
  else:
    raise RuntimeError(f"rendered {action} {split} {index}: no draw fits max_frames")
  frames = np.zeros((len(rec), cfg.height, cfg.width, 3), np.uint8)
  if render:
    frames = _render(mujoco, model, rec, draw, actor.lookat, shake, cfg)
  return Rendered(frames, labels, rec, draw.mirror, draw.camera)


def _render(mujoco, model, rec, draw, lookat, shake, cfg) -> np.ndarray:
  """Replays the recorded states (qpos, mocap, weld) and renders each from the moving camera."""
  try:
    renderer = mujoco.Renderer(model, int(cfg.height), int(cfg.width))
  except Exception:  # the GL backend's own errors vary (ImportError, AttributeError, ...)
    raise RuntimeError(_GL_HINT.format(gl=os.environ.get("MUJOCO_GL"))) from None
  data = mujoco.MjData(model)
  camera = mujoco.MjvCamera()
  camera.lookat[:] = lookat
  frames = np.empty((len(rec), cfg.height, cfg.width, 3), np.uint8)
  try:
    for t, r in enumerate(rec):
      data.qpos[:] = r["qpos"]
      data.mocap_pos[:] = r["mocap"]
      data.eq_active[:] = r["eq"]
      mujoco.mj_forward(model, data)
      camera.azimuth = draw.camera[0] + shake[t, 0]
      camera.elevation = draw.camera[1] + shake[t, 1]
      camera.distance = draw.camera[2]
      renderer.update_scene(data, camera)
      frames[t] = renderer.render()
  finally:
    renderer.close()
  return frames


def _render_job(job: tuple) -> tuple[np.ndarray, np.ndarray]:
  action, split, index, cfg_dict = job
  r = simulate(action, split, index, ml_collections.ConfigDict(cfg_dict))
  return r.frames, r.labels


def video_name(action: str, split: str, index: int) -> str:
  return f"{action}_{split}_{index:05d}"


# ------------------------------------------------------------------------------------------
# The store: one entry per video, keyed by everything its frames depend on.


def _key(action: str, split: str, index: int, cfg: ml_collections.ConfigDict, enc: str) -> str:
  fields = ("seed", "height", "width", "min_frames", "max_frames", "max_distractors")
  payload = {f: cfg[f] for f in fields} | {"camera_shake": float(cfg.camera_shake)}
  payload |= {"action": action, "split": split, "index": index, "v": VERSION[action], "enc": enc}
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _open(entry: str, name: str) -> Optional[Video]:
  """The entry's Video (lazy frames), or None when missing or damaged (then re-rendered)."""
  from lac_jax.data import store  # pylint: disable=g-import-not-at-top

  try:
    with open(os.path.join(entry, _META), encoding="utf-8") as f:
      meta = json.load(f)
    store.verify_store(entry, _STORE_NAME, "train", num_records=1)
  except (OSError, ValueError):
    if os.path.lexists(entry):
      logging.warning("rendered: %s is damaged; rendering it again", entry)
      entries.discard(entry)
    return None
  path = store.store_path(entry, _STORE_NAME)
  source = functools.partial(store.read_store_frames, path, "train", 0, name)
  return Video(name=name, action=meta["action"], labels=meta["labels"], source=source)


def _write(entry: str, video: Video, enc: str) -> None:
  """Writes ``video`` to ``entry`` (aside first, then renamed: never half-written)."""
  from lac_jax.data import store  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  tfds.disable_progress_bar()
  tmp = entries.new_aside(entry)
  try:
    store.prepare_store([video], tmp, _STORE_NAME, frame_encoding=enc)
    with open(os.path.join(tmp, _META), "w", encoding="utf-8") as f:
      json.dump({"action": video.action, "labels": video.labels.tolist()}, f)
    try:
      os.rename(tmp, entry)
    except OSError:  # another process wrote it first
      pass
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


@dataclasses.dataclass
class Prepared:
  """The Videos of every (action, split), and how many were ``rendered`` now / ``cached``."""

  videos: dict[tuple[str, str], list[Video]]
  rendered: int
  cached: int


def _pool(workers: int) -> concurrent.futures.Executor:
  # 'spawn': the parent may have imported JAX (whose threads a fork would copy broken).
  return concurrent.futures.ProcessPoolExecutor(
    workers, mp_context=multiprocessing.get_context("spawn")
  )


def prepare(data: Any, actions: Optional[list[str]] = None) -> Prepared:
  """Renders (or finds in ``data.cache_dir``) every video of ``actions`` (default: all)."""
  from lac_jax import logs  # pylint: disable=g-import-not-at-top

  cfg = options(data)
  _check(cfg)
  enc = data.get("cache_encoding", "jpeg")
  cache = os.path.expanduser(data.get("cache_dir") or DEFAULT_CACHE)
  jobs = [
    (a, s, i)
    for a in (actions or ACTIONS)
    for s in SPLITS
    for i in range(cfg.num_train if s == "train" else cfg.num_val)
  ]
  for leftover in [p for ps in entries.leftovers(cache).values() for p in ps]:
    logging.info("rendered: removing %s, left by an interrupted run", leftover)
    entries.discard(leftover)
  out: dict[tuple[str, str], list[Optional[Video]]] = {}
  paths, todo = {}, []
  for a, s, i in jobs:
    paths[a, s, i] = os.path.join(cache, f"{video_name(a, s, i)}-{_key(a, s, i, cfg, enc)}")
    video = _open(paths[a, s, i], video_name(a, s, i))
    out.setdefault((a, s), []).append(video)
    if video is None:
      todo.append((a, s, i))
  workers = int(cfg.workers) or os.cpu_count() or 1
  cfg_dict = cfg.to_dict()
  with logs.progress_bar(bool(todo), total=len(todo), unit="video", desc="rendering videos") as bar:
    if workers == 1 or len(todo) <= 1:
      results = map(_render_job, [(*j, cfg_dict) for j in todo])
      pool = None
    else:
      pool = _pool(min(workers, len(todo)))
      results = pool.map(_render_job, [(*j, cfg_dict) for j in todo])
    try:
      for (a, s, i), (frames, labels) in zip(todo, results):
        video = Video(name=video_name(a, s, i), action=a, labels=labels, source=frames)
        _write(paths[a, s, i], video, enc)
        out[a, s][i] = _open(paths[a, s, i], video.name) or video
        bar.update(1)
    finally:
      if pool is not None:
        pool.shutdown(cancel_futures=True)
  if todo:
    logging.info(
      "rendered: %d videos rendered now, %d from %s", len(todo), len(jobs) - len(todo), cache
    )
  return Prepared({k: list(v) for k, v in out.items()}, len(todo), len(jobs) - len(todo))


def load_split(data: Any, split: str, action: Optional[str], image_size: Any) -> list[Video]:
  """The Videos of ``split`` of ``action`` (None: every action), rendered on first use."""
  cfg = options(data)
  record.check_generated_size(image_size, cfg.height, cfg.width, "rendered")
  if action not in (None, "", "all") + ACTIONS:
    raise ValueError(f"config.data.action: rendered has actions {list(ACTIONS)}, got {action!r}")
  actions = list(ACTIONS) if action in (None, "", "all") else [action]
  prepared = prepare(data, actions)
  return [v for a in actions for v in prepared.videos[a, split]]


# ------------------------------------------------------------------------------------------
# Export: a folder in the `videos` layout, and long recordings.


def write_videos(
  directory: str, cfg: ml_collections.ConfigDict, action: str, split: str, count: int
) -> list[str]:
  """Writes the first ``count`` videos of ``split`` of ``action`` as ``<name>.mp4`` and their
  labels as ``labels.json`` (``{"phases": [...], "labels": {name: [...]}}``)."""
  from lac_jax.data import encode  # pylint: disable=g-import-not-at-top

  os.makedirs(directory, exist_ok=True)
  paths, labels = [], {}
  for index in range(count):
    r = simulate(action, split, index, cfg)
    name = video_name(action, split, index)
    paths.append(os.path.join(directory, f"{name}.mp4"))
    encode.write_video(paths[-1], r.frames, fps=FPS)
    labels[name] = r.labels.tolist()
  with open(os.path.join(directory, LABELS_FILE), "w", encoding="utf-8") as f:
    json.dump({"phases": list(PHASES[action]), "labels": labels}, f)
  return paths


def long_recording(
  cfg: ml_collections.ConfigDict, action: str, split: str, takes: int, index: int = 0
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
  """``takes`` takes of ``action`` back to back, each after an idle stretch (its first frame,
  held: label -1) and some with their first or last phase cut off. Returns uint8 frames
  ``[T, H, W, 3]``, int32 labels ``[T]`` and per take ``{start, end, phases}`` (end exclusive)."""
  rng = np.random.default_rng([int(cfg.seed), ACTIONS.index(action), SPLITS.index(split), index, 7])
  k = len(PHASES[action])
  frames, labels, info, at = [], [], [], 0
  for take in range(takes):
    r = simulate(action, split, index * 1000 + take, cfg.copy_and_resolve_references())
    f, lab = r.frames, r.labels
    cut = rng.choice(["none", "first", "last"], p=[0.5, 0.25, 0.25])
    if cut == "first":
      f, lab = f[lab > 0], lab[lab > 0]
    elif cut == "last":
      f, lab = f[lab < k - 1], lab[lab < k - 1]
    idle = int(rng.integers(10, 30))
    frames += [np.repeat(f[:1], idle, 0), f]
    labels += [np.full(idle, -1, np.int32), lab]
    at += idle
    info.append(
      {"start": at, "end": at + len(lab), "phases": [PHASES[action][p] for p in np.unique(lab)]}
    )
    at += len(lab)
  return np.concatenate(frames), np.concatenate(labels), info


def write_long(
  directory: str, cfg: ml_collections.ConfigDict, action: str, split: str, count: int, takes: int
) -> list[str]:
  """Writes ``count`` long recordings (`long_recording`) as mp4s, ``labels.json`` and
  ``takes.json`` (``{name: [{start, end, phases}]}``)."""
  from lac_jax.data import encode  # pylint: disable=g-import-not-at-top

  os.makedirs(directory, exist_ok=True)
  paths, labels, table = [], {}, {}
  for index in range(count):
    frames, lab, info = long_recording(cfg, action, split, takes, index)
    name = f"{action}_long_{split}_{index:05d}"
    paths.append(os.path.join(directory, f"{name}.mp4"))
    encode.write_video(paths[-1], frames, fps=FPS)
    labels[name], table[name] = lab.tolist(), info
  with open(os.path.join(directory, LABELS_FILE), "w", encoding="utf-8") as f:
    json.dump({"phases": list(PHASES[action]), "labels": labels}, f)
  with open(os.path.join(directory, TAKES_FILE), "w", encoding="utf-8") as f:
    json.dump(table, f, indent=1)
  return paths


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top,g-multiple-import

  flags.DEFINE_string("output", None, "Directory for the mp4s and labels.json.")
  flags.DEFINE_enum("action", "door", list(ACTIONS), "Which action.")
  flags.DEFINE_enum("split", "val", list(SPLITS), "Which split's videos.")
  flags.DEFINE_integer("count", 4, "Number of videos.", lower_bound=1)
  flags.DEFINE_integer("size", 64, "Frame height and width, pixels.", lower_bound=16)
  flags.DEFINE_integer("seed", 0, "Base seed.")
  flags.DEFINE_bool("long", False, "Long recordings: several takes with idle stretches.")
  flags.DEFINE_integer("takes", 4, "Takes per long recording.", lower_bound=1)
  flags.mark_flag_as_required("output")

  def _main(argv):
    del argv
    f = flags.FLAGS
    cfg = default_config()
    cfg.height = cfg.width = f.size
    cfg.seed = f.seed
    cfg.num_train = cfg.num_val = max(f.count * (1000 if f.long else 1), 2)
    if f.long:
      paths = write_long(f.output, cfg, f.action, f.split, f.count, f.takes)
    else:
      paths = write_videos(f.output, cfg, f.action, f.split, f.count)
    print("\n".join(paths))

  app.run(_main)
