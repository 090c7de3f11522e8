#!/usr/bin/env bash
# Train on a Cloud TPU VM slice: the same command on every host of the slice.
#
#   TPU=my-tpu ZONE=us-central2-b bash launch/tpu_vm.sh configs/difcon_barlow.py gs://bucket/runs/difcon_barlow
#   DRY_RUN=1 TPU=my-tpu ZONE=us-central2-b bash launch/tpu_vm.sh configs/difcon_barlow.py runs/x
#
# Each host runs one process; jax.distributed.initialize() finds the slice's coordinator by itself on TPU VMs.
# The workdir must be shared by all hosts (a gs:// bucket; Orbax writes there directly).
set -euo pipefail
config=${1:?config file}
workdir=${2:?workdir}
shift 2
: "${TPU:?set TPU to the TPU VM name}" "${ZONE:?set ZONE}"
remote="cd ~/difcon-jax && pip install -q -e . 'jax[tpu]' && python -m difcon_jax.train --config=${config} --workdir=${workdir} --config.distributed=True $*"
cmd=(gcloud compute tpus tpu-vm ssh "${TPU}" --zone "${ZONE}" --worker=all --command "${remote}")
if [[ -n "${DRY_RUN:-}" ]]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
"${cmd[@]}"
