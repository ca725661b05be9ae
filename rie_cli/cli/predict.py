"""`rie predict`: lift one's own 2D keypoints (a detector's output, or a video's) to 3D poses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from rie_cli.progress import frame_progress
from rie_cli.atomic import check_writable
from rie_cli.cli.common import (AllowUnsafeLoadOption, DeviceOption, FootLockOption, ForceOption, HelperJointsOption,
                                LevelOption, TtaOption,
                                SmoothBetaOption, SmoothMinCutoffOption, SmoothOption, SmoothOrderOption,
                                SmoothWindowOption, UnitsOption, UpOption, cli_errors, console, make_smoothing,
                                names)
from rie_cli.devices import PRECISION_HELP
from rie_cli.errors import RieError
from rie_cli.keypoint_formats import FORMATS, LAYOUTS
from rie_cli.lifting import DEFAULT_MIN_SCORE
from rie_cli.predict_video import VideoInput
from rie_cli.predict import (KeypointInput, ModelOptions, MotionOptions, OutputOptions, PredictOptions,
                              PredictResult, predict_keypoints)

HELP = """Lift the 2D keypoints of your own video to 3D poses (camera space, metres, root-relative).

Reads a .npy/.npz array (frames, joints, 2|3) in pixels, VideoPose3D's custom-video .npz, \
MMPose's JSON predictions or a folder of OpenPose JSON files; COCO-17 keypoints are mapped \
to Human3.6M-17; missing and low-confidence points are filled by interpolation over time. \
Every frame is predicted from its own edge-padded window with flip augmentation, as in \
`rie evaluate`. With --trajectory (a trajectory model) the poses are placed where the person is: camera space, or world space with --cameras. See docs/predict.md for the formats, the COCO mapping and the output file.

With --video instead of --keypoints, a 2D detector (MediaPipe Pose, offline; install it with \
pip install -e ".\\[video]" in the clone) finds one person in every frame first; --render then draws on the \
video's own frames.

Examples:

  rie predict -c ckpt.bin --video clip.mp4 --out video_3d.npz --bvh video.bvh --render video_3d.mp4 \
--save-keypoints video_2d.npz

  rie predict -c ckpt.bin --keypoints clip.npy --width 1920 --height 1080 --out clip_3d.npz

  rie predict -c ckpt.bin --keypoints openpose_json/ --width 1280 --height 720 --out clip2_3d.npz --render clip2.gif

  rie predict -c ckpt.bin --keypoints data_2d_custom_myvideos.npz --video-name clip1 --out clip1_3d.npz

  rie predict -c ckpt.bin --trajectory traj.pt --keypoints clip.npy --width 1920 --height 1080 \
