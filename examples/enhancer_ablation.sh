#!/usr/bin/env bash
# The enhancer ablation of the README: the same phase-2 fine-tune as the default model's recipe,
# for the same budget (1,000 steps, same seed and data order), once with the temporal instance
# enhancer (published `injector` + tracklet motion attention) and once with it switched off
# (its weights are dropped on load: tdgen says so in a warning line), then both evaluated on the
# 60 held-out clips.
# About 20 minutes per training run and 9 per evaluation on a 2-core CPU.
#
#   bash examples/enhancer_ablation.sh WORKDIR [STEPS]
#
# WORKDIR is the directory of examples/train_shapes_model.sh after it has finished phase 1
# (it needs train_set/, heldout/ and phase2_start/).
set -euo pipefail
WORK=${1:?usage: enhancer_ablation.sh WORKDIR (the workdir of examples/train_shapes_model.sh)}
STEPS=${2:-1000}
cd "$WORK"
if [ ! -d phase2_start_noenh ]; then
    cp -r phase2_start phase2_start_noenh
    python - <<'PY'
import json, pathlib
p = pathlib.Path("phase2_start_noenh/unet/config.json")
cfg = json.loads(p.read_text()); cfg["use_enhancer"] = False
p.write_text(json.dumps(cfg, indent=2))
PY
fi
common=(--ann train_set/annotations.json --captions train_set/captions.json --resolution 128x128
        --frames 8 --batch-size 4 --lr 2e-4 --lr-schedule constant --stage all --ema-decay 0.999
        --checkpoint-every 250 --keep-checkpoints 2 --log-every 25 --hflip --seed 0
        --warmup-steps 50 --export-every 250 --steps "$STEPS")
for arm in enh noenh; do
    start=phase2_start; [ "$arm" = noenh ] && start=phase2_start_noenh
    resume=(); [ -d "ablation_$arm/checkpoints" ] && resume=(--resume)
    tdgen train "${common[@]}" --model "$start" --out "ablation_$arm" "${resume[@]}"
    tdgen synth --ann heldout/annotations.json --captions heldout/captions.json \
        --model "ablation_$arm/model" --frames 8 -q --out "ablation_gen_$arm"
    tdgen eval "ablation_gen_$arm" --oracle heldout --out "ablation_$arm.json"
done
