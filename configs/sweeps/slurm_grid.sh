#!/usr/bin/env bash
# One grid point of a sweep file per Slurm array task, without W&B's sweep server:
#   N=$(python -m experiments.grid configs/sweeps/paper_grid.yaml --count)
#   sbatch --array=0-$((N - 1)) configs/sweeps/slurm_grid.sh configs/sweeps/paper_grid.yaml
# Run from the repository root. Each task runs run_pipeline.py with the sweep file's command-line options
# and its grid point's --key=value overrides; finished steps are skipped, so a failed task can simply be
# resubmitted (sbatch --array=<its index> ...). Then: python collect_results.py results/experiments
#SBATCH --job-name=backdoor-grid
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

SWEEP_FILE=${1:-configs/sweeps/paper_grid.yaml}
PYTHON=${PYTHON:-python}
INDEX=${SLURM_ARRAY_TASK_ID:?run this script with sbatch --array}

mapfile -t OPTIONS < <("$PYTHON" -m experiments.grid "$SWEEP_FILE" --options)  # e.g. -c EXPERIMENT
mapfile -t POINT < <("$PYTHON" -m experiments.grid "$SWEEP_FILE" "$INDEX")
[ "${#POINT[@]}" -gt 0 ] || { echo "no grid point $INDEX in $SWEEP_FILE" >&2; exit 2; }
echo "grid point $INDEX of $SWEEP_FILE: ${POINT[*]}"
exec "$PYTHON" run_pipeline.py "${OPTIONS[@]}" "${POINT[@]}"
