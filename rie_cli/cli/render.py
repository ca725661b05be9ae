"""`rie render`: draw one sequence's 2D input beside its predicted and true 3D poses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rie_cli.progress import frame_progress
from rie_cli.atomic import check_writable
from rie_cli.cli.common import (AllowUnsafeLoadOption, DeviceOption, FootLockOption, ForceOption, SmoothBetaOption,
                                SmoothMinCutoffOption, SmoothOption, SmoothOrderOption, SmoothWindowOption, cli_errors,
                                TtaOption, console, make_smoothing, names)
from rie_cli.render_dataset import render_dataset_sequence

HELP = """Render one sequence as an animation (.gif, .mp4) or one still picture (.png with --frame).

Left: the input 2D keypoints (on the video's frames with --video, on a blank image of the \
camera's resolution otherwise), cropped to the person (--full-frame shows the whole image). Right: the predicted 3D pose and the ground truth, in world \
coordinates (trajectory restored, camera transform inverted), seen from the camera's side. The \
prediction comes from --checkpoint or from a --predictions file.

Examples:

  rie render -c ckpt.bin -d demo.h5 -k gt -s BN2-normal -a "walk 001.1" --camera 1 -o walk.gif --size 3 --limit 100

  rie render -p pred.npz -d demo.h5 -k gt -s BN2-normal -a "walk 001.1" -o walk.mp4 --downsample 2

  rie render -c ckpt.bin -d demo.h5 -k gt -s BN2-normal -a "walk 001.1" --frame 40 -o still.png

  rie render -c ckpt.bin -t traj.pt -d demo.h5 -k gt -s BN2-normal -a "walk 001.1" -o moving.gif   (moving)
"""

# The options of `rie render` (smoothing and --force: rie_cli/cli/common.py), declared
# here so that the signature reads as a list.
_DataOption = Annotated[Path, typer.Option(
    *names("--data"), help="Prepared HDF5 file (from `rie prepare-data`).")]
_SubjectOption = Annotated[str, typer.Option(
    *names("--subject"), help="Subject of the sequence, e.g. S11.")]
_ActionOption = Annotated[str, typer.Option(
    *names("--action"), help="Exact action name, e.g. 'WalkDog' or 'Walking 1'.")]
_OutOption = Annotated[Path, typer.Option(
    *names("--out"), help="Output file: .gif, .mp4, or .png with --frame.")]
_CheckpointOption = Annotated[Optional[Path], typer.Option(
    *names("--checkpoint"), help="Checkpoint to predict with (or give --predictions).")]
_PredictionsOption = Annotated[Optional[Path], typer.Option(
    *names("--predictions"), help="Predictions .npz from `rie export predictions` (camera space) or `rie predict`, "
    "instead of a checkpoint.")]
_CameraOption = Annotated[int, typer.Option(
    "--camera", help="Camera index, from 0 (the authors' --viz-camera).")]
_KeypointsOption = Annotated[str, typer.Option(
    *names("--keypoints"), help="2D keypoint source in the file, e.g. gt or cpn_ft_h36m_dbb: the 2D drawn, and "
    "with --checkpoint the 2D lifted (required, as in evaluate).")]
_SizeOption = Annotated[float, typer.Option(
    "--size", help="Height of each panel in inches (80 pixels per inch).")]
_DownsampleOption = Annotated[int, typer.Option(
    "--downsample", help="Draw every N-th frame (the output's frame rate is divided by N).")]
_LimitOption = Annotated[Optional[int], typer.Option(
    "--limit", help="Draw at most this many frames.")]
_BitrateOption = Annotated[int, typer.Option(
    "--bitrate", help="MP4 bitrate in kbit/s.")]
_FpsOption = Annotated[Optional[float], typer.Option(
    "--fps", help="Frame rate of the output (default: the data's, divided by --downsample).")]
_FrameOption = Annotated[Optional[int], typer.Option(
    "--frame", help="Write only this frame (0-based) as a still .png picture.")]
_FullFrameOption = Annotated[bool, typer.Option(
    "--full-frame", help="Show the whole camera image in the input panel instead of a fixed square around "
    "the person.")]
_NoGroundTruthOption = Annotated[bool, typer.Option(
    "--no-ground-truth", help="Do not draw the ground-truth 3D pose.")]
_VideoOption = Annotated[Optional[Path], typer.Option(
    "--video", help="Video of the sequence to draw the 2D keypoints on.")]
_VideoSkipOption = Annotated[int, typer.Option(
    "--video-skip", help="Video frames to skip before the sequence's first frame.")]
_TrajectoryOption = Annotated[Optional[Path], typer.Option(
    *names("--trajectory"), help="A trajectory model (rie train --target trajectory): place the prediction at "
    "the root it predicts and draw it moving through the scene (fixed axes for the whole clip), beside the "
    "ground truth.")]


def render(
    data: _DataOption,
    subject: _SubjectOption,
    action: _ActionOption,
    out: _OutOption,
    keypoints: _KeypointsOption,
    checkpoint: _CheckpointOption = None,
    predictions: _PredictionsOption = None,
    camera: _CameraOption = 0,
    size: _SizeOption = 6,
    downsample: _DownsampleOption = 1,
    limit: _LimitOption = None,
    bitrate: _BitrateOption = 3000,
    fps: _FpsOption = None,
    frame: _FrameOption = None,
    full_frame: _FullFrameOption = False,
    no_ground_truth: _NoGroundTruthOption = False,
    video: _VideoOption = None,
    video_skip: _VideoSkipOption = 0,
    trajectory: _TrajectoryOption = None,
    tta: TtaOption = True,
    device: DeviceOption = "cpu",
    allow_unsafe_load: AllowUnsafeLoadOption = False,
    smooth: SmoothOption = "none",
    smooth_window: SmoothWindowOption = None,
    smooth_order: SmoothOrderOption = None,
    smooth_min_cutoff: SmoothMinCutoffOption = None,
    smooth_beta: SmoothBetaOption = None,
    foot_lock: FootLockOption = False,
    force: ForceOption = False,
) -> None:
    check_writable(out, force)
    smoothing = make_smoothing(smooth, smooth_window, smooth_order, smooth_min_cutoff, smooth_beta)
    with frame_progress(console, records=True) as bar:
        task = bar.add_task("predicting", total=None)

        def on_start(frames: int, description: str) -> None:
            bar.update(task, total=frames, completed=0, description=f"rendering {description}")

        result = render_dataset_sequence(
            data, subject, action, camera, out, keypoints=keypoints, checkpoint=checkpoint,
            predictions=predictions, ground_truth=not no_ground_truth, tta=tta, device=device,
            allow_unsafe_load=allow_unsafe_load, video=video, video_skip=video_skip, size=size,
            downsample=downsample, limit=limit, bitrate=bitrate, fps=fps, frame=frame, smoothing=smoothing,
            crop=not full_frame, on_start=on_start, progress=lambda n: bar.advance(task, n), trajectory=trajectory,
            foot_lock=foot_lock,
        )
    w, h = result.frame_size
    what = "1 frame" if result.frames == 1 else f"{result.frames} frames"
    console.print(f"wrote [bold]{result.path}[/] ({result.description}, {what}, {w}x{h}, keypoints {keypoints})",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("render", help=HELP)(cli_errors(render))
