"""GPU figures of issue 13 in one run (benchmarks/gpu_check.sh calls this after the CUDA tests).

    PYTHONPATH=. python benchmarks/bench_gpu.py [--steps 20] [--compile] [--json out.json]

Prints, on the first CUDA device:
- the GPU's own matmul peak (8192^3) in fp32 (IEEE), TF32 and bf16, measured here;
- training windows/s of `rie train`'s step (`train_steps`: batch, forward, MPJPE
  loss, backward, fused AdamW with amsgrad) for stage 1 and stage 3 at RF 243,
  batch 1024: fp32, TF32 and bf16 with batches built on the device, bf16 and fp32
  with batches gathered in NumPy on the host and copied (pinned, non-blocking), and
  the eager fp32 host-batch path as it was before this round (nn.Conv1d form): the
  baseline of the ">= 4x" goal;
- for each, the share of a step spent building batches (measured alone, synchronised)
  and the share of the matching matmul peak reached (training FLOPs per window from
  torch.utils.flop_counter);
- evaluation frames/s with flip TTA at RF 243 (the folded form), fp32 and bf16;
- with --compile (last, as it takes longest): the bf16 stage-1 step under
  torch.compile (default mode) and with CUDA graphs (mode "reduce-overhead"), with
  the first step's time (compilation) apart.
The goals (H100/H200): batch building < 3 % of a step; stage-1 RF 243 bf16 >= 4x the
baseline; evaluation >= 50k frames/s with TTA at RF 243 in bf16.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rie_cli.data.windows import DeviceWindowSampler, WindowSampler  # noqa: E402
from rie_cli.devices import describe_device, set_tf32  # noqa: E402
from rie_cli.inference import predict_many  # noqa: E402
from rie_cli.model import ModelConfig, build_model  # noqa: E402
from rie_cli.model.blocks import use_conv_form  # noqa: E402
from rie_cli.skeleton import H36M_17  # noqa: E402
from rie_cli.training.steps import make_optimizer, train_steps  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import synthetic_data, training_flops_per_window  # noqa: E402

CONFIGS = {
    "stage 1 (RF 243)": ModelConfig(filter_widths=(3, 3, 3, 3, 3), fusion=False),
    "stage 3 (RF 243)": ModelConfig(filter_widths=(3, 3, 3, 3, 3), fusion=True),
}
# (label, precision, tf32, batches on the device, nn.Conv1d baseline form)
VARIANTS = [
    ("baseline fp32 eager, host batches", "fp32", False, False, True),
    ("fp32, device batches", "fp32", False, True, False),
    ("fp32, host batches", "fp32", False, False, False),
    ("tf32, device batches", "fp32", True, True, False),
    ("bf16, device batches", "bf16", False, True, False),
    ("bf16, host batches", "bf16", False, False, False),
]


# The device measured: CUDA; "--device cpu --quick" is a dry run of this script's code
# on a machine without a GPU (tiny sizes, figures meaningless).
DEVICE = torch.device("cuda")
SIZES = {"peak": 8192, "frames": 200_000, "data_frames": 200_000}


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, tf32: bool, repeats: int = 10) -> float:
    size = SIZES["peak"]
    set_tf32(tf32)
    a = torch.randn(size, size, device=DEVICE, dtype=dtype)
    b = torch.randn(size, size, device=DEVICE, dtype=dtype)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    set_tf32(False)
    return 2 * size**3 / best


def _sampler(config, batch_size: int, on_device: bool):
    kind = DeviceWindowSampler if on_device else WindowSampler
    kwargs = dict(skeleton=H36M_17, shuffle=True, augment=True, drop_last=True)
    if on_device:
        kwargs["device"] = DEVICE
    return kind(*synthetic_data(SIZES["data_frames"]), config.receptive_field(), batch_size, **kwargs)


def batch_seconds(sampler, steps: int) -> float:
    """Seconds per batch of building alone (host: gather + pinned copy), synchronised."""
    from rie_cli.data.windows import to_device

    batches = iter(sampler)
    for _ in range(2):
        next(batches)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        x, y, _ = next(batches)
        to_device(x, DEVICE), to_device(y, DEVICE)
    sync()
    return (time.perf_counter() - start) / steps


def step_seconds(config, *, precision: str, tf32: bool, on_device: bool, conv_form: bool, batch_size: int,
                 steps: int, compile_mode: str | None = None) -> tuple[float, float]:
    """(seconds per training step, seconds of the first step) with the trainer's own step."""
    torch.manual_seed(0)
    set_tf32(tf32)
    old = use_conv_form(conv_form)
    try:
        model = build_model(config).to(DEVICE).train()
        optimizer = make_optimizer(list(model.parameters()), 1e-3, DEVICE)
        step_model = model if compile_mode is None else torch.compile(model, mode=compile_mode, dynamic=False)
        batches = iter(_sampler(config, batch_size, on_device))
        device = DEVICE
        start = time.perf_counter()
        train_steps(step_model, optimizer, batches, device=device, precision=precision, max_steps=1)
        sync()
        first = time.perf_counter() - start
        train_steps(step_model, optimizer, batches, device=device, precision=precision, max_steps=3)
        sync()
        start = time.perf_counter()
        train_steps(step_model, optimizer, batches, device=device, precision=precision, max_steps=steps)
        sync()
        return (time.perf_counter() - start) / steps, first
    finally:
        use_conv_form(old)
        set_tf32(False)


