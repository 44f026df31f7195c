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
if [ "${1:-}" = "--test" ]; then
  python -m pip install -r requirements-test.txt
  python -m pip install --no-deps torchvision==0.28.0
fi
