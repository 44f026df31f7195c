#!/usr/bin/env bash
# Train and evaluate LAC on each of PennAction's 13 actions (one model per action, as the
# paper), then print the per-action tables and their unweighted mean (the paper's PennAction
# row). Runs one action after the other on this host's devices; rerunning resumes unfinished
# actions and skips finished ones (each has its own workdir with checkpoints).
#
#   launch/penn_action_sweep.sh ROOT_WORKDIR [--config.field=value ...]
#   e.g. launch/penn_action_sweep.sh runs/penn_action --config.data.data_dir=/data/penn_action \
#          --config.model.backbone_weights=/data/weights/resnet50_imagenet.npz
#
# To spread actions over machines, run with ACTIONS="bowl squat" on each (the summary step
# only averages when all 13 results exist).
set -euo pipefail
if [[ $# -lt 1 ]]; then
  sed -n '2,14p' "$0"; exit 2
fi
ROOT=$1; shift
cd "$(dirname "$0")/.."
ALL="baseball_pitch baseball_swing bench_press bowl clean_and_jerk golf_swing jumping_jacks
pushup pullup situp squat tennis_forehand tennis_serve"
# Ctrl-C / SIGTERM: the running action checkpoints and exits 0 (lac_jax.preemption); the
# sweep then stops instead of going on to the next action.
trap 'STOP=1' INT TERM
for action in ${ACTIONS:-$ALL}; do
  [[ -n "${STOP:-}" ]] && break
  echo "=== $action ==="
  python -m lac_jax.main --config="configs/penn_action.py:$action" \
    --workdir="$ROOT/$action" "$@"
done
python - "$ROOT" $ALL <<'PY'
import json, os, sys
from lac_jax import metrics
root, actions = sys.argv[1], sys.argv[2:]
rows = {}
for action in actions:
  path = os.path.join(root, action, "eval", "summary.json")
  if not os.path.exists(path):
    print(f"{action}: no result yet ({path})"); continue
  with open(path) as f:
    summary = json.load(f)
  name = [n for n in summary["rows"] if n.startswith("trained")][-1]
  rows[action] = {k: float("nan") if v is None else v for k, v in summary["rows"][name].items()}
if len(rows) == len(actions):
  rows["mean"] = metrics.mean_over_actions(rows)
print(metrics.format_table(rows))
PY
