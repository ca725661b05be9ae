"""Streaming latency: the time of one `LiftStream.push` for causal RIE models.

For causal models of receptive field 27, 81 and 243 (stage-3 shape: 256 channels,
latent 256, feature fusion; random weights, speed does not depend on them), flip TTA
on unless --no-tta, this pushes frames of a random-walk pixel track one by one
through `Lifter.stream` and prints, per precision (fp32, and bf16 where this CPU has
it natively) and per thread count (one, and all torch threads):
- the per-push latency: median and p99 over --pushes pushes (after a warm-up),
- the frame rate sustained (pushes per second over the timed run),
- the share of a push spent in the part encoders' first layer (the only layer whose
  linear part overlapping windows could share), measured on its own.
It prints the CPU capability and the load average, since on a shared machine the
figures depend on what else runs.

    python benchmarks/bench_stream.py                        # about two minutes on 2 quiet cores
    python benchmarks/bench_stream.py --fields 243 --pushes 1000 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from rie_cli.api import InferenceModel, Lifter
from rie_cli.devices import bf16_native, describe_device
from rie_cli.model import ModelConfig, build_model
from rie_cli.skeleton import H36M_17

WIDTH = HEIGHT = 1000


def lifter_for(receptive_field: int, precision: str, tta: bool) -> Lifter:
    levels = round(np.log(receptive_field) / np.log(3))
    config = ModelConfig(filter_widths=(3,) * levels, causal=True, fusion=True)
    torch.manual_seed(0)
    model = build_model(config).eval()
    inference = InferenceModel(model=model, config=config, skeleton=H36M_17, device=torch.device("cpu"),
                               precision=precision, tta=tta, checkpoint=Path("random-weights"), stage=3,
                               origin="rie")
    return Lifter(inference)


def track(frames: int, seed: int = 0) -> np.ndarray:
    """(frames, 17, 2) pixels: a standing figure drifting and swaying."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(300, 700, size=(1, 17, 2))
    return base + np.cumsum(rng.normal(scale=2.0, size=(frames, 17, 2)), axis=0)


def time_pushes(lifter: Lifter, pushes: int, max_seconds: float, warmup: int = 30) -> np.ndarray:
    """Seconds per push over `pushes` pushes, after `warmup` untimed ones; fewer if they
    take longer than `max_seconds` in all (a CPU shared with other work can be that slow)."""
    frames = track(pushes + warmup)
    stream = lifter.stream(width=WIDTH, height=HEIGHT, layout="h36m")
    for frame in frames[:warmup]:
        stream.push(frame)
    seconds = []
    deadline = time.perf_counter() + max_seconds
    for frame in frames[warmup:]:
        start = time.perf_counter()
        out = stream.push(frame)
        seconds.append(time.perf_counter() - start)
        assert len(out) == 1  # causal: the pushed frame's pose, at once
        if start > deadline:
            break
    return np.array(seconds)


def first_layer_seconds(lifter: Lifter, repeats: int = 200) -> float:
    """Median time of the part encoders' first layer for one push (plain and mirrored
    windows), run on its own with the push's shapes: what sharing it could save at most."""
    form = lifter.inference.evaluation_form()
    if not hasattr(form, "encoders"):
        return float("nan")
    copies = 2 if lifter.inference.tta else 1
    r = lifter.receptive_field
    inputs = []
    for block, joints in zip(form.encoders, form.part_joints):
        k = block.widths[0]
        x = torch.randn(copies * r // k, k * 6 * joints.numel()).to(form.dtype)  # (B*R/k, k*6n)
        out = torch.empty(x.shape[0], block.expand.weight.shape[1], dtype=form.dtype)
        inputs.append((x, block.expand, out))
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        for x, layer, out in inputs:
            torch.addmm(layer.bias, x, layer.weight, out=out)
        times[i] = time.perf_counter() - start
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", default="27,81,243", help="receptive fields, comma-separated (powers of 3)")
    parser.add_argument("--pushes", type=int, default=1000, help="timed pushes per setting (default 1000)")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32,bf16 (bf16 skipped where not native)")
    parser.add_argument("--threads", default=None, help="thread counts, comma-separated (default: 1 and all)")
    parser.add_argument("--no-tta", action="store_true", help="without flip TTA (one window per push, not two)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="stop a row early after this long (its push count is printed; default 300)")
    args = parser.parse_args()

    all_threads = torch.get_num_threads()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, all_threads})
    precisions = []
    for p in args.precisions.split(","):
        if p == "bf16" and not bf16_native("cpu"):
            print("bf16 skipped: this CPU has no native bfloat16 arithmetic (rie_cli.devices.bf16_native)")
        else:
            precisions.append(p)
    print(f"torch {torch.__version__}, {describe_device('cpu')}")
    print(f"causal RIE stage 3 (256 channels, latent 256), flip TTA {'off' if args.no_tta else 'on'}, "
          f"{args.pushes} timed pushes per row; load average at start {os.getloadavg()[0]:.2f}")
    print(f"{'RF':>4} {'precision':>9} {'threads':>7} {'pushes':>6} {'median ms':>10} {'p99 ms':>8} "
          f"{'frames/s':>9} {'1st layer':>9} {'load':>5}")
    for field in (int(f) for f in args.fields.split(",")):
        for precision in precisions:
            lifter = lifter_for(field, precision, not args.no_tta)
            for n in threads:
                torch.set_num_threads(n)
                seconds = time_pushes(lifter, args.pushes, args.max_seconds)
                median, p99 = np.median(seconds) * 1e3, np.percentile(seconds, 99) * 1e3
                share = first_layer_seconds(lifter) * 1e3 / median
                print(f"{field:>4} {precision:>9} {n:>7} {len(seconds):>6} {median:>10.2f} {p99:>8.2f} "
                      f"{1 / seconds.mean():>9.1f} "
                      f"{share:>8.1%} {os.getloadavg()[0]:>5.2f}", flush=True)
    torch.set_num_threads(all_threads)


if __name__ == "__main__":
    main()
