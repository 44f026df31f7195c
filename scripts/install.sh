#!/usr/bin/env bash
# Installs lac_jax's runtime dependencies; with --test also the test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -r requirements.txt
if [ "${1:-}" = "--test" ]; then
  python -m pip install -r requirements-test.txt
  python -m pip install --no-deps torchvision==0.28.0
fi