--out clip_placed.npz --render clip_placed.gif
"""

# The options of `rie predict` (the smoothing, BVH and --force ones are shared:
# rie_cli/cli/common.py), declared here so that the signature reads as a list.
_CheckpointOption = Annotated[Path, typer.Option(
    *names("--checkpoint"), help="Checkpoint to predict with (Human3.6M-17 model: this project's, the authors' "
    "or VideoPose3D's).")]
_KeypointsOption = Annotated[Optional[Path], typer.Option(
    *names("--keypoints"), help="2D keypoints: .npy/.npz/.json file, or a folder of per-frame JSON files "
    "(or give --video).")]
_VideoOption = Annotated[Optional[Path], typer.Option(
    "--video", help="A video file instead of --keypoints: run the 2D detector (MediaPipe Pose, one person; "
    'pip install -e ".\\[video]" in the clone) on every frame, then lift. Frame size, rate and rotation come '
    "from the file.")]
_MaxFramesOption = Annotated[Optional[int], typer.Option(
    "--max-frames", help="With --video: only the first N frames.")]
_SaveKeypointsOption = Annotated[Optional[Path], typer.Option(
    "--save-keypoints", help="With --video: also save the detections as a keypoint .npz that --keypoints "
    "reads (detect once, lift many times).")]
_OutOption = Annotated[Path, typer.Option(
    *names("--out"), help="Output .npz (an existing file is replaced only with --force).")]
_WidthOption = Annotated[Optional[int], typer.Option(
    "--width", help="Image width in pixels (needed unless the file records it; overrides the file).")]
_HeightOption = Annotated[Optional[int], typer.Option(
    "--height", help="Image height in pixels (needed unless the file records it; overrides the file).")]
_FormatOption = Annotated[str, typer.Option(
    *names("--format"), help=f"Input format: {', '.join(FORMATS)}. h36m and coco are arrays in that joint order; "
    "auto decides from the file.")]
_LayoutOption = Annotated[str, typer.Option(
    "--layout", help=f"Joint order of the keypoints: {', '.join(LAYOUTS)} (auto: what the file says, else "
    "worked out from the pose).")]
_VideoNameOption = Annotated[Optional[str], typer.Option(
    "--video-name", help="The video to lift from a VideoPose3D custom .npz holding several.")]
_MinScoreOption = Annotated[float, typer.Option(
    "--min-score", help="Keypoints scored below this count as missing and are filled in.")]
_BatchSizeOption = Annotated[int, typer.Option(
    *names("--batch-size"), help="Windows per forward pass.")]
_PrecisionOption = Annotated[str, typer.Option("--precision", help=f"{PRECISION_HELP}.")]
_RenderOption = Annotated[Optional[Path], typer.Option(
    "--render", help="Also draw the input and the prediction (upright, fixed view) to this .gif or .mp4.")]
_FpsOption = Annotated[Optional[float], typer.Option(
    "--fps", help="Frame rate of the video (stored in the output; sets the --render and BVH timing). "
    "Default: the video's with --video, else the keypoint file's 'fps', else 50.")]
_TrajectoryOption = Annotated[Optional[Path], typer.Option(
    *names("--trajectory"), help="A trajectory model (rie train --target trajectory): place the poses at the "
    "root it predicts (camera space; world space with --cameras extrinsics) and store it as 'trajectory'.")]
_CamerasOption = Annotated[Optional[Path], typer.Option(
    "--cameras", help="Cameras file (docs/hdf5-format.md) with this video's camera: with --trajectory, its "
    "extrinsics bring the poses to world coordinates; its resolution is the default --width/--height.")]
_CameraOption = Annotated[Optional[str], typer.Option(
    "--camera", help="The camera in --cameras: index from 0, or id.")]
_CameraSubjectOption = Annotated[Optional[str], typer.Option(
    "--camera-subject", help="Whose extrinsics to take where --cameras has them for several subjects.")]
_StreamOption = Annotated[bool, typer.Option(
    "--stream", help="Feed the frames one by one through the streaming API, as if they arrived live, and "
    "print the latency per frame (see docs/api.md for how gaps are filled then).")]
_BvhOption = Annotated[Optional[Path], typer.Option(
    "--bvh", help="Also write the motion as a BVH file for animation tools (docs/export.md, BVH); with several "
    "people, one per person: put {person} in the name ('clip_{person}.bvh').")]
_PersonOption = Annotated[Optional[str], typer.Option(
    "--person", help="Files with several people per frame: lift person N (the file's track id, else rie's "
    "tracker's number; the output lists them) or 'all' (one sequence each in the .npz). Default: the most "
    "confident person in each frame.")]


def predict(
    checkpoint: _CheckpointOption,
    out: _OutOption,
    keypoints: _KeypointsOption = None,
    video: _VideoOption = None,
    max_frames: _MaxFramesOption = None,
    save_keypoints: _SaveKeypointsOption = None,
    width: _WidthOption = None,
    height: _HeightOption = None,
    fmt: _FormatOption = "auto",
    layout: _LayoutOption = "auto",
    video_name: _VideoNameOption = None,
    min_score: _MinScoreOption = DEFAULT_MIN_SCORE,
    tta: TtaOption = True,
    batch_size: _BatchSizeOption = 1024,
    device: DeviceOption = "cpu",
    precision: _PrecisionOption = "fp32",
    render: _RenderOption = None,
    fps: _FpsOption = None,
    trajectory: _TrajectoryOption = None,
    cameras: _CamerasOption = None,
    camera: _CameraOption = None,
    camera_subject: _CameraSubjectOption = None,
    stream: _StreamOption = False,
    allow_unsafe_load: AllowUnsafeLoadOption = False,
    bvh: _BvhOption = None,
    person: _PersonOption = None,
    units: UnitsOption = "m",
    helper_joints: HelperJointsOption = True,
    up: UpOption = "y",
    smooth: SmoothOption = "none",
    smooth_window: SmoothWindowOption = None,
    smooth_order: SmoothOrderOption = None,
    smooth_min_cutoff: SmoothMinCutoffOption = None,
    smooth_beta: SmoothBetaOption = None,
    level: LevelOption = True,
    foot_lock: FootLockOption = False,
    force: ForceOption = False,
) -> None:
    if video is None:
        _only_with_video(max_frames=max_frames, save_keypoints=save_keypoints)
        if keypoints is None:
            raise RieError("give the 2D input: --keypoints FILE (a detector's output) or --video CLIP")
        source = KeypointInput(keypoints, format=fmt, layout=layout, video_name=video_name, min_score=min_score,
                               width=width, height=height, fps=fps, person=person)
    else:
        _not_with_video(keypoints=keypoints, width=width, height=height, video_name=video_name,
                        format=fmt != "auto", layout=layout != "auto", person=person)
        source = VideoInput(video, max_frames=max_frames, min_score=min_score, fps=fps)
    options = PredictOptions(
        input=source,
        model=ModelOptions(checkpoint, device=device, precision=precision, tta=tta, batch_size=batch_size,
                           allow_unsafe_load=allow_unsafe_load, stream=stream),
        output=OutputOptions(out, render=render, bvh=bvh, bvh_units=units, bvh_up=up,
                             bvh_helper_joints=helper_joints, force=force, keypoints=save_keypoints),
        motion=MotionOptions(trajectory=trajectory, cameras=cameras, camera=camera, camera_subject=camera_subject,
                             level=level, foot_lock=foot_lock),
    )
    for path in options.output.paths():
        check_writable(path, force)
    options.motion.smoothing = make_smoothing(smooth, smooth_window, smooth_order, smooth_min_cutoff, smooth_beta)
    with frame_progress(console, records=True) as bar:
        tasks: list = []

        def on_phase(description: str, total: int) -> None:
            if tasks:
                bar.update(tasks[-1], visible=False)
            tasks.append(bar.add_task(f"{description} frames", total=total))

        result = predict_keypoints(options, on_phase=on_phase, progress=lambda n: bar.advance(tasks[-1], n))
    _print_result(result, save_keypoints)


def _only_with_video(**given) -> None:
    """Refuse the options that only mean something with --video."""
    for name, value in given.items():
        if value is not None:
            raise RieError(f"--{name.replace('_', '-')} works with --video only")


def _not_with_video(**given) -> None:
    """Refuse the options that describe a keypoint file, which a video's detections are not."""
    for name, value in given.items():
        if value not in (None, False):
            raise RieError(f"--{name.replace('_', '-')} does not apply to --video (the detector's keypoints, "
                           "frame size and layout come from the video; it finds one person)")


