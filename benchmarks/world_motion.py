"""World motion on a prepared data set: the metrics of `rie evaluate --trajectory` for
`--foot-lock` off and on and each `--smooth`, from one prediction.

    python benchmarks/world_motion.py -c pose.pt -t traj.pt -d bnmocap.h5 -k noisy --markdown
    python benchmarks/world_motion.py -c pose.pt -t traj.pt -d bnmocap.h5 -k noisy --cameras 0 --json out.json

The pose model and the trajectory model predict every selected sequence once (flip
TTA, fp32); each row then smooths those predictions (poses and root, as `--smooth`
does), optionally applies the foot lock (`rie_cli.trajectory.lock_sequence`, as
`rie evaluate --foot-lock`) and scores them with `rie_cli.evaluation.evaluate_predictions`
(action-wise averages). Each row equals

    rie evaluate -c pose.pt -t traj.pt -d bnmocap.h5 -k noisy [--smooth S] [--foot-lock]

restricted to the same cameras. Besides the metrics (docs/evaluate.md, "World motion")
it prints `out pen`: the deepest any joint of the written motion goes below the floor
level its own feet show (`rie_cli.foot_contact.floor_level`), in mm, over all
sequences, and `>1cm %`: the share of frames where some joint is more than 1 cm below
it: what an animator would see sink, with no ground truth involved.
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

from rie_cli.data.dataset import PoseDataset  # noqa: E402
from rie_cli.evaluation import evaluate_predictions  # noqa: E402
from rie_cli.foot_contact import floor_level, foot_speeds  # noqa: E402
from rie_cli.loading import load_models  # noqa: E402
from rie_cli.smoothing import Smoothing  # noqa: E402
from rie_cli.trajectory import absolute_poses, camera_floor, lock_sequence, predict_trajectories  # noqa: E402

SMOOTHINGS = (Smoothing("none"), Smoothing("savgol"), Smoothing("oneeuro"))
COLUMNS = (("P1", "mpjpe"), ("abs", "abs_mpjpe"), ("W100", "w_mpjpe100"), ("WA100", "wa_mpjpe100"), ("RTE %", "rte"),
           ("jitter", "jitter"), ("accel", "accel_error"), ("FS mm", "foot_sliding"), ("bone CV %", "bone_cv"),
           ("pen", "penetration"), ("float", "floating"))


def output_penetration(poses, roots, sequences, skeleton, fps) -> tuple[float, float]:
    """(the deepest (mm) any joint of the placed motion goes below the floor level its feet
    show, the share (%) of frames with a joint more than 1 cm below it)."""
    depths = []
    feet = list(skeleton.feet())
    for pose, root, seq in zip(poses, roots, sequences):
        world = camera_floor(seq.camera).apply(absolute_poses(pose, root))
        level = floor_level(world, feet, foot_speeds(world, feet, fps))
        depths.append(level - world[..., 2].min(axis=1))  # (T,)
    depths = np.concatenate(depths)
    return float(max(depths.max(), 0.0) * 1000.0), float((depths > 0.01).mean() * 100.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--checkpoint", type=Path, required=True, help="pose model")
    parser.add_argument("-t", "--trajectory", type=Path, required=True, help="trajectory model")
    parser.add_argument("-d", "--data", type=Path, required=True, help="prepared HDF5 file (rie prepare-data)")
    parser.add_argument("-k", "--keypoints", default="noisy")
    parser.add_argument("-s", "--subjects", default=None, help="comma-separated (default: the file's test split)")
    parser.add_argument("-a", "--actions", default=None, help="comma-separated action prefixes")
    parser.add_argument("--cameras", default=None, help="comma-separated camera indices (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dataset = PoseDataset(args.data)
    subjects = args.subjects.split(",") if args.subjects else list(dataset.test_subjects)
    sequences = dataset.sequences(subjects, args.keypoints, actions=args.actions.split(",") if args.actions else None)
    if args.cameras is not None:
        keep = {int(c) for c in args.cameras.split(",")}
        sequences = [s for s in sequences if s.camera_index in keep]
    pose_model, traj = load_models(args.checkpoint, args.trajectory, dataset.skeleton, dataset.path.name)
    started = time.perf_counter()
    inputs = [s.keypoints_2d for s in sequences]
    poses = pose_model.predict(inputs)
    roots = predict_trajectories(traj.model, inputs, skeleton=dataset.skeleton)
    predict_seconds = time.perf_counter() - started
    frames = sum(len(p) for p in poses)
    print(f"{len(sequences)} sequences, {frames:,} frames ({', '.join(subjects)}, {args.keypoints}), predicted in "
          f"{predict_seconds:.0f} s; CPU capability {torch.backends.cpu.get_cpu_capability()}", file=sys.stderr)

    rows = []
    for smoothing in SMOOTHINGS:
        smoothed = [smoothing.apply(p, dataset.fps) for p in poses]
        smoothed_roots = [smoothing.apply(r, dataset.fps) for r in roots]
        for lock in (False, True):
            row_started = time.perf_counter()
            p, r = smoothed, smoothed_roots
            if lock:
                locked = [lock_sequence(a, b, dataset.skeleton, dataset.fps, s.camera)
                          for a, b, s in zip(p, r, sequences)]
                p, r = [x[0] for x in locked], [x[1] for x in locked]
            result = evaluate_predictions(sequences, p, trajectories=r, fps=dataset.fps, skeleton=dataset.skeleton)
            average = result.average.to_json()
            average["out_penetration_max"], average["out_penetration_share"] = output_penetration(
                p, r, sequences, dataset.skeleton, dataset.fps)
            rows.append({"smooth": smoothing.describe(dataset.fps), "foot_lock": lock, **average,
                         "seconds": time.perf_counter() - row_started})
    _print(rows, args.markdown)
    if args.json is not None:
        args.json.write_text(json.dumps({"frames": frames, "sequences": len(sequences), "rows": rows}, indent=2))
    return 0


def _print(rows: list[dict], markdown: bool) -> None:
    header = ["--smooth", "--foot-lock", *(name for name, _ in COLUMNS), "out pen", ">1cm %"]
    lines = []
    for row in rows:
        values = [row[key] for _, key in COLUMNS] + [row["out_penetration_max"], row["out_penetration_share"]]
        cells = ["-" if v is None else f"{v:.1f}" for v in values]
        lines.append([row["smooth"], "on" if row["foot_lock"] else "off", *cells])
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * 2 + "---:|" * (len(header) - 2))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    for line in [header, *lines]:
        print("  ".join(str(x).rjust(w) for x, w in zip(line, widths)))


if __name__ == "__main__":
    raise SystemExit(main())
