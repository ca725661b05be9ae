"""Streaming latency: the time of one `LiftStream.push` for causal RIE models.

Causal models of receptive field 27, 81 and 243 (stage-3 shape: 256 channels, latent
256, feature fusion; random weights, speed does not depend on them), flip TTA on
unless --no-tta, frames of a random-walk pixel track pushed one by one through
`Lifter.stream`. Three parts, each printed as a table (`--parts`):

- `fields`: per receptive field, precision (fp32, and bf16 where this CPU has it
  natively) and thread count (one, and all torch threads): the per-push latency
  (median and p99 over --pushes pushes, after a warm-up), the frame rate sustained, and
  the share of a push spent in the part encoders' first layer (the only layer whose
  linear part overlapping windows could share), measured on its own.
- `people`: RF 243, one stream of P people (`people=P`, one model pass of 2P windows
  per push) for P = 1, 4, 16 (--people): latency per push and its ratio to one person.
  The settings are timed in turns, a block of pushes each, so that a change in the
  machine's load falls on all of them alike.
- `floor`: RF 243, one person: the weight bytes a push reads (every folded weight
  and bias, once: 167 MB in fp32, far beyond any cache) divided by the memory
  bandwidth measured in the same run (one read of a buffer 8x the last-level cache,
  the fastest of several, with the push's thread count) is the time no push can beat;
  the table gives p50 and p99 against it. bf16 is timed with the weights as folded
  (transposed: (N, K) row-major, used as its transpose, the layout reported 1.4x
  faster for the 2-row products of a push) and (K, N) row-major, as fp32 keeps them.

It prints the CPU capability and the load average, since on a shared machine the
figures depend on what else runs.

    python benchmarks/bench_stream.py                        # all three parts (several minutes)
    python benchmarks/bench_stream.py --parts people,floor --threads 1
    python benchmarks/bench_stream.py --parts fields --fields 243 --pushes 1000
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


def interleaved(streams: dict, frames: np.ndarray, pushes: int, block: int = 10,
                max_seconds: float = 300.0) -> dict:
    """Seconds per push of each stream (name -> (stream, people or None)), timed in turns of
    `block` pushes so that the machine's load changes fall on all alike; stops early after
    `max_seconds`."""
    seconds = {name: [] for name in streams}
    deadline = time.perf_counter() + max_seconds
    t = 0
    while t < pushes and time.perf_counter() < deadline:
        for name, (stream, people) in streams.items():
            for i in range(t, min(t + block, pushes)):
                frame = frames[i] if people is None else np.broadcast_to(frames[i], (people, 17, 2)) + \
                    np.arange(people)[:, None, None] * [40.0, 0.0]
                start = time.perf_counter()
                out = stream.push(frame)
                seconds[name].append(time.perf_counter() - start)
                assert len(out) == 1  # causal: the pushed frame's pose, at once
        t += block
    return {name: np.array(s) for name, s in seconds.items()}


def warm_streams(lifters: dict, frames: np.ndarray, warmup: int = 20) -> dict:
    """name -> (lifter, people) made into warmed-up streams, name -> (stream, people)."""
    streams = {}
    for name, (lifter, people) in lifters.items():
        stream = lifter.stream(width=WIDTH, height=HEIGHT, layout="h36m", people=people)
        for frame in frames[:warmup]:
            stream.push(frame if people is None else np.broadcast_to(frame, (people, 17, 2)) +
                        np.arange(people)[:, None, None] * [40.0, 0.0])
        streams[name] = (stream, people)
    return streams


def weight_bytes(lifter: Lifter) -> int:
    """Bytes of every folded weight and bias: what one push reads (each layer runs once per push)."""
    form = lifter.inference.evaluation_form()
    return sum(t.numel() * t.element_size() for block in form._blocks() for layer in block.layers()
               for t in (layer.weight, layer.bias))


def row_major_weights(lifter: Lifter) -> Lifter:
    """The lifter with every folded weight stored (K, N) row-major, as fp32 is: the layout
    bf16 had before it was stored transposed (rie_cli.model.folding, `_Dense.convert`)."""
    form = lifter.inference.evaluation_form()
    for block in form._blocks():
        for layer in block.layers():
            layer.weight = layer.weight.contiguous()
    form.release()
    return lifter


def read_bandwidth(repeats: int = 5) -> float:
    """Bytes per second of one read of a float32 buffer 8x the last-level cache (256 MB
    here): the fastest of `repeats` (the floor must not be set by a slow moment)."""
    buffer = torch.ones(64 * 1024 * 1024)  # 256 MB
    buffer.sum()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - start)
    return buffer.numel() * buffer.element_size() / best


def fields_table(args, precisions, threads) -> None:
    print(f"\n[fields] causal RIE stage 3 (256 channels, latent 256), flip TTA {'off' if args.no_tta else 'on'}, "
          f"{args.pushes} timed pushes per row")
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


def people_table(args, precisions, threads) -> None:
    counts = [int(p) for p in args.people.split(",")]
    pushes = max(args.pushes // 4, 50)
    print(f"\n[people] causal RF 243, flip TTA {'off' if args.no_tta else 'on'}: one stream of P people, "
          f"{pushes} pushes per row timed in turns of 10")
    print(f"{'P':>3} {'precision':>9} {'threads':>7} {'pushes':>6} {'median ms':>10} {'p99 ms':>8} "
          f"{'ms/person':>9} {'x 1 person':>10} {'load':>5}")
    frames = track(pushes + 20)
    for precision in precisions:
        lifter = lifter_for(243, precision, not args.no_tta)
        for n in threads:
            torch.set_num_threads(n)
            streams = warm_streams({p: (lifter, p) for p in counts}, frames)
            seconds = interleaved(streams, frames[20:], pushes, max_seconds=args.max_seconds)
            one = np.median(seconds[counts[0]])
            for p in counts:
                median, p99 = np.median(seconds[p]), np.percentile(seconds[p], 99)
                print(f"{p:>3} {precision:>9} {n:>7} {len(seconds[p]):>6} {median * 1e3:>10.2f} {p99 * 1e3:>8.2f} "
                      f"{median * 1e3 / p:>9.2f} {median / one:>10.2f} {os.getloadavg()[0]:>5.2f}", flush=True)


def floor_table(args, precisions, threads) -> None:
    pushes = max(args.pushes // 2, 100)
    print(f"\n[floor] causal RF 243, one person, flip TTA {'off' if args.no_tta else 'on'}: the memory-bandwidth "
          f"floor (weight bytes per push / read bandwidth), {pushes} pushes per row timed in turns of 10")
    print(f"{'precision':>9} {'weights':>10} {'threads':>7} {'MB/push':>8} {'GB/s':>6} {'floor ms':>9} "
          f"{'median ms':>10} {'p99 ms':>8} {'p99/floor':>9} {'load':>5}")
    frames = track(pushes + 20)
    lifters = {}
    for precision in precisions:
        lifters[precision, "as folded"] = (lifter_for(243, precision, not args.no_tta), None)
        if precision == "bf16":  # folded as W^T row-major; timed against W row-major too
            lifters[precision, "row-major"] = (row_major_weights(lifter_for(243, precision, not args.no_tta)), None)
    for n in threads:
        torch.set_num_threads(n)
        streams = warm_streams(lifters, frames)
        bandwidth = read_bandwidth()
        seconds = interleaved(streams, frames[20:], pushes, max_seconds=args.max_seconds)
        bandwidth = max(bandwidth, read_bandwidth())  # before and after the pushes: the faster
        for (precision, layout), (lifter, _) in lifters.items():
            size = weight_bytes(lifter)
            floor = size / bandwidth
            median, p99 = np.median(seconds[precision, layout]), np.percentile(seconds[precision, layout], 99)
            print(f"{precision:>9} {layout:>10} {n:>7} {size / 1e6:>8.1f} {bandwidth / 1e9:>6.1f} "
                  f"{floor * 1e3:>9.2f} {median * 1e3:>10.2f} {p99 * 1e3:>8.2f} {p99 / floor:>9.2f} "
                  f"{os.getloadavg()[0]:>5.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="fields,people,floor", help="tables to print: fields, people, floor")
    parser.add_argument("--fields", default="27,81,243", help="receptive fields, comma-separated (powers of 3)")
    parser.add_argument("--people", default="1,4,16", help="people per push for the people table (first: the baseline)")
    parser.add_argument("--pushes", type=int, default=1000,
                        help="timed pushes per row of the fields table (people: a quarter, floor: a half; default 1000)")
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
    print(f"torch {torch.__version__}, {describe_device('cpu')}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}; load average at start {os.getloadavg()[0]:.2f}")
    tables = {"fields": fields_table, "people": people_table, "floor": floor_table}
    for part in args.parts.split(","):
        if part not in tables:
            parser.error(f"unknown part '{part}' (choose from {', '.join(tables)})")
        tables[part](args, precisions, threads)
    torch.set_num_threads(all_threads)

if __name__ == "__main__":
    main()