def eval_frames_per_s(precision: str) -> float:
    frames = SIZES["frames"]
    torch.manual_seed(0)
    model = build_model(CONFIGS["stage 3 (RF 243)"]).eval()
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(20):
        n = frames // 20
        x = np.cumsum(rng.normal(0, 0.01, (n, 17, 2)), axis=0).astype(np.float32)
        seqs.append(x)
    run = dict(skeleton=H36M_17, tta=True, device=DEVICE, precision=precision, batch_size=8192)
    predict_many(model, seqs[:2], **run)  # warm-up (folding, allocator)
    sync()
    start = time.perf_counter()
    predict_many(model, seqs, **run)
    sync()
    return frames / (time.perf_counter() - start)


def training_figures(out: dict, peaks: dict, batch_size: int, steps: int) -> None:
    for name, config in CONFIGS.items():
        flops = training_flops_per_window(build_model(config), config.receptive_field())[1]
        build = {dev: batch_seconds(_sampler(config, batch_size, dev), steps) for dev in (True, False)}
        baseline = None
        for label, precision, tf32, on_device, conv_form in VARIANTS:
            seconds, _ = step_seconds(config, precision=precision, tf32=tf32, on_device=on_device,
                                      conv_form=conv_form, batch_size=batch_size, steps=steps)
            rate = batch_size / seconds
            baseline = baseline or rate
            peak = peaks["tf32" if tf32 else precision]
            row = {"config": name, "variant": label, "windows_per_s": rate, "seconds_per_step": seconds,
                   "batch_share": build[on_device] / seconds, "vs_baseline": rate / baseline,
                   "share_of_peak": rate * flops / peak}
            out["training"].append(row)
            print(f"{name} {label:34s}: {rate:9.0f} windows/s, {seconds * 1e3:7.1f} ms/step, batch building "
                  f"{100 * row['batch_share']:5.1f}% of a step, {row['vs_baseline']:5.2f}x baseline, "
                  f"{100 * row['share_of_peak']:4.1f}% of the {'tf32' if tf32 else precision} peak", flush=True)


def evaluation_figures(out: dict, peaks: dict) -> None:
    fwd = training_flops_per_window(build_model(CONFIGS["stage 3 (RF 243)"]).eval(), 243)[0]
    for precision in ("fp32", "bf16"):
        rate = eval_frames_per_s(precision)
        out["evaluation"][precision] = rate
        print(f"evaluation RF 243 stage 3, flip TTA, {precision}: {rate:9.0f} frames/s "
              f"({100 * rate * 2 * fwd / peaks[precision]:.1f}% of the {precision} peak)", flush=True)


