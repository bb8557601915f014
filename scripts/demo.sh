#!/usr/bin/env bash
# `make demo`: the main jobs on the bundled samples/ (and synthetic shapes with known boxes and
# masks), end to end, in a few minutes on 2 CPU cores.
# Records go to stdout as tables; the files land in demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo-out
rm -rf "$OUT"
step() { printf '\n== %s\n' "$*" >&2; }

step "cnntool filter: Gaussian blur, then Sobel edge magnitude, on the bundled photos"
cnntool filter samples/photos -k gaussian:sigma=1.5 -k sobel:axis=magnitude --border reflect -o "$OUT/edges" --format table

step "cnntool models: the registry, and LeNet-5's layers"
cnntool models list --format table
cnntool models summary lenet5 --format table

step "cnntool audit: planted problems in samples/audit (see samples/audit/PLANTED.txt)"
# The audit finds problems by design; the demo shows them without failing on them.
cnntool audit samples/audit --format table --report "$OUT/audit.html" --no-cache || true

step "cnntool train: LeNet-5 on scikit-learn's handwritten digits"
cnntool train samples/digits --arch lenet5 -o "$OUT/digits-lenet5" --format table

step "cnntool predict: evaluate the checkpoint on the validation split"
cnntool predict samples/digits/val -m "$OUT/digits-lenet5/best.pt" --eval --topk 2 -o "$OUT/predict" --format table | tail -n 3

step "cnntool explain: Grad-CAM for a few validation digits (overlays in $OUT/explain)"
cnntool explain 'samples/digits/val/3/0[0-2]*.png' -m "$OUT/digits-lenet5/best.pt" --method gradcam -o "$OUT/explain" --format table

step "cnntool detect: train the tiny FCOS detector on synthetic shapes with exact COCO boxes (about 70 s), then score it (mAP)"
python -c "from cnntool.data.detection import write_shapes_detection as w; w('$OUT/shapes-det', n_train=600, n_val=50)"
cnntool train "$OUT/shapes-det" --task detect --epochs 8 --threads 1 -o "$OUT/shapes-fcos" --format table
cnntool detect "$OUT/shapes-det/val/images" -m "$OUT/shapes-fcos" --eval "$OUT/shapes-det/val/annotations.json" \
    -o "$OUT/detect" --format jsonl | tail -n 1

step "cnntool segment: touching coins split by watershed (no model), then a U-Net trained on synthetic masks (mIoU)"
cnntool segment samples/photos/coins.png --method watershed -o "$OUT/segment" --format table
python -c "from cnntool.data.masks import write_shapes_segmentation as w; w('$OUT/shapes-seg', n_train=320, n_val=40, size=64)"
cnntool train "$OUT/shapes-seg" --task segment --imgsz 64 --epochs 10 --threads 1 -o "$OUT/shapes-unet" --format table
cnntool segment "$OUT/shapes-seg/val/images" -m "$OUT/shapes-unet" --eval "$OUT/shapes-seg/val" \
    -o "$OUT/segment-eval" --format jsonl | tail -n 1

step "cnntool video: optical flow over a bundled pan (the camera moves right, so mean_dx is about -4 px), then Sobel edges"
cnntool video samples/video/pan.mp4 -o "$OUT/video" --format jsonl | tail -n 2
cnntool video samples/video/pan.mp4 --task filter -k sobel:axis=magnitude -o "$OUT/video" --format jsonl | tail -n 1

printf '\nDemo outputs are in %s/\n' "$OUT" >&2
