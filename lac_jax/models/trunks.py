"""Per-frame trunks of the encoder, each chosen by ``config.model.trunk`` (a name -> a module).

A trunk module, listed in `TRUNKS`, defines ``check_config(config)``, ``build(encoder,
mean_std) -> nn.Module`` (``[N, H, W, 3]`` images -> a ``[N, h, w, C]`` feature map, named
``'backbone'``), ``load_weights(variables, path, encoder) -> variables`` and
``describe(encoder) -> str``. What each must do: docs/models.md#trunks; adding one:
docs/extending.md#a-trunk.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TRUNKS = {"resnet": "lac_jax.models.resnet_trunk"}


def module(name: str) -> ModuleType:
  """The module of trunk ``name``; ValueError naming ``config.model.trunk`` otherwise."""
  if name not in TRUNKS:
    raise ValueError(f"config.model.trunk: expected one of {sorted(TRUNKS)}, got {name!r}")
  return importlib.import_module(TRUNKS[name])
