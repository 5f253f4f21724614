#!/usr/bin/env bash
# The evaluation table of the README: a model (default: the bundled one) on 60 held-out shapes
# clips never used in training, once with its boxes and once with every box dropped, beside the
# oracle (the real rendered clips). About 25 minutes on a 2-core CPU (two runs of 60 clips x 50
# DPM-Solver steps with CFG 5.0).
#
#   bash examples/eval_default_model.sh [WORKDIR] [MODEL]
set -euo pipefail
WORK=${1:-eval_default}
MODEL=${2:-default}
mkdir -p "$WORK" && cd "$WORK"
[ -d heldout ] || tdgen shapes -o heldout --videos 60 --frames 8 --seed 2   # the training set used seed 1
common=(--ann heldout/annotations.json --captions heldout/captions.json --model "$MODEL" --frames 8 -q)
tdgen synth "${common[@]}" --out gen          # default sampler: DPM-Solver, 50 steps, CFG 5.0
tdgen synth "${common[@]}" --out gen_noboxes --drop-boxes
tdgen eval gen --oracle heldout --out report.json
tdgen eval gen_noboxes --out report_noboxes.json
pick=(); for v in $(ls gen/images | head -4); do pick+=(--videos "$v"); done
tdgen preview gen -o sheet.png "${pick[@]}"      # generated frames with the boxes they were asked for
