"""`rie export predictions` and `rie export model`: results and models for other programs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rie_cli.progress import frame_progress
from rie_cli.atomic import check_writable
from rie_cli.cli.common import (AllowUnsafeLoadOption, DeviceOption, FootLockOption, ForceOption, HelperJointsOption,
                                LevelOption, TtaOption,
                                SmoothBetaOption, SmoothMinCutoffOption, SmoothOption, SmoothOrderOption,
                                SmoothWindowOption, UnitsOption, UpOption, cli_errors, console, make_smoothing,
                                names, split_list)
from rie_cli.bvh import export_bvh
from rie_cli.export import export_model, export_predictions

export_app = typer.Typer(
    name="export",
    help="Write predictions (.npz/.csv/.json), motion (.bvh) or the model (.pt2/.onnx) for use outside rie.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

PREDICTIONS_HELP = """Predict the 3D poses of every selected sequence and camera and write them to a file.

The file type follows --out's suffix: .npz (VideoPose3D nesting: subject -> action -> list of \
per-camera (N, J, 3) arrays), .csv or .json; see docs/export.md. Poses are in camera space \
(metres, root-relative as predicted), or in world space with --world. They are the poses `rie \
evaluate` scores.

Example:

  rie export predictions -c ckpt.bin -d demo.h5 -k gt --out pred.npz
"""

MODEL_HELP = """Export the evaluation model as a torch.export program (.pt2) or an ONNX file.

The exported model takes whole sequences: (batch, frames, joints, 2) normalised 2D keypoints -> \
(batch, frames, joints, 3) poses, every frame from its own edge-padded window, with flip \
augmentation unless --no-tta; batch and frames are dynamic. The file is checked against the \
eager model at another batch and length (tolerance 1e-4). ONNX needs the export extra: pip \
install -e ".\\[export]" in the rie clone. See docs/export.md.

Examples:

  rie export model -c ckpt.bin --format onnx --out rie.onnx

  rie export model -c ckpt.bin --format pt2 --out rie.pt2 --no-tta
"""


def predictions(
    checkpoint: Annotated[Path, typer.Option(*names("--checkpoint"), help="Checkpoint to predict with.")],
    data: Annotated[Path, typer.Option(*names("--data"), help="Prepared HDF5 file (from `rie prepare-data`).")],
    out: Annotated[Path, typer.Option(*names("--out"), help="Output file: .npz, .csv or .json.")],
    keypoints: Annotated[str, typer.Option(*names("--keypoints"), help="2D keypoint source in the file, e.g. gt "
                                           "or cpn_ft_h36m_dbb (required, as in evaluate).")],
    subjects: Annotated[
        Optional[str], typer.Option(*names("--subjects"), help="Comma-separated subjects (default: the file's test "
                                    "subjects).")
    ] = None,
    actions: Annotated[
        Optional[str], typer.Option(*names("--actions"), help="Comma-separated action prefixes (default: all).")
    ] = None,
    world: Annotated[
        bool, typer.Option("--world", help="World coordinates: add the ground-truth trajectory and undo the camera "
                           "transform.")
    ] = False,
    trajectory: Annotated[
        Optional[Path], typer.Option(*names("--trajectory"), help="A trajectory model (rie train --target trajectory): "
                                     "add the root it predicts and bring the poses to world coordinates; the "
                                     "camera-space roots are stored as 'trajectory' (.npz, .json).")
    ] = None,
    tta: TtaOption = True,
    batch_size: Annotated[int, typer.Option(*names("--batch-size"), help="Windows per forward pass.")] = 1024,
    device: DeviceOption = "cpu",
    allow_unsafe_load: AllowUnsafeLoadOption = False,
    smooth: SmoothOption = "none",
    smooth_window: SmoothWindowOption = None,
    smooth_order: SmoothOrderOption = None,
    smooth_min_cutoff: SmoothMinCutoffOption = None,
    smooth_beta: SmoothBetaOption = None,
    level: LevelOption = True,
    foot_lock: FootLockOption = False,
    force: ForceOption = False,
) -> None:
    check_writable(out, force)
    smoothing = make_smoothing(smooth, smooth_window, smooth_order, smooth_min_cutoff, smooth_beta)
    with frame_progress(console, records=True) as bar:
        task = bar.add_task("predicting frames", total=None)
        result = export_predictions(
            checkpoint, data, keypoints, out, subjects=split_list(subjects), actions=split_list(actions),
            world=world, tta=tta, batch_size=batch_size, device=device,
            allow_unsafe_load=allow_unsafe_load, trajectory=trajectory, smoothing=smoothing, level=level,
            foot_lock=foot_lock,
            on_start=lambda total: bar.update(task, total=total),
            progress=lambda n: bar.advance(task, n),
        )
    console.print(
        f"wrote [bold]{result.path}[/]: {result.sequences} sequences, {result.frames:,} frames, "
        f"{result.space} space, keypoints {keypoints} (subjects {', '.join(result.subjects)})",
        highlight=False,
        soft_wrap=True,
    )


def model(
    checkpoint: Annotated[Path, typer.Option(*names("--checkpoint"), help="Checkpoint to export.")],
    fmt: Annotated[str, typer.Option(*names("--format"), help="pt2 (torch.export program) or onnx.")],
    out: Annotated[Path, typer.Option(*names("--out"), help="Output file: .pt2 or .onnx, matching --format.")],
    tta: TtaOption = True,
    allow_unsafe_load: AllowUnsafeLoadOption = False,
    force: ForceOption = False,
) -> None:
    check_writable(out, force)
    with console.status(f"exporting {checkpoint.name} to {fmt}"):
        result = export_model(checkpoint, out, fmt, tta=tta, allow_unsafe_load=allow_unsafe_load)
    console.print(
        f"checked at input {tuple(result.check_shape)}: largest difference to the eager model "
        f"{result.max_abs_diff:.3g}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"wrote [bold]{result.path}[/] ({result.format}, receptive field {result.receptive_field}, "
        f"flip augmentation {'on' if result.tta else 'off'})",
        highlight=False,
        soft_wrap=True,
    )


BVH_HELP = """Write one predicted sequence as a BVH motion file for Blender, Maya, Unity or a game engine.

