"""Training throughput: windows/s of `rie train`'s step for stage 1 (RF 27) and stage 3 (RF 243).

    python benchmarks/bench_train.py                 # both stages, fp32 (and bf16 where native)
    python benchmarks/bench_train.py --steps 2       # quicker
    python benchmarks/bench_train.py --compile       # also under torch.compile (slow to start)
    python benchmarks/bench_train.py --json out.json

Times the trainer's own step function (`rie_cli.training.steps.train_steps`: batch
building with shuffling and flip augmentation, forward, MPJPE loss, backward, fused
AdamW) on synthetic 2D/3D sequences, for two paths in the same run, alternating step
by step so that a busy machine slows both alike:
- baseline: the step as it was before this round (temporal blocks as nn.Conv1d,
  batches gathered in NumPy on the host and copied);
- current: `rie train`'s step (strided convolutions as matrix products on
  channels-last activations, batches built on the device).
The best step of each counts. Also prints: the CPU capability and whether bf16 is
native; the share of a step spent building batches; the model's FLOPs per training
window (forward + backward, torch.utils.flop_counter); the fp32 (and bf16) matrix-
multiply peak of this machine measured here, and the share of it each path reaches.
bf16 runs only where bf16 is native (elsewhere rie refuses it).
Reference: the authors' code trains ~590 windows/s (stage 1, RF 27, latent 256) and
~110 windows/s (stage 3, RF 243) on the project's 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rie_cli.data.windows import DeviceWindowSampler, WindowSampler  # noqa: E402
from rie_cli.devices import bf16_native, describe_device  # noqa: E402
from rie_cli.model import ModelConfig, build_model  # noqa: E402
from rie_cli.model.blocks import use_conv_form  # noqa: E402
from rie_cli.skeleton import H36M_17  # noqa: E402
from rie_cli.training.steps import make_optimizer, mpjpe_loss, train_steps  # noqa: E402

AUTHORS = {"stage 1 (RF 27)": 590.0, "stage 3 (RF 243)": 110.0}
CONFIGS = {
    "stage 1 (RF 27)": ModelConfig(filter_widths=(3, 3, 3), channels=256, latent=256, fusion=False),
    "stage 3 (RF 243)": ModelConfig(filter_widths=(3, 3, 3, 3, 3), channels=256, latent=256, fusion=True),
}


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of a large square matmul on this machine in `dtype`: the best of repeated
    runs, so that a moment of contention on a shared machine does not lower it."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best


def synthetic_data(frames: int = 60_000) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Smooth random walks (normalised 2D, metres 3D) in 40 sequences, as a training set."""
    rng = np.random.default_rng(0)
    lengths = np.full(40, frames // 40)
    x2d = [np.cumsum(rng.normal(0, 0.01, (n, 17, 2)), axis=0).astype(np.float32) for n in lengths]
    y3d = [np.cumsum(rng.normal(0, 0.01, (n, 17, 3)), axis=0).astype(np.float32) for n in lengths]
    for y in y3d:
        y[:, 0] = 0
    return x2d, y3d


def training_flops_per_window(model, receptive_field: int, batch: int = 64) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs per window."""
    x = torch.randn(batch, receptive_field, 17, 2)
    y = torch.randn(batch, 1, 17, 3)
    model.train()
    with FlopCounterMode(display=False) as fwd:
        model(x)
    with FlopCounterMode(display=False) as total:
        mpjpe_loss(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return fwd.get_total_flops() / batch, total.get_total_flops() / batch


class _Path:
    """One way of running the step: its model, optimizer, sampler and best step time."""

    def __init__(self, config: ModelConfig, batch_size: int, *, baseline: bool, compile: bool):
        torch.manual_seed(0)
        self.baseline = baseline
        self.model = build_model(config).train()
        self.optimizer = make_optimizer(list(self.model.parameters()), 1e-3, torch.device("cpu"))
        kind = WindowSampler if baseline else DeviceWindowSampler
        # drop_last: every timed batch is full, so a compiled model compiles once.
        self.sampler = kind(*synthetic_data(), config.receptive_field(), batch_size, skeleton=H36M_17,
                            shuffle=True, augment=True, drop_last=True)
        self.batches = iter(self.sampler)
        self.step_model = torch.compile(self.model, dynamic=False) if compile else self.model
        self.best, self.prep_share, self.first_step_s = float("inf"), 0.0, 0.0

    def step(self, precision: str) -> float:
        old = use_conv_form(self.baseline)
        try:
            stats = train_steps(self.step_model, self.optimizer, self.batches, device=torch.device("cpu"),
                                precision=precision, max_steps=1)
        finally:
            use_conv_form(old)
        if stats.seconds < self.best:
            self.best, self.prep_share = stats.seconds, stats.prep_seconds / stats.seconds
        return stats.seconds


def bench(name: str, config: ModelConfig, *, steps: int, batch_size: int, precision: str, peak: float,
          compile: bool = False) -> dict:
    paths = {"baseline": _Path(config, batch_size, baseline=True, compile=compile),
             "current": _Path(config, batch_size, baseline=False, compile=compile)}
    fwd_flops, train_flops = training_flops_per_window(paths["current"].model, config.receptive_field())
    for path in paths.values():
        path.first_step_s = path.step(precision)  # warm-up (and compilation)
        path.best = float("inf")
    for _ in range(steps):
        for path in paths.values():  # alternating: contention hits both alike
            path.step(precision)
    out = {"config": name, "precision": precision, "compiled": compile, "steps": steps, "batch_size": batch_size,
           "forward_flops_per_window": fwd_flops, "train_flops_per_window": train_flops}
    for key, path in paths.items():
        rate = batch_size / path.best
        out[key] = {"windows_per_s": rate, "seconds_per_step": path.best, "batch_prep_share": path.prep_share,
                    "first_step_s": path.first_step_s, "achieved_gflops": rate * train_flops / 1e9,
                    "share_of_peak": rate * train_flops / peak, "vs_authors": rate / AUTHORS[name]}
    out["speedup"] = out["current"]["windows_per_s"] / out["baseline"]["windows_per_s"]
    return out


def _report(r: dict) -> None:
    label = r["precision"] + (" compiled" if r["compiled"] else "")
    for key in ("baseline", "current"):
        p = r[key]
        print(f"{r['config']:17s} {label:13s} {key:8s}: {p['windows_per_s']:7.1f} windows/s "
              f"({p['vs_authors']:.2f}x the authors' {AUTHORS[r['config']]:.0f}), {p['seconds_per_step']:.2f} s/step, "
              f"batch building {100 * p['batch_prep_share']:.1f}% of a step, {p['achieved_gflops']:.1f} GFLOP/s = "
              f"{100 * p['share_of_peak']:.0f}% of the {r['precision']} matmul peak"
              + (f" (first step with compilation {p['first_step_s']:.0f} s)" if r["compiled"] else ""), flush=True)
    print(f"{r['config']:17s} {label:13s} current / baseline: {r['speedup']:.2f}x "
          f"({r['train_flops_per_window'] / 1e6:.0f} MFLOP per training window, forward "
          f"{r['forward_flops_per_window'] / 1e6:.0f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per path (after 1 warm-up), alternating")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--only", choices=("stage1", "stage3"), help="run one configuration only")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast runs")
    parser.add_argument("--compile", action="store_true",
                        help="also time the step under torch.compile (rie train --compile; minutes of compilation)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__} on {describe_device('cpu')}")
    if not args.no_bf16 and not bf16_native("cpu"):
        print("bf16 skipped: this CPU has no native bf16 (rie refuses --precision bf16 here)")
        args.no_bf16 = True
    precisions = ["fp32"] + ([] if args.no_bf16 else ["bf16"])
    peaks = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16) for p in precisions}
    for p, peak in peaks.items():
        print(f"{p} matmul peak (2048^3): {peak / 1e9:.1f} GFLOP/s")
    results = []
    names = [n for n in CONFIGS if args.only is None or n.startswith(args.only.replace("stage", "stage "))]
    variants = [(p, False) for p in precisions] + ([(p, True) for p in precisions] if args.compile else [])
    for name in names:
        for precision, compiled in variants:
            r = bench(name, CONFIGS[name], steps=args.steps, batch_size=args.batch_size, precision=precision,
                      peak=peaks[precision], compile=compiled)
            results.append(r)
            _report(r)
    # Measured again at the end: the higher of the two is the peak (shared machines).
    for p in precisions:
        final = max(peaks[p], matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16))
        if final > peaks[p]:
            peaks[p] = final
            print(f"{p} matmul peak measured again: {final / 1e9:.1f} GFLOP/s; shares of peak with it:")
            for r in (r for r in results if r["precision"] == p):
                for key in ("baseline", "current"):
                    r[key]["share_of_peak"] = r[key]["achieved_gflops"] * 1e9 / final
                    print(f"  {r['config']} {key}{' compiled' if r['compiled'] else ''}: "
                          f"{100 * r[key]['share_of_peak']:.0f}%")
    if args.json:
        args.json.write_text(json.dumps({"peak_flops": peaks, "cpu": describe_device("cpu"), "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
