#!/bin/bash
# Submits a sluice run as a Slurm array of SLUICE_WORLD_SIZE tasks and its merge step after it:
#
#   SLUICE_CONFIG=cfg.toml SLUICE_INPUT=/data/corpus SLUICE_OUTPUT=/data/out SLUICE_WORLD_SIZE=64 \
#     examples/slurm/submit.sh [sbatch options for both jobs, e.g. --partition=cpu --chdir=/data/logs]
#
# Prints `array job J, merge job M`. The environment travels with the jobs (sbatch --export=ALL).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${SLUICE_WORLD_SIZE:?set SLUICE_WORLD_SIZE to the number of array tasks}"
array=$(sbatch --parsable --array="0-$((SLUICE_WORLD_SIZE - 1))" "$@" "$here/filter.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" "$@" "$here/merge.sbatch")
merge=${merge%%;*}
echo "array job $array, merge job $merge"