Reads a predictions .npz (from `rie predict` or `rie export predictions`; choose the sequence with \
--subject/--action/--camera where the file holds several). The skeleton is the data's own \
(Human3.6M-17 or HumanEva-15) in a T-pose, bone lengths the sequence's medians; the root moves \
where the file has a trajectory or absolute poses, else it stays fixed with the feet on the floor. \
Conventions (axes, joint names, rotation orders): docs/export.md.

Examples:

  rie export bvh --predictions clip_3d.npz --out clip.bvh --smooth savgol

  rie export bvh --predictions pred.npz --subject BN2-normal --action "walk 001.1" --camera 0 --out walk.bvh --units cm
"""


def bvh(
    predictions: Annotated[Path, typer.Option(*names("--predictions"), help="Predictions .npz from `rie predict` or "
                                              "`rie export predictions`.")],
    out: Annotated[Path, typer.Option(*names("--out"), help="Output .bvh file.")],
    subject: Annotated[Optional[str], typer.Option(*names("--subject"), help="Subject of the sequence (where the file "
                                                   "holds several).")] = None,
    action: Annotated[Optional[str], typer.Option(*names("--action"), help="Action of the sequence (where the file "
                                                  "holds several).")] = None,
    camera: Annotated[Optional[int], typer.Option("--camera", help="Camera index of the sequence (where the file "
                                                  "holds several).")] = None,
    units: UnitsOption = "m",
    up: UpOption = "y",
    helper_joints: HelperJointsOption = True,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frame rate (default: the one the file "
                                                 "records).")] = None,
    smooth: SmoothOption = "none",
    smooth_window: SmoothWindowOption = None,
    smooth_order: SmoothOrderOption = None,
    smooth_min_cutoff: SmoothMinCutoffOption = None,
    smooth_beta: SmoothBetaOption = None,
    level: LevelOption = True,
    foot_lock: FootLockOption = False,
    force: ForceOption = False,
) -> None:
    check_writable(out, force)
    smoothing = make_smoothing(smooth, smooth_window, smooth_order, smooth_min_cutoff, smooth_beta)
    result = export_bvh(predictions, out, subject=subject, action=action, camera=camera, units=units, up=up,
                        fps=fps, smoothing=smoothing, helper_joints=helper_joints, level=level,
                        foot_lock=foot_lock)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(
        f"wrote [bold]{result.path}[/]: {result.label}, {result.frames:,} frames at {result.fps:g} fps, "
        f"{result.joints} joints, {result.root} root, {result.space} axes, smoothing {result.smoothing}"
        + ("" if result.contacts is None else f", feet locked ({result.contacts:,} frames with a planted foot)"),
        highlight=False,
        soft_wrap=True,
    )


export_app.command("predictions", help=PREDICTIONS_HELP)(cli_errors(predictions))
export_app.command("bvh", help=BVH_HELP)(cli_errors(bvh))
export_app.command("model", help=MODEL_HELP)(cli_errors(model))


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
