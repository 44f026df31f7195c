#!/usr/bin/env bash
# Train lac_jax on every host of a Cloud TPU VM slice (v4-32, v5e-64, ...): one process per
# host, all started together; jax.distributed.initialize() finds the other hosts itself
# (--distributed=on). Each host feeds its share of the global batch to its local chips, so
# --config.data.batch_size must be a multiple of the slice's chip count.
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.field=value ...]
#   e.g. launch/tpu_pod.sh my-v4-32 us-central2-b configs/pouring.py /mnt/shared/runs/pouring \
#          --config.data.batch_size=16 --config.data.data_dir=/mnt/shared/pouring
#
# WORKDIR and the data must be on storage every host sees (NFS, a gcsfuse mount): process 0
# writes the checkpoints and every process reads them to resume. A preempted slice (SIGTERM to
# any host) checkpoints the step it is on and exits 0: run the same command again to resume.
# SETUP=1 also copies this checkout to ~/lac_jax on every host and installs the requirements
# with the TPU build of JAX (needed once per slice).
set -euo pipefail
if [[ $# -lt 4 ]]; then
  sed -n '2,17p' "$0"; exit 2
fi
TPU=$1; ZONE=$2; CONFIG=$3; WORKDIR=$4; shift 4
REPO=$(cd "$(dirname "$0")/.." && pwd)
ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="$1"
}
if [[ "${SETUP:-0}" == 1 ]]; then
  ssh_all "mkdir -p ~/lac_jax"
  gcloud compute tpus tpu-vm scp --recurse --zone="$ZONE" --worker=all \
    "$REPO/lac_jax" "$REPO/configs" "$REPO/requirements.txt" "$TPU:~/lac_jax/"
  ssh_all "cd ~/lac_jax && pip install -r requirements.txt 'jax[tpu]==0.10.2'"
fi
ARGS=$(printf '%q ' "$@")
ssh_all "cd ~/lac_jax && python3 -m lac_jax.main --config=$CONFIG --workdir=$WORKDIR \
  --distributed=on $ARGS"
