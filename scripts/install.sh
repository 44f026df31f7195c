#!/usr/bin/env bash
# Installs lac_jax's runtime dependencies into the active Python environment (a virtual
# environment, as the README says); with --test also the test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import sys
if sys.version_info < (3, 11):
  sys.exit(f"scripts/install.sh: error: Python >= 3.11 needed, `python` is {sys.version.split()[0]}")
if sys.prefix == sys.base_prefix:
  print(f"scripts/install.sh: note: no virtual environment is active; installing into "
        f"{sys.prefix} (recommended: python3.11 -m venv .venv && source .venv/bin/activate)",
        file=sys.stderr)
PY
python -m pip install -r requirements.txt
# The 'rendered' dataset renders offscreen with MuJoCo through EGL (Mesa); OSMesa also works.
if ! ldconfig -p 2>/dev/null | grep -q -e 'libEGL_mesa.so' -e 'libOSMesa.so'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri \
      || { apt-get update && apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri; }; }
  else
    echo "scripts/install.sh: note: the 'rendered' dataset needs an OpenGL library: install" \
      "libegl1 libegl-mesa0 libgl1-mesa-dri (or libosmesa6 with MUJOCO_GL=osmesa)" >&2
  fi
fi
if [ "${1:-}" = "--test" ]; then
  python -m pip install -r requirements-test.txt
  python -m pip install --no-deps torchvision==0.28.0
fi
