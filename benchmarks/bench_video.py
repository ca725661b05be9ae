"""End to end: a video file to a BVH file with `rie predict --video`, frames per second,
and where the time goes (the detector's share, lifting's share).

Runs `predict_keypoints` (the code of `rie predict --video CLIP --bvh OUT.bvh`) on each
clip, timing its phases through the progress hooks, then, in the same process, the
frames alone (decoding through the reader, no detector) for comparison:

    python benchmarks/bench_video.py                                    # the lab clip, authors-size model
    python benchmarks/bench_video.py --clips ../shared/data/video/*.mp4 -c runs/demo/stage3/best.pt

phases: start (importing MediaPipe, loading its graph, opening the video), detect
(decoding + the detector, frame by frame), load (the lifting model), lift (predicting
every frame, flip TTA, smoothing none) and write (.npz and BVH). The default checkpoint
is ../shared/golden/ckpt_cpn512.bin: the shape of the authors' released CPN model
(receptive field 243, 53 M parameters), random weights, so the cost is that of real
footage lifted with it. Figures vary with the machine's load: compare the shares and
the ratios within one run, and read the CPU capability and load printed with them.
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


def end_to_end(clip: Path, checkpoint: Path, workdir: Path, max_frames: int | None) -> dict:
    """Run `rie predict --video CLIP --bvh` once; the phase boundaries from its hooks."""
    marks: dict[str, float] = {}
    phase = [""]

    def on_phase(name: str, total) -> None:
        phase[0] = name
        marks.setdefault(name, time.perf_counter())

    def progress(n: int) -> None:
        marks[f"{phase[0]} end"] = time.perf_counter()

    options = PredictOptions(VideoInput(clip, max_frames=max_frames), ModelOptions(checkpoint),
                             OutputOptions(workdir / f"{clip.stem}.npz", bvh=workdir / f"{clip.stem}.bvh"))
    started = time.perf_counter()
    result = predict_keypoints(options, on_phase=on_phase, progress=progress)
    ended = time.perf_counter()
    return {
        "frames": result.frames, "person": result.video.person_share, "total": ended - started,
        "start": marks["detecting"] - started, "detect": marks["detecting end"] - marks["detecting"],
        "load": marks["predicting"] - marks["detecting end"], "lift": marks["predicting end"] - marks["predicting"],
        "write": ended - marks["predicting end"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", type=Path, default=[SHARED / "data" / "video" / "lab_single_cam01.mp4"])
    parser.add_argument("-c", "--checkpoint", type=Path, default=SHARED / "golden" / "ckpt_cpn512.bin")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()

    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, load average before {os.getloadavg()[0]:.1f}; checkpoint {args.checkpoint.name}")
    header = (f"{'clip':<22}{'frames':>7}{'person':>8}{'e2e fps':>9}{'decode fps':>11}{'start s':>9}"
              f"{'detect':>8}{'load':>7}{'lift':>7}{'write':>7}")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            run = end_to_end(clip, args.checkpoint, Path(tmp), args.max_frames)
            decode = decode_only(clip, args.max_frames)
            share = {k: run[k] / run["total"] for k in ("detect", "load", "lift", "write")}
            print(f"{clip.name:<22}{run['frames']:>7}{run['person']:>8.0%}{run['frames'] / run['total']:>9.1f}"
                  f"{1 / decode:>11.1f}{run['start']:>9.2f}{share['detect']:>8.0%}{share['load']:>7.0%}"
                  f"{share['lift']:>7.0%}{share['write']:>7.0%}")
            print(f"{'':<22}detector alone (with decoding) {run['frames'] / run['detect']:.1f} frames/s, "
                  f"lifting alone {run['frames'] / run['lift']:.0f} frames/s, total {run['total']:.1f} s")
    print(f"load average after {os.getloadavg()[0]:.1f} (2 cores: above 2, others were running too)")


if __name__ == "__main__":
    main()
