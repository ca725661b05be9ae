"""Evaluation speed of RIE-243 stage 3 with flip TTA, against this machine's matmul peak.

Prints, in one run: the model's FLOPs per window (torch.utils.flop_counter), the
matrix-multiplication peak of this machine in float32 and bfloat16 (a large square
matmul, best of a few), and for each precision the evaluation speed in frames/s and
windows/s (plain + mirrored), the achieved GFLOP/s and its share of the peak in the
same precision. The evaluation path is `rie_cli.inference.predict_many`, the one
`rie evaluate` uses (through `rie_cli.api.InferenceModel.predict`), on synthetic sequences (random walks in normalised
coordinates); the weights are random (speed does not depend on them).

    python benchmarks/bench_evaluate.py                    # about a minute on 2 quiet cores
    python benchmarks/bench_evaluate.py --frames 500 --repeats 1   # quicker, noisier
    python benchmarks/bench_evaluate.py --eager            # also the unfolded model, for comparison
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from rie_cli.data.dataset import Sequence
from rie_cli.devices import PRECISIONS, bf16_native, describe_device
from rie_cli.inference import predict_many
from rie_cli.model import ModelConfig, build_model
from rie_cli.skeleton import H36M_17

CONFIGS = {
    # The golden configurations with the shapes of the authors' released models.
    "gt256": ModelConfig(filter_widths=(3, 3, 3, 3, 3), channels=256, latent=256, fusion=True),
    "cpn512": ModelConfig(filter_widths=(3, 3, 3, 3, 3), channels=256, latent=512, fusion=True),
}


def matmul_peak_gflops(dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """Best-of-`repeats` GFLOP/s of one (size x size) @ (size x size) product."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def flops_per_window(model: torch.nn.Module) -> int:
    window = torch.zeros(1, model.receptive_field(), 17, 2)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(window)
    return counter.get_total_flops()


def synthetic_sequences(frames: int, pieces: int, seed: int = 0) -> list[Sequence]:
    """`pieces` random-walk sequences with `frames` frames in all (longer than the window)."""
    rng = np.random.default_rng(seed)
    camera = None
    out = []
    for n in np.diff(np.linspace(0, frames, pieces + 1).astype(int)):
        base = rng.uniform(-0.5, 0.5, size=(1, 17, 2))
        walk = np.cumsum(rng.normal(scale=0.01, size=(n, 17, 2)), axis=0)
        out.append(Sequence("S", "bench", 0, camera, (base + walk).astype(np.float32), None, None))
    return out


def measure(model, sequences, *, precision: str, batch_size: int, fold: bool, repeats: int):
    """Fastest of `repeats` runs of predict_many over `sequences`, and the best matmul peak
    measured between them: (seconds, peak GFLOP/s, predictions).

    Other work on a shared machine slows some runs down; taking the best of runs that
    alternate with the peak measurements compares both under the same conditions.
    """
    warm = synthetic_sequences(min(256, len(sequences[0].keypoints_2d)), 1, seed=1)
    predict_many(model, [s.keypoints_2d for s in warm], skeleton=H36M_17, tta=True, batch_size=batch_size,
                 precision=precision, fold=fold)
    best, peak = float("inf"), 0.0
    for _ in range(repeats):
        peak = max(peak, matmul_peak_gflops(PRECISIONS[precision], repeats=3))
        start = time.perf_counter()
        poses = predict_many(model, [s.keypoints_2d for s in sequences], skeleton=H36M_17, tta=True,
                             batch_size=batch_size, precision=precision, fold=fold)
        best = min(best, time.perf_counter() - start)
    return best, peak, poses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gt256", help="model shape (default gt256)")
    parser.add_argument("--frames", type=int, default=2000, help="frames per timed run (default 2000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per precision, alternating with peak measurements; the best of each counts")
    parser.add_argument("--sequences", type=int, default=4, help="split the frames into this many sequences")
    parser.add_argument("--batch-size", type=int, default=1024, help="windows per pass, mirrored included")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32,bf16")
    parser.add_argument("--eager", action="store_true", help="also time the plain (unfolded) eager model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_model(CONFIGS[args.config]).eval()
    flops = flops_per_window(model)
    sequences = synthetic_sequences(args.frames, args.sequences)
    print(f"RIE-243 stage 3 ({args.config}), flip TTA, {args.frames} frames in {args.sequences} sequences, "
          f"best of {args.repeats}, batch {args.batch_size} windows, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"on {describe_device('cpu')}")
    print(f"FLOPs per window (torch.utils.flop_counter): {flops / 1e9:.4f} GFLOP")

    reference = None
    precisions = args.precisions.split(",")
    if "bf16" in precisions and not bf16_native("cpu"):
        # Emulated bf16 runs ~100x slower than fp32: nothing to learn, minutes to wait.
        print("bf16 skipped: this CPU has no native bf16 (rie refuses --precision bf16 here)")
        precisions.remove("bf16")
    runs = [(p, True) for p in precisions] + ([("fp32", False)] if args.eager else [])
    for precision, fold in runs:
        seconds, peak, poses = measure(model, sequences, precision=precision, batch_size=args.batch_size,
                                       fold=fold, repeats=args.repeats)
        frames_per_s = args.frames / seconds
        windows_per_s = 2 * frames_per_s
        achieved = windows_per_s * flops / 1e9
        label = f"{precision}{'' if fold else ' eager (unfolded)'}"
        print(f"[{label}] matmul peak {peak:7.1f} GFLOP/s | {frames_per_s:7.1f} frames/s "
              f"({windows_per_s:7.1f} windows/s) | {achieved:7.1f} GFLOP/s = {100 * achieved / peak:5.1f} % of peak")
        if reference is None and precision == "fp32" and fold:
            reference = poses
        elif reference is not None:
            diff = max(float(np.abs(a - b).max()) for a, b in zip(poses, reference))
            print(f"[{label}] largest difference from folded fp32: {diff * 1000:.4f} mm")


if __name__ == "__main__":
    main()
