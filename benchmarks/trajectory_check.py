"""Is the trajectory model useful? Its root error against two baselines, in one run.

    python benchmarks/trajectory_check.py --data-dir path/to/bnmocap
    python benchmarks/trajectory_check.py --data-dir path/to/bnmocap --epochs 6 --json out.json

On the full bnmocap dataset (data/bnmocap-demo/README.md; train BN2-active + BN2-feminine, test BN2-normal, `noisy` 2D): prepares
the HDF5 file (into --work-dir), trains a small trajectory model with `rie train
--target trajectory`'s own code, predicts the camera-space root of every test frame
(every camera, flip TTA) and prints the mean root error (mm, over all test frames)
of
  model            the trained trajectory model;
  mean root        (a) the training set's mean camera-space root, the same for every frame;
  similar triangles (b) the root from the 2D alone: depth z = f_y * H / h, where h is the
                   person's height in the image (pixel span of the joints in y) and H an
                   assumed person height (the training set's median of z * h / f_y, i.e.
                   the height that fits the training data best; 1.70 m is printed too),
                   then x = (u - c_x) z / f_x, y = (v - c_y) z / f_y from the root's pixel
                   (u, v) and the camera intrinsics (distortion ignored).
It also prints the training speed (windows/s, the log's frames_per_s). The model
must beat both baselines: the script exits 1 otherwise.
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

from rie_cli.cameras import image_coordinates, load_cameras_file  # noqa: E402
from rie_cli.data.dataset import PoseDataset  # noqa: E402
from rie_cli.data.prepare import prepare_vp3d  # noqa: E402
from rie_cli.model.checkpoint import load_checkpoint  # noqa: E402
from rie_cli.trajectory import predict_trajectories, root_errors  # noqa: E402
from rie_cli.training import TrainOptions, train  # noqa: E402
from rie_cli.training.log import Reporter  # noqa: E402

TRAIN, TEST = ["BN2-active", "BN2-feminine"], ["BN2-normal"]
FIXED_HEIGHT = 1.70  # metres: a typical adult, for the uncalibrated variant of (b)


def prepare(data_dir: Path, out: Path) -> Path:
    if not out.exists():
        prepare_vp3d(name="bnmocap", data_dir=data_dir, out=out,
                     cameras=load_cameras_file(data_dir / "cameras_bnmocap.json"),
                     train_subjects=TRAIN, test_subjects=TEST)
    return out


def image_heights(seq) -> np.ndarray:
    """(T,) the person's height in the image: pixel span of the joints in y."""
    pixels = image_coordinates(seq.keypoints_2d, seq.camera.res_w, seq.camera.res_h)  # (T, J, 2)
    return pixels[..., 1].max(axis=1) - pixels[..., 1].min(axis=1)


def similar_triangles(seq, height: float) -> np.ndarray:
    """(T, 3) camera-space root from the 2D alone and an assumed person height (metres)."""
    cam = seq.camera
    (fx, fy), (cx, cy) = cam.focal_length, cam.center
    pixels = image_coordinates(seq.keypoints_2d[:, 0], cam.res_w, cam.res_h)  # (T, 2) root pixel
    z = fy * height / np.maximum(image_heights(seq), 1.0)
    return np.stack([(pixels[:, 0] - cx) * z / fx, (pixels[:, 1] - cy) * z / fy, z], axis=-1)


def fitted_height(sequences) -> float:
    """The person height that best explains the training set: median of z * h / f_y."""
    ratios = [s.trajectory[:, 2] * image_heights(s) / s.camera.focal_length[1] for s in sequences]
    return float(np.median(np.concatenate(ratios)))


def mean_error_mm(predictions, sequences) -> float:
    errors = np.concatenate([root_errors(p, s.trajectory) for p, s in zip(predictions, sequences)])
    return float(errors.mean() * 1000.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="the full bnmocap dataset (data_3d_bnmocap.npz, data_2d_bnmocap_noisy.npz, cameras)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/trajectory_check"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--downsample", type=int, default=16, help="keep every N-th training frame")
    parser.add_argument("--filter-widths", default="3,3,3")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64, help="small: more steps per short epoch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if not (args.data_dir / "data_3d_bnmocap.npz").exists():
        print(f"error: no bnmocap data in {args.data_dir} (give --data-dir)", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = prepare(args.data_dir, args.work_dir / "bnmocap.h5")
    run_dir = args.work_dir / f"run_{time.strftime('%Y%m%d_%H%M%S')}"
    started = time.perf_counter()
    result = train(TrainOptions(
        stage=None, target="trajectory", data=data, keypoints="noisy", checkpoint_dir=run_dir,
        epochs=args.epochs, downsample=args.downsample, batch_size=args.batch_size, lr=args.lr,
        filter_widths=tuple(int(w) for w in args.filter_widths.split(",")), channels=args.channels,
        subjects_train=TRAIN, subjects_test=TEST, evaluate=False, device="cpu",
    ), Reporter())
    train_seconds = time.perf_counter() - started
    speeds = [row["frames_per_s"] for row in result.history]

    dataset = PoseDataset(data)
    train_seqs = dataset.sequences(TRAIN, "noisy")
    test_seqs = dataset.sequences(TEST, "noisy")
    model = load_checkpoint(result.last, target="trajectory").model
    predicted = predict_trajectories(model, [s.keypoints_2d for s in test_seqs], skeleton=dataset.skeleton)
    mean_root = np.concatenate([s.trajectory for s in train_seqs]).mean(axis=0)  # (3,)
    height = fitted_height(train_seqs)
    numbers = {
        "model_mm": mean_error_mm(predicted, test_seqs),
        "mean_root_mm": mean_error_mm([np.broadcast_to(mean_root, s.trajectory.shape) for s in test_seqs],
                                      test_seqs),
        "similar_triangles_mm": mean_error_mm([similar_triangles(s, height) for s in test_seqs], test_seqs),
        "similar_triangles_1.70m_mm": mean_error_mm([similar_triangles(s, FIXED_HEIGHT) for s in test_seqs],
                                                    test_seqs),
        "assumed_height_m": height,
        "test_frames": int(sum(len(s) for s in test_seqs)),
        "train_windows_per_s": float(np.mean(speeds)),
        "train_seconds": train_seconds,
        "epochs": args.epochs, "downsample": args.downsample, "filter_widths": args.filter_widths,
        "channels": args.channels, "batch_size": args.batch_size, "threads": args.threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    print(f"trajectory model ({args.epochs} epochs, RF {result.config.receptive_field()}, "
          f"downsample {args.downsample}): {numbers['train_windows_per_s']:.0f} training windows/s, "
          f"{train_seconds:.0f} s in all")
    print(f"root error on {TEST[0]} ({numbers['test_frames']:,} frames, noisy 2D), mean over frames:")
    print(f"  trajectory model                    {numbers['model_mm']:8.1f} mm")
    print(f"  (a) training set's mean root        {numbers['mean_root_mm']:8.1f} mm")
    print(f"  (b) similar triangles, H = {height:.2f} m   {numbers['similar_triangles_mm']:8.1f} mm")
    print(f"      (similar triangles, H = {FIXED_HEIGHT:.2f} m   {numbers['similar_triangles_1.70m_mm']:8.1f} mm)")
    if args.json is not None:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    beats = numbers["model_mm"] < min(numbers["mean_root_mm"], numbers["similar_triangles_mm"])
    print("the model beats both baselines" if beats else "the model does NOT beat both baselines")
    return 0 if beats else 1


if __name__ == "__main__":
    sys.exit(main())