def report_goals(out: dict) -> None:
    train = {(r["config"], r["variant"]): r for r in out["training"]}
    goals = [
        ("batch building < 3% of a bf16 step (device batches)",
         max(train[(c, "bf16, device batches")]["batch_share"] for c in CONFIGS) < 0.03),
        ("stage-1 RF 243 bf16 >= 4x the eager fp32 host-batch baseline",
         train[("stage 1 (RF 243)", "bf16, device batches")]["vs_baseline"] >= 4),
        ("evaluation >= 50k frames/s with TTA at RF 243 in bf16", out["evaluation"]["bf16"] >= 50_000),
    ]
    for goal, met in goals:
        print(f"goal {'met' if met else 'NOT met'}: {goal}", flush=True)


def compile_figures(out: dict, batch_size: int, steps: int, runs: list[tuple[str, str]]) -> None:
    """Compiled steps: (config name, mode) pairs; "reduce-overhead" = CUDA graphs, what
    `rie train --compile` uses on one GPU (`steps.compile_for_training`)."""
    baseline = {r["config"]: r["windows_per_s"] for r in out["training"] if r["variant"].startswith("baseline")}
    for name, mode in runs:
        try:
            seconds, first = step_seconds(CONFIGS[name], precision="bf16", tf32=False, on_device=True,
                                          conv_form=False, batch_size=batch_size, steps=steps, compile_mode=mode)
        except Exception as exc:  # noqa: BLE001 - report and go on: the other figures still count
            print(f"{name} bf16 compiled ({mode}): failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        rate = batch_size / seconds
        ratio = f", {rate / baseline[name]:5.2f}x baseline" if name in baseline else ""
        out["training"].append({"config": name, "variant": f"bf16 compiled {mode}", "windows_per_s": rate,
                                "seconds_per_step": seconds, "first_step_s": first})
        print(f"{name} bf16 compiled ({mode}): {rate:9.0f} windows/s, {seconds * 1e3:7.1f} ms/step{ratio}, "
              f"first step with compilation {first:.0f} s", flush=True)


def baseline_figures(out: dict, batch_size: int, steps: int) -> None:
    """Only the eager fp32 host-batch baseline of each configuration (for --compiled-only)."""
    for name, config in CONFIGS.items():
        seconds, _ = step_seconds(config, precision="fp32", tf32=False, on_device=False, conv_form=True,
                                  batch_size=batch_size, steps=steps)
        out["training"].append({"config": name, "variant": "baseline fp32 eager, host batches",
                                "windows_per_s": batch_size / seconds, "seconds_per_step": seconds})
        print(f"{name} baseline fp32 eager, host batches: {batch_size / seconds:9.0f} windows/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (after 4 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--compile", action="store_true", help="also torch.compile and CUDA graphs (stage 1, bf16)")
    parser.add_argument("--compiled-only", action="store_true",
                        help="only the baselines and the CUDA-graph steps of both stages (bf16), as `rie train --compile`")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only to dry-run the script's code")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a dry run; figures meaningless)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA device")
    if args.quick:
        SIZES.update(peak=256, frames=2_000, data_frames=4_000)
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, on {describe_device(DEVICE)}", flush=True)
    peaks = {"fp32": matmul_peak(torch.float32, False), "tf32": matmul_peak(torch.float32, True),
             "bf16": matmul_peak(torch.bfloat16, False)}
    print(f"matmul peak ({SIZES['peak']}^3): " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()), flush=True)
    out = {"device": describe_device(DEVICE), "peaks": peaks, "training": [], "evaluation": {}}
    if args.compiled_only:
        baseline_figures(out, args.batch_size, args.steps)
        compile_figures(out, args.batch_size, args.steps, [(name, "reduce-overhead") for name in CONFIGS])
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
        return
    training_figures(out, peaks, args.batch_size, args.steps)
    evaluation_figures(out, peaks)
    report_goals(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.compile:
        compile_figures(out, args.batch_size, args.steps,
                        [("stage 1 (RF 243)", "default"), ("stage 1 (RF 243)", "reduce-overhead")])
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
