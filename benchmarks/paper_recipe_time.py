"""What the paper's full training recipe costs, with rie and with the authors' code.

    python benchmarks/paper_recipe_time.py --authors-dir PATH/Pose3D-RIE --data bnmocap.h5
    python benchmarks/paper_recipe_time.py ... --device cuda --train-windows 200000   # on a GPU

The recipe: stages 1, 2 and 3 at receptive field 243, 80 epochs each (`--paper-epochs`),
Human3.6M's ~1.56 million training windows per epoch (`--paper-windows`; flip included).
The time of an epoch is proportional to its windows (every window costs the same; the
per-epoch work outside the steps is negligible next to 1.56 M windows), so the recipe's
time is measured here as seconds per training window of each stage, on a part of the
prepared file (`--train-windows` per epoch), for the authors' `run.py` and for `rie
train` (fp32, and its fastest settings: bf16 where native, compiled on a GPU), with
`benchmarks/bench_vs_authors.py`'s machinery (same data, same initial models, sides
alternating, no evaluation), then multiplied out. The fastest epoch of each side
counts (the first includes warm-up, and on a GPU compilation: keep `--epochs` >= 2).
On a GPU use many more windows per epoch than on a CPU: a step of 1,024 windows takes
milliseconds there, and a short epoch measures start-up more than steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_vs_authors as bench  # noqa: E402
from rie_cli.devices import describe_device, resolve_device  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors-dir", required=True, help="a clone of paTRICK-swk/Pose3D-RIE (run from a copy)")
    parser.add_argument("--data", required=True, help="prepared HDF5 file (rie prepare-data), 17 joints")
    parser.add_argument("--keypoints", default="noisy")
    parser.add_argument("--train-windows", type=int, default=2000, help="training windows per measured epoch")
    parser.add_argument("--actions", default="raise-up-both-hands",
                        help="action prefixes of the measured data, or 'all' (short sequences: keep --subset >= ~0.05)")
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs per stage and side (default 2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paper-windows", type=float, default=1.56e6, help="training windows per epoch (Human3.6M)")
    parser.add_argument("--paper-epochs", default="80,80,80", help="epochs of stages 1, 2, 3")
    parser.add_argument("--work-dir")
    args = parser.parse_args(argv)
    paper_epochs = [int(e) for e in args.paper_epochs.split(",")]
    configs = bench.parse_configs("s1-rf243,s2-rf243,s3-rf243", str(args.train_windows))
    run_args = argparse.Namespace(work_dir=args.work_dir, data=args.data, keypoints=args.keypoints,
                                  epochs=args.epochs, device=args.device, actions=args.actions,
                                  authors_dir=args.authors_dir, threads=args.threads)
    torch.set_num_threads(args.threads)
    load_before = bench.uptime()
    ctx = bench.Context(run_args, configs)
    fast = bench.fast_settings(args.device, False)
    labels = ["authors", "rie fp32"] + ([f"rie {fast[0]}{' compiled' if fast[1] else ''}"] if fast else [])
    print(f"device: {describe_device(resolve_device(args.device))}; torch {torch.__version__}; {args.threads} "
          f"thread(s); load average before {load_before}; work dir {ctx.work}")
    per_window = {}
    for config in configs:
        sides = [bench.Side(label) for label in labels]
        print(f"measuring {config.name}: {ctx.authors_windows[config]:,} windows per epoch, {args.epochs} epochs "
              f"per side (load {bench.uptime()})", flush=True)
        bench.run_authors(ctx, config, ctx.subset[config], 0, sides[0], evaluate=False)
        bench.run_rie(ctx, config, ctx.subset[config], 0, sides[1], "fp32", False, evaluate=False)
        if fast:
            bench.run_rie(ctx, config, ctx.subset[config], 0, sides[2], fast[0], fast[1], evaluate=False)
        per_window[config.stage] = [min(s.window_seconds) for s in sides]
    print(f"\nthe paper's recipe: RF 243, {args.paper_windows:,.0f} windows per epoch, epochs {paper_epochs} "
          f"(stages 1, 2, 3)")
    print(f"{'':24s}" + "".join(f"{label:>22s}" for label in labels))
    totals = [0.0] * len(labels)
    for stage, epochs in zip((1, 2, 3), paper_epochs):
        hours = [s * args.paper_windows * epochs / 3600 for s in per_window[stage]]
        totals = [t + h for t, h in zip(totals, hours)]
        print(f"{f'stage {stage}: ms / 1k windows':24s}" + "".join(f"{1e6 * s:22.0f}" for s in per_window[stage]))
        print(f"{f'stage {stage}: hours':24s}" + "".join(f"{h:22.1f}" for h in hours))
    print(f"{'whole recipe: hours':24s}" + "".join(f"{t:22.1f}" for t in totals))
    print(f"{'speed-up vs authors':24s}" + "".join(f"{totals[0] / t:21.2f}x" for t in totals))
    print(f"load average after: {bench.uptime()}")


if __name__ == "__main__":
    main()
