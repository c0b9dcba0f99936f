#!/usr/bin/env bash
# One mtlsearch worker per array task, one GPU each. Submit with:
#   OPTUNA_STORAGE=postgresql+psycopg://USER:PASSWORD@DBHOST/mtlsearch \
#   MTLSEARCH_STUDY=fgc-budget0.2 sbatch --export=ALL docs/distributed/slurm-worker.sh
# The study must exist first (mtlsearch create ...). Workers stop by themselves when the
# study holds its target of trained trials; a task that SLURM kills is retried by the others.
#SBATCH --job-name=mtlsearch-worker
#SBATCH --array=0-15
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@60
#SBATCH --output=mtlsearch-%A_%a.log
set -euo pipefail
: "${OPTUNA_STORAGE:?set OPTUNA_STORAGE to the study database URL}"
: "${MTLSEARCH_STUDY:?set MTLSEARCH_STUDY to the study name}"
if [ -n "${MTLSEARCH_VENV:-}" ]; then
  source "$MTLSEARCH_VENV/bin/activate"
fi
mtlsearch worker --study-name "$MTLSEARCH_STUDY" --storage "$OPTUNA_STORAGE" --device auto
