"""P1, P2 and MPJVE with and without each temporal filter, on a prepared file's test subjects.

Predicts every sequence once (the `rie evaluate` path: `load_for_inference(...).predict`,
flip TTA),
then scores the raw predictions and each filter setting with the protocol
(`evaluate_predictions`, action-wise averages in mm). Each row equals what
`rie evaluate -c CKPT -d FILE -k SRC --smooth METHOD [--smooth-...]` reports; this
script only saves predicting again for every row.

    python benchmarks/bench_smoothing.py -c runs/demo/stage3/best.pt -d bnmocap.h5 -k noisy
    python benchmarks/bench_smoothing.py -c CKPT -d FILE -k noisy --markdown   # table for docs/predict.md
"""

from __future__ import annotations

import argparse
import time

from rie_cli.api import load_for_inference
from rie_cli.data.dataset import PoseDataset
from rie_cli.evaluation import evaluate_predictions
from rie_cli.smoothing import Smoothing

SETTINGS = [
    Smoothing("none"),
    Smoothing("savgol", {"window": 5, "order": 2}),
    Smoothing("savgol", {"window": 7, "order": 2}),
    Smoothing("savgol", {"window": 9, "order": 2}),
    Smoothing("savgol", {"window": 13, "order": 2}),
    Smoothing("savgol", {"window": 17, "order": 2}),
    Smoothing("savgol", {"window": 13, "order": 3}),
    Smoothing("savgol", {"window": 21, "order": 3}),
    Smoothing("oneeuro", {"min_cutoff": 1.5, "beta": 10.0}),
    Smoothing("oneeuro", {"min_cutoff": 3.0, "beta": 10.0}),
    Smoothing("oneeuro", {"min_cutoff": 1.0, "beta": 20.0}),
    Smoothing("oneeuro", {"min_cutoff": 3.0, "beta": 30.0}),
    Smoothing("oneeuro", {"min_cutoff": 5.0, "beta": 5.0}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--checkpoint", required=True)
    parser.add_argument("-d", "--data", required=True)
    parser.add_argument("-k", "--keypoints", default="noisy")
    parser.add_argument("-b", "--batch-size", type=int, default=1024)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    dataset = PoseDataset(args.data)
    sequences = dataset.sequences(list(dataset.test_subjects), args.keypoints)
    loaded = load_for_inference(args.checkpoint)
    started = time.perf_counter()
    raw = loaded.predict([s.keypoints_2d for s in sequences], batch_size=args.batch_size)
    frames = sum(len(p) for p in raw)
    print(f"predicted {frames:,} frames of {len(sequences)} sequences in {time.perf_counter() - started:.0f} s; "
          f"{dataset.fps:g} fps, subjects {', '.join(dataset.test_subjects)}")

    rows = []
    for smoothing in SETTINGS:
        result = evaluate_predictions(sequences, [smoothing.apply(p, dataset.fps) for p in raw])
        rows.append((smoothing.describe(), result.average))
    base = rows[0][1]
    if args.markdown:
        print("| --smooth | P1 (mm) | P2 (mm) | MPJVE (mm) | ΔP1 | ΔMPJVE |")
        print("|---|---:|---:|---:|---:|---:|")
    for name, s in rows:
        d1, dv = s.mpjpe - base.mpjpe, s.mpjve - base.mpjve
        if args.markdown:
            print(f"| {name} | {s.mpjpe:.1f} | {s.p_mpjpe:.1f} | {s.mpjve:.2f} | {d1:+.2f} | {dv / base.mpjve:+.0%} |")
        else:
            print(f"{name:45s} P1 {s.mpjpe:7.2f}  P2 {s.p_mpjpe:7.2f}  MPJVE {s.mpjve:6.2f}  "
                  f"dP1 {d1:+6.2f}  dMPJVE {dv / base.mpjve:+.0%}")


if __name__ == "__main__":
    main()
