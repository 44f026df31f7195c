"""Tests for configs/: the shared presets, the argument parser, and that every config checks."""

import pytest

from configs import common
from configs import penn_action
from configs import pouring
from configs import rendered
from configs import synthetic
from configs import videos
from lac_jax import config as config_lib
from lac_jax import losses


def test_parse_arg_by_position_and_key():
  assert common.parse_arg(None, preset="paper").to_dict() == {"preset": "paper"}
  args = common.parse_arg("tennis_serve,official_code", action="x", preset="paper")
  assert (args.action, args.preset) == ("tennis_serve", "official_code")
  args = common.parse_arg(
    "preset=official_code,steps=5,fast=true", preset="paper", steps=1, fast=False
  )
  assert (args.preset, args.steps, args.fast) == ("official_code", 5, True)
  with pytest.raises(ValueError, match="unknown key 'seed'"):
    common.parse_arg("seed=3", preset="paper")
  with pytest.raises(ValueError, match="steps='many' is not a int"):
    common.parse_arg("steps=many", steps=1)
  with pytest.raises(ValueError, match="no key="):
    common.parse_arg("a,b", preset="paper")
  args = common.parse_arg(
    "official_code,tcc",
    {"method": common.METHODS, "preset": common.PRESETS},
    method="lac",
    preset="paper",
  )
  assert (args.method, args.preset) == ("tcc", "official_code")
  with pytest.raises(ValueError, match="method='sgd' is not one of"):
    common.parse_arg("method=sgd", {"method": common.METHODS}, method="lac")


@pytest.mark.parametrize(
  "get_config, arg",
  [
    (pouring.get_config, None),
    (pouring.get_config, "official_code"),
    (penn_action.get_config, "golf_swing"),
    (penn_action.get_config, "squat,official_code"),
    (synthetic.get_config, None),
    (synthetic.get_config, "preset=official_code"),
    (rendered.get_config, None),
    (rendered.get_config, "drop,official_code"),
    (videos.get_config, None),
    (videos.get_config, "official_code"),
  ],
)
def test_every_config_checks(get_config, arg):
  config = get_config(arg)
  config_lib.check_config(config)
  official = arg is not None and "official_code" in arg
  assert (config.model.attention_axis == "batch") == official
  assert (config.loss.sw_similarity == "inverse_squared_distance") == official


def test_rendered_config_is_the_synthetic_setting_on_one_rendered_action():
  config, base = rendered.get_config("drop,lav").to_dict(), synthetic.get_config("lav").to_dict()
  assert (config["data"]["dataset"], config["data"]["action"]) == ("rendered", "drop")
  assert config["model"] == base["model"] and config["train"] == base["train"]
  assert config["loss"] == base["loss"] and config["data"]["image_size"] == 32


def test_paper_configs_differ_from_the_defaults_only_where_the_paper_does():
  base, paper = config_lib.base_config().to_dict(), common.paper().to_dict()
  changed = {
    (s, k) for s in base if isinstance(base[s], dict) for k in base[s] if base[s][k] != paper[s][k]
  }
  assert changed == {("model", "require_backbone_weights"), ("data", "image_size")}
  assert pouring.get_config().data.dataset == "pouring"
  own = videos.get_config()
  assert own.data.dataset == "videos" and own.model.require_backbone_weights
  assert own.data.image_size == 224 and own.model.trunk_options.depth == 50
  assert penn_action.get_config("squat").data.action == "squat"
  with pytest.raises(ValueError, match="'yoga' has no key= and is no accepted value"):
    penn_action.get_config("yoga")
  with pytest.raises(ValueError, match="'fast' has no key="):
    pouring.get_config("fast")


@pytest.mark.parametrize("method", ["scl", "tcc", "tcn", "lav", "gta"])
def test_method_presets_carry_the_official_settings(method):
  config = pouring.get_config(method)
  config_lib.check_config(config)
  assert config.loss.name == method
  assert config.data.sampling.num_frames == 32 and config.train.num_epochs in (200, 300)
  official = penn_action.get_config(f"squat,{method},official_code")
  config_lib.check_config(official)
  assert official.loss.to_dict() == losses.default_config(method, "official_code").to_dict()
  assert official.model.attention_axis == "time"  # LAC's model quirk only
  assert official.model.eval_normalize is False and official.data.drop_last is True
  conv = method != "scl"
  assert (config.model.num_layers == 0) == conv
  synthetic_config = synthetic.get_config(method)
  assert synthetic_config.loss.name == method
  assert synthetic_config.data.batch_size == synthetic.get_config().data.batch_size
