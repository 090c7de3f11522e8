#!/usr/bin/env bash
# Train on one or many GPU nodes with SLURM: one process per node, all of the node's GPUs in it.
#
#   sbatch --nodes=4 --gpus-per-node=8 launch/slurm.sh configs/difcon_barlow.py runs/difcon_barlow [--config.x=y ...]
#   DRY_RUN=1 bash launch/slurm.sh configs/difcon_barlow.py runs/x     # print the command instead
#
# jax.distributed.initialize() (called because of --config.distributed=True) reads SLURM's variables
# (SLURM_JOB_NODELIST, SLURM_PROCID, SLURM_NTASKS) to find the coordinator and this process's rank.
#SBATCH --job-name=difcon
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --time=48:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
config=${1:?config file}
workdir=${2:?workdir}
shift 2
cmd=(python -m difcon_jax.train "--config=${config}" "--workdir=${workdir}" --config.distributed=True "$@")
if [[ -n "${DRY_RUN:-}" ]]; then
  echo "srun --kill-on-bad-exit=1 ${cmd[*]}"
  exit 0
fi
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
srun --kill-on-bad-exit=1 "${cmd[@]}"
