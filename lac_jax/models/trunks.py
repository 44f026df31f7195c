"""Per-frame trunks of the encoder, each chosen by ``config.model.trunk`` (a name -> a module).

A trunk module, listed in `TRUNKS`, defines ``default_config()`` (its options, which live in
``config.model.trunk_options``), ``check_config(options)``, ``build(encoder, mean_std) ->
nn.Module`` (called as ``trunk(images [N, H, W, 3], train, mask=[N])`` -> a ``[N, h, w, C]``
feature map; named ``'backbone'``), ``load_weights(variables, path, encoder) -> variables`` and
``describe(encoder) -> str``. What each must do: docs/models.md#trunks; adding one:
docs/extending.md#a-trunk.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Mapping

from absl import logging
import ml_collections

TRUNKS = {"resnet": "lac_jax.models.resnet_trunk"}


def module(name: str) -> ModuleType:
  """The module of trunk ``name``; ValueError naming ``config.model.trunk`` otherwise."""
  if name not in TRUNKS:
    raise ValueError(f"config.model.trunk: expected one of {sorted(TRUNKS)}, got {name!r}")
  return importlib.import_module(TRUNKS[name])


def default_options(name: str) -> ml_collections.ConfigDict:
  """The options of trunk ``name`` with their defaults (``config.model.trunk_options``)."""
  return module(name).default_config()


def resolve_options(name: str, options: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Trunk ``name``'s options: ``options`` over its defaults, or its defaults alone when
  ``options`` holds another trunk's fields (only ``trunk`` was overridden, e.g.
  ``--config.model.trunk=<name>`` on a config written for the ResNet).

  Raises:
    ValueError: a field trunk ``name`` does not have, naming ``config.model.trunk_options``.
  """
  defaults = default_options(name)
  options = ml_collections.ConfigDict(options)
  given = set(options.keys())
  unknown = sorted(given - set(defaults.keys()))
  if unknown:
    for other in TRUNKS:
      if other != name and given == set(default_options(other).keys()):
        logging.info(
          "config.model.trunk=%r: trunk_options held %r's fields; using %r's defaults",
          name,
          other,
          name,
        )
        return defaults
    raise ValueError(
      f"config.model.trunk_options: unknown fields {unknown} for trunk {name!r}; "
      f"expected a subset of {sorted(defaults.keys())}"
    )
  with defaults.unlocked():
    defaults.update(options.to_dict())
  module(name).check_config(defaults)
  return defaults
