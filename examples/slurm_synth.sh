#!/usr/bin/env bash
# tdgen synth on a SLURM cluster: two recipes in one script (see docs/scale_out.md).
#
#   examples/slurm_synth.sh submit            job array: one task per shard, then a finalize job
#   examples/slurm_synth.sh submit-torchrun   one job: torchrun on NODES nodes x GPUS_PER_NODE ranks
#
# The other subcommands (shard, finalize, torchrun-job, node) are what the jobs run; you do not
# call them yourself. Settings come from the environment, e.g.
#
#   ANN=mot17_half_train.json OUT=/shared/synth MODEL=/shared/models/td SHARDS=16 \
#     SYNTH_FLAGS="--steps 50 --image-format jpg" examples/slurm_synth.sh submit
#
# Both recipes make the same clips as one process would (a clip's frames depend only on the run
# seed and its clip id, never on the shard), and OUT must be on a file system every node sees.
# A killed or failed task is rerun with the same command: finished clips are skipped, and the
# split may even change (another SHARDS or node count) since the clips do not depend on it.
set -euo pipefail

ANN=${ANN:-examples/mot_mini_cocovid.json}
OUT=${OUT:-synth_out}
MODEL=${MODEL:-tiny}
# extra `tdgen synth` flags, split on spaces on purpose (no quoted values with spaces here)
SYNTH_FLAGS=${SYNTH_FLAGS:---steps 50}
# what finalize must agree on with the run: --flavor, and --mot/--quality when used
FINALIZE_FLAGS=${FINALIZE_FLAGS:-}
SHARDS=${SHARDS:-8}                 # array tasks (submit)
ARRAY=${ARRAY:-0-$((SHARDS - 1))}   # which of them to (re)submit, e.g. ARRAY=3,5
NODES=${NODES:-2}                   # submit-torchrun
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
RDZV_PORT=${RDZV_PORT:-29500}
SBATCH_FLAGS=${SBATCH_FLAGS:-}      # partition, account, time limit ...
TDGEN=${TDGEN:-tdgen}
PYTHON=${PYTHON:-python}
# Inside a job, $0 is slurmd's private copy of this script, which other nodes cannot see: the
# jobs call it by the path it had at submission (on the shared file system).
SCRIPT=${SCRIPT:-$(realpath "$0")}
export ANN OUT MODEL SYNTH_FLAGS FINALIZE_FLAGS SHARDS NODES GPUS_PER_NODE RDZV_PORT TDGEN PYTHON SCRIPT

die() { echo "slurm_synth.sh: $*" >&2; exit 2; }

synth_args() {
    # shellcheck disable=SC2086  # SYNTH_FLAGS is a list of flags
    printf '%s\n' synth --ann "$ANN" --out "$OUT" --model "$MODEL" $SYNTH_FLAGS
}

case "${1:-}" in
submit)
    # --array=0-(N-1): SLURM numbers array tasks as --array says, and tdgen's --shard K/N wants
    # a 0-based K, so with this range SLURM_ARRAY_TASK_ID is K as it is. N is SHARDS (passed in
    # the environment, not SLURM_ARRAY_TASK_COUNT), so that resubmitting a few tasks
    # (ARRAY=3,5) still splits the clips N ways.
    # shellcheck disable=SC2086
    jobid=$(sbatch --parsable $SBATCH_FLAGS --job-name=tdgen-synth --array="$ARRAY" --nodes=1 --ntasks=1 \
        --gpus=1 --export=ALL "$SCRIPT" shard)
    jobid=${jobid%%;*}  # --parsable prints "id" or "id;cluster"
    # The last shard to end already finalizes; this job makes sure annotations.json is written
    # once every task succeeded (afterok: not after a failed task, whose clips a rerun retries).
    # shellcheck disable=SC2086
    sbatch --parsable $SBATCH_FLAGS --job-name=tdgen-finalize --dependency="afterok:$jobid" --nodes=1 \
        --ntasks=1 --export=ALL "$SCRIPT" finalize
    echo "array job $jobid: $SHARDS shards of $OUT; finalize after it"
    ;;
shard)
    k=${SLURM_ARRAY_TASK_ID:?not in a job array (use: $0 submit)}
    [[ $k =~ ^[0-9]+$ ]] && ((k < SHARDS)) ||
        die "array task $k is not in 0..$((SHARDS - 1)): submit with --array=0-$((SHARDS - 1))"
    mapfile -t args < <(synth_args)
    # --shard, not a launcher's RANK: each task is its own one-process job. Progress goes to the
    # job's log as a line per finished clip (stderr is not a terminal).
    exec "$TDGEN" "${args[@]}" --shard "$k/$SHARDS"
    ;;
finalize)
    # shellcheck disable=SC2086
    exec "$TDGEN" synth --out "$OUT" --finalize $FINALIZE_FLAGS
    ;;
submit-torchrun)
    # one task per node: each starts a torchrun that starts GPUS_PER_NODE ranks
    # shellcheck disable=SC2086
    sbatch --parsable $SBATCH_FLAGS --job-name=tdgen-synth-torchrun --nodes="$NODES" --ntasks-per-node=1 \
        --gpus-per-node="$GPUS_PER_NODE" --export=ALL "$SCRIPT" torchrun-job
    ;;
torchrun-job)
    # the first node of the allocation hosts the rendezvous
    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    export RDZV_HOST=$head
    exec srun --ntasks-per-node=1 --kill-on-bad-exit=1 "$SCRIPT" node
    ;;
node)
    # Static rendezvous: a fixed node count, each node's rank given by SLURM (SLURM_NODEID), the
    # endpoint on the head node. The ranks never talk to each other afterwards: synth takes RANK
    # and WORLD_SIZE (NODES x GPUS_PER_NODE) as its shard, each rank uses cuda:LOCAL_RANK, and
    # only rank 0 shows progress. Resubmit the same job to resume after a kill.
    mapfile -t args < <(synth_args)
    exec "$PYTHON" -m torch.distributed.run --nnodes "${SLURM_NNODES:-$NODES}" \
        --nproc-per-node "$GPUS_PER_NODE" --node-rank "${SLURM_NODEID:?not under srun}" --rdzv-endpoint "${RDZV_HOST:?}:$RDZV_PORT" \
        -m tdgen.cli "${args[@]}"
    ;;
*)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
