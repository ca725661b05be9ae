#!/usr/bin/env bash
# The main job on the embedded demo data (data/bnmocap-demo): prepare the HDF5 file,
# train the three RIE stages briefly (receptive field 27, detector-like "noisy" 2D),
# evaluate with the paper's protocol, and render one test sequence.
# Everything goes to $RIE_DEMO_DIR (default runs/demo); a re-run starts that folder anew.
#
# Settings chosen to finish in under 5 minutes on 2 CPU cores, install included
# (docs/training.md, "The demo's recipe"): batches of 256 (twice the optimisation steps
# of 512 for the same windows), bf16 where the CPU has it natively (--precision auto;
# fp32 elsewhere, slower), and no per-epoch evaluation in stages 1 and 2, whose
# figures nobody reads; stage 3 evaluates every epoch so that best.pt is chosen.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${RIE_DEMO_DIR:-runs/demo}"
epochs="${RIE_DEMO_EPOCHS:-4}"
rm -rf "$out/stage1" "$out/stage2" "$out/stage3"
mkdir -p "$out"

rie prepare-data bnmocap --data-dir data/bnmocap-demo --cameras data/bnmocap-demo/cameras_bnmocap.json \
  --train-subjects BN2-active,BN2-feminine --test-subjects BN2-normal --out "$out/demo.h5" --force

common=(--data "$out/demo.h5" --keypoints noisy --downsample 4 --batch-size 256 --precision auto)
rie train --stage 1 "${common[@]}" --filter-widths 3,3,3 --epochs "$epochs" --no-eval --checkpoint-dir "$out/stage1"
rie train --stage 2 "${common[@]}" --init "$out/stage1/last.pt" --epochs 2 --no-eval --checkpoint-dir "$out/stage2"
rie train --stage 3 "${common[@]}" --init "$out/stage2/last.pt" --epochs 4 --checkpoint-dir "$out/stage3"

rie evaluate --checkpoint "$out/stage3/best.pt" --data "$out/demo.h5" --keypoints noisy --json "$out/results.json" --force
rie render --checkpoint "$out/stage3/best.pt" --data "$out/demo.h5" --keypoints noisy \
  --subject BN2-normal --action "walk 001.1" --camera 0 --limit 100 --size 4 --out "$out/walk.gif" --force
echo "demo outputs in $out: demo.h5, stage{1,2,3}/ (checkpoints, log.csv, curves.png), results.json, walk.gif" >&2
