"""End to end: a video file to a BVH file with `rie predict --video`, frames per second,
and where the time goes (the detector's share, lifting's share).

Runs `predict_keypoints` (the code of `rie predict --video CLIP --bvh OUT.bvh`) on each
clip, timing its phases through the progress hooks, then, in the same process, the
frames alone (decoding through the reader, no detector) for comparison:

    python benchmarks/bench_video.py                                    # the lab clip, authors-size model
    python benchmarks/bench_video.py --clips ../shared/data/video/*.mp4 -c runs/demo/stage3/best.pt

phases: start (importing MediaPipe, loading its graph, opening the video), detect
(decoding + the detector, frame by frame, while another thread loads and folds the
lifting model), load (what is left of that after the last frame, and the clip made
ready to lift), lift (predicting every frame, flip TTA, smoothing none) and write (.npz
and BVH). The default checkpoint
is ../shared/golden/ckpt_cpn512.bin: the shape of the authors' released CPN model
(receptive field 243, 53 M parameters), random weights, so the cost is that of real
footage lifted with it. Wall-clock figures vary with the machine's load: compare the
shares and the ratios within one run, and read the CPU capability and load printed with
them. The CPU seconds (this process's threads and the ffmpeg decoder's) are steadier:
"CPU-bound fps" is frames / (CPU seconds / cores), what the run would reach on a quiet
machine if its work spread over every core.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from rie_cli.predict import ModelOptions, OutputOptions, PredictOptions, predict_keypoints
from rie_cli.predict_video import VideoInput
from rie_cli.video.reader import VideoReader

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def decode_only(clip: Path, max_frames: int | None) -> float:
    """Seconds per frame to read the frames (ffmpeg decode + pipe), nothing else."""
    started, count = time.perf_counter(), 0
    for _ in VideoReader(clip, max_frames=max_frames):
        count += 1
    return (time.perf_counter() - started) / count


def cpu_seconds() -> float:
    """CPU time so far of this process (all threads) and its finished children (ffmpeg)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def end_to_end(clip: Path, checkpoint: Path, workdir: Path, max_frames: int | None, precision: str,
               tta: bool) -> dict:
    """Run `rie predict --video CLIP --bvh` once; each phase's wall and CPU seconds, cut
    at the boundaries its hooks show."""
    marks: dict[str, tuple[float, float]] = {}
    phase = [""]

    def now() -> tuple[float, float]:
        return time.perf_counter(), cpu_seconds()

    def on_phase(name: str, total) -> None:
        phase[0] = name
        marks.setdefault(name, now())

    def progress(n: int) -> None:
        marks[f"{phase[0]} end"] = now()

    options = PredictOptions(VideoInput(clip, max_frames=max_frames),
                             ModelOptions(checkpoint, precision=precision, tta=tta),
                             OutputOptions(workdir / f"{clip.stem}.npz", bvh=workdir / f"{clip.stem}.bvh"))
    marks["begin"] = now()
    result = predict_keypoints(options, on_phase=on_phase, progress=progress)
    marks["end"] = now()
    bounds = ["begin", "detecting", "detecting end", "predicting", "predicting end", "end"]
    run = {"frames": result.frames, "person": result.video.person_share}
    for name, first, last in zip(PHASES, bounds, bounds[1:]):
        run[name] = marks[last][0] - marks[first][0]
        run[f"{name} cpu"] = marks[last][1] - marks[first][1]
    run["total"], run["total cpu"] = (marks["end"][k] - marks["begin"][k] for k in (0, 1))
    return run


PHASES = ("start", "detect", "load", "lift", "write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", type=Path, default=[SHARED / "data" / "video" / "lab_single_cam01.mp4"])
    parser.add_argument("-c", "--checkpoint", type=Path, default=SHARED / "golden" / "ckpt_cpn512.bin")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--precision", default="fp32", help="of the lifting model (rie predict --precision)")
    parser.add_argument("--no-tta", action="store_true", help="lift without flip augmentation")
    args = parser.parse_args()

    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, load average before {os.getloadavg()[0]:.1f}; checkpoint {args.checkpoint.name}, "
          f"precision {args.precision}, TTA {'off' if args.no_tta else 'on'}")
    cores = os.cpu_count() or 1
    print(f"{'clip':<22}{'frames':>7}{'person':>8}{'e2e fps':>9}{'CPU-bound fps':>14}{'decode fps':>11}  "
          + "".join(f"{name:>14}" for name in PHASES))
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            run = end_to_end(clip, args.checkpoint, Path(tmp), args.max_frames, args.precision, not args.no_tta)
            decode = decode_only(clip, args.max_frames)
            print(f"{clip.name:<22}{run['frames']:>7}{run['person']:>8.0%}{run['frames'] / run['total']:>9.1f}"
                  f"{run['frames'] / (run['total cpu'] / cores):>14.1f}{1 / decode:>11.1f}  "
                  + "".join(f"{run[n] / run['total']:>7.0%} wall" for n in PHASES))
            print(f"{'':<65}" + "".join(f"{run[n + ' cpu'] / run['total cpu']:>8.0%} CPU" for n in PHASES))
            print(f"{'':<22}total {run['total']:.1f} s wall, {run['total cpu']:.1f} CPU s; per frame: detecting "
                  f"{1000 * run['detect cpu'] / run['frames']:.1f} CPU ms, lifting (load + lift) "
                  f"{1000 * (run['load cpu'] + run['lift cpu']) / run['frames']:.1f} CPU ms")
    print(f"load average after {os.getloadavg()[0]:.1f} (2 cores: above 2, others were running too)")


if __name__ == "__main__":
    main()
