#!/usr/bin/env bash
# How the shapes model (the future bundled default) is trained. Resumable: run it again after a
# kill and it continues from the newest checkpoint in $RUN/checkpoints.
#
#   bash examples/train_shapes_model.sh [WORKDIR]
#
# On a 2-core CPU a step takes about 1.1 s (batch 4 clips x 8 frames, 128x128); a lent GPU
# takes minutes for what this CPU does in hours.
set -euo pipefail
WORK=${1:-shapes_run}
mkdir -p "$WORK" && cd "$WORK"
[ -d train_set ] || tdgen shapes -o train_set --videos 500 --frames 32 --seed 1
[ -d heldout ] || tdgen shapes -o heldout --videos 60 --frames 8 --seed 2     # 60 clips never trained on
# fuser_position_embedding: the small UNet trained from scratch has no other sense of where a
# token lies relative to a box (see the UNet docstring); --init also makes it predict the clean
# latents and opens the layout gates (see README, Training).
echo '{"block_out_channels": [64, 128], "norm_num_groups": 16, "fuser_position_embedding": true}' > unet.json
RESUME=()
[ -d run/checkpoints ] && RESUME=(--resume)
tdgen train --ann train_set/annotations.json --captions train_set/captions.json \
    --init unet.json --autoencoder space-to-depth --resolution 128x128 --frames 8 --out run \
    --steps 20000 --batch-size 4 --lr 2e-4 --lr-schedule constant --warmup-steps 200 --stage all \
    --ema-decay 0.999 --checkpoint-every 250 --keep-checkpoints 2 --export-every 500 --log-every 25 \
    --hflip --seed 0 "${RESUME[@]}"
# then: tdgen synth --ann heldout/annotations.json --captions heldout/captions.json --model run/model \
#           --out gen --frames 8 --max-clips 60 && tdgen eval gen --oracle heldout
