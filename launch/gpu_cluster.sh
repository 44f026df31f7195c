#!/usr/bin/env bash
# Run lac_jax on one host of a multi-host GPU job: start this script once per host (ssh, pdsh,
# your scheduler), each with its HOST_ID. Every process drives all GPUs of its host
# (jax.pmap over local devices) and feeds its share of the global batch, so
# --config.data.batch_size must be a multiple of the total GPU count.
#
#   NUM_HOSTS=2 HOST_ID=0 COORDINATOR=node0:12345 launch/gpu_cluster.sh CONFIG WORKDIR [overrides]
#   NUM_HOSTS=2 HOST_ID=1 COORDINATOR=node0:12345 launch/gpu_cluster.sh CONFIG WORKDIR [overrides]
#
# COORDINATOR is host:port of host 0 (reachable from all hosts). WORKDIR and the data must be
# on a shared filesystem. Under SLURM no script is needed: jax finds the job's hosts itself,
#   srun --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 \
#     python -m lac_jax.main --config=CONFIG --workdir=WORKDIR
# One host with several GPUs needs nothing either: python -m lac_jax.main uses them all.
set -euo pipefail
if [[ $# -lt 2 || -z "${NUM_HOSTS:-}" || -z "${HOST_ID:-}" || -z "${COORDINATOR:-}" ]]; then
  sed -n '2,16p' "$0"; exit 2
fi
CONFIG=$1; WORKDIR=$2; shift 2
export JAX_COORDINATOR_ADDRESS="$COORDINATOR"
export JAX_NUM_PROCESSES="$NUM_HOSTS"
export JAX_PROCESS_ID="$HOST_ID"
cd "$(dirname "$0")/.."
exec python -m lac_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"
