#!/usr/bin/env bash
# The trainability table of the README: does training on generated clips help a detector and
# tracker? A real shapes training set (24 videos x 8 frames, seed 3), one generated clip per real
# video (bundled model, default sampler: DPM-Solver++ 50 steps, CFG 5.0), a gated copy (clip and
# box level), then the same small CenterNet trained for the same 400 steps of 16 frames on each
# of 5 arms x 3 seeds, scored on 20 held-out real videos (16 frames, seed 4). Generation (24
# clips x 50 steps) is most of the time. Measured on this 2-core CPU with 1 thread while other
# jobs ran (load about 5): 35 minutes in all, 20 of them generating and 12 training (15 runs of
# 40-65 s). Everything is cached in WORKDIR (sets, generated clips, each finished arm and seed),
# so a second run only redoes what is missing.
#
#   bash examples/trainability.sh [WORKDIR] [THREADS]
set -euo pipefail
WORK=${1:-trainability}
THREADS=${2:-1}  # 1 reproduces the table exactly; 2 is faster but rounds differently
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
cd "$(dirname "$0")/.."
OMP_NUM_THREADS=$THREADS python benchmarks/trainability.py --work "$WORK" --out "$WORK/result.json" \
    --train-videos 24 --heldout-videos 20 --heldout-frames 16 --fractions 0.1,0.5 --mix-fraction 0.1 \
    --synth-steps 50 --steps 400 --batch-size 16 --seeds 0,1,2 --threads "$THREADS" 2>&1 | tee -a "$WORK/run.log"