def _print_result(result: PredictResult, saved_keypoints=None) -> None:
    table = Table(title="rie predict", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("frames", f"{result.frames:,}")
    if result.people is not None:
        table.add_row("people", ", ".join(map(str, result.people)))
    table.add_row("input", f"{result.format}, {result.layout} joints, {result.width} x {result.height} px")
    if result.video is not None:
        table.add_row("person found", f"in {result.video.person_share:.1%} of frames ({result.video.detector})")
    filled = f"{result.filled_share:.1%} of points"
    if result.most_filled:
        filled += " (most: " + ", ".join(f"{name} {share:.0%}" for name, share in result.most_filled) + ")"
    table.add_row("filled in", filled)
    table.add_row("space", result.space)
    if result.root_span is not None:
        table.add_row("root moves", f"{result.root_span:.2f} m (largest extent)")
    console.print(table)
    if result.latencies is not None:
        _print_latency(result.latencies)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"wrote [bold]{result.out}[/]", highlight=False)
    if result.render is not None:
        console.print(f"wrote [bold]{result.render}[/]", highlight=False)
    for bvh in result.bvh_files:
        console.print(f"wrote [bold]{bvh}[/]", highlight=False)
    if saved_keypoints is not None:
        console.print(f"wrote [bold]{saved_keypoints}[/]", highlight=False)


def _print_latency(latencies) -> None:
    """Per-push latency of `--stream`: the time `push` took for each frame as it arrived."""
    import numpy as np

    ms = np.asarray(latencies) * 1000.0
    table = Table(title="streaming latency per frame (push)", show_header=True)
    for column in ("frames", "median", "p99", "max", "sustained"):
        table.add_column(column, justify="right")
    table.add_row(f"{len(ms):,}", f"{np.median(ms):.2f} ms", f"{np.percentile(ms, 99):.2f} ms", f"{ms.max():.2f} ms",
                  f"{1000.0 / ms.mean():,.0f} frames/s")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("predict", help=HELP)(cli_errors(predict))
