"""`rie evaluate`: a checkpoint on a prepared file's test subjects, the paper's protocol."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from rie_cli.progress import frame_progress
from rie_cli.cli.common import (AllowUnsafeLoadOption, DeviceOption, FootLockOption, ForceOption, SmoothBetaOption,
                                SmoothMinCutoffOption, SmoothOption, SmoothOrderOption, SmoothWindowOption, TtaOption,
                                cli_errors, console, make_smoothing, names, split_list)
from rie_cli.devices import PRECISION_HELP
from rie_cli.evaluation import EvaluationResult, Scores, check_report_outputs, evaluate_checkpoint, write_report

HELP = (
    "Evaluate a checkpoint with the protocol of the paper (docs/evaluate.md).\n\n"
    "Every frame of the test subjects is predicted from its own edge-padded window (with flip "
    "test-time augmentation unless --no-tta), the ground-truth root is zeroed, errors are averaged "
    "over all frames of each action class, and the average over action classes is reported: "
    "P1 (MPJPE), P2 (P-MPJPE, similarity alignment without reflections), N-MPJPE (scale only) "
    "and MPJVE (velocities), in millimetres. Works with this project's checkpoints and the "
    "authors' .bin files alike. Output schema: docs/evaluate.md.\n\n"
    "Examples:\n\n"
    "  rie evaluate --checkpoint gt_pretrained.bin --data h36m.h5 --keypoints gt\n\n"
    "  rie evaluate -c runs/s3/best.pt -d demo.h5 -k gt --by-subject --json - > result.json\n\n"
    "  rie evaluate -c runs/s3/best.pt --trajectory runs/traj/best.pt -d demo.h5 -k gt   (adds root_error, "
    "abs_mpjpe)\n"
)

# The options of `rie evaluate` (smoothing and --force: rie_cli/cli/common.py), declared
# here so that the signature reads as a list.
_CheckpointOption = Annotated[Path, typer.Option(
    *names("--checkpoint"), help="Checkpoint to evaluate: this project's, or the authors' gt_pretrained.bin / "
    "cpn_pretrained.bin.")]
_DataOption = Annotated[Path, typer.Option(
    *names("--data"), help="Prepared HDF5 file (rie prepare-data).")]
_KeypointsOption = Annotated[str, typer.Option(
    *names("--keypoints"), help="2D keypoint source in the file, e.g. gt or cpn_ft_h36m_dbb.")]
_SubjectsOption = Annotated[Optional[str], typer.Option(
    *names("--subjects"), help="Comma-separated subjects (default: the file's test split, S9,S11 for "
    "Human3.6M).")]
_ActionsOption = Annotated[Optional[str], typer.Option(
    *names("--actions"), help="Comma-separated action prefixes to keep, e.g. Walk,Sit (default: all).")]
_BySubjectOption = Annotated[bool, typer.Option(
    "--by-subject", help="Also report every subject on its own.")]
_JsonOutOption = Annotated[Optional[str], typer.Option(
    "--json", help="Write the results as JSON to this file, or to stdout with '-' (then nothing else goes to "
    "stdout). Schema: docs/evaluate.md.")]
_CsvOutOption = Annotated[Optional[Path], typer.Option(
    "--csv", help="Write one row per subject and action (and averages) as CSV.")]
_BatchSizeOption = Annotated[int, typer.Option(
    *names("--batch-size"), help="Windows per forward pass, mirrored ones included.")]
_PrecisionOption = Annotated[str, typer.Option(
    "--precision", help=f"{PRECISION_HELP}. bf16 (bfloat16 weights and activations) is about 3x faster on CPUs "
    "with AVX-512 BF16 or AMX; P1/P2 move by a few tenths of a mm at most and MPJVE rises (rounding adds "
    "frame-to-frame noise). Report fp32 numbers.")]
_Tf32Option = Annotated[bool, typer.Option(
    "--tf32", help="CUDA: float32 matrix products in TF32 (faster; results no longer match the CPU's to "
    "float rounding). Off by default.")]
_TrajectoryOption = Annotated[Optional[Path], typer.Option(
    *names("--trajectory"), help="A trajectory model (rie train --target trajectory): also report root_error "
    "(its distance from the true camera-space root) and abs_mpjpe (pose + trajectory against the true "
    "camera-space joints), in mm.")]


def evaluate(
    checkpoint: _CheckpointOption,
    data: _DataOption,
    keypoints: _KeypointsOption,
    subjects: _SubjectsOption = None,
    actions: _ActionsOption = None,
    tta: TtaOption = True,
    by_subject: _BySubjectOption = False,
    json_out: _JsonOutOption = None,
    csv_out: _CsvOutOption = None,
    batch_size: _BatchSizeOption = 1024,
    device: DeviceOption = "cpu",
    precision: _PrecisionOption = "fp32",
    tf32: _Tf32Option = False,
    trajectory: _TrajectoryOption = None,
    allow_unsafe_load: AllowUnsafeLoadOption = False,
    smooth: SmoothOption = "none",
    smooth_window: SmoothWindowOption = None,
    smooth_order: SmoothOrderOption = None,
    smooth_min_cutoff: SmoothMinCutoffOption = None,
    smooth_beta: SmoothBetaOption = None,
    foot_lock: FootLockOption = False,
    force: ForceOption = False,
) -> None:
    check_report_outputs(json_out, csv_out, force)  # before a long evaluation, not after it
    smoothing = make_smoothing(smooth, smooth_window, smooth_order, smooth_min_cutoff, smooth_beta)
    started = time.perf_counter()
    with frame_progress(console, records=True) as bar:
        task = bar.add_task("loading", total=None)
        result = evaluate_checkpoint(
            checkpoint, data, keypoints,
            subjects=split_list(subjects), actions=split_list(actions), tta=tta, by_subject=by_subject,
            batch_size=batch_size, device=device, precision=precision, tf32=tf32,
            allow_unsafe_load=allow_unsafe_load, smoothing=smoothing,
            on_start=lambda total: bar.update(task, total=total, description="predicting frames"),
            progress=lambda n: bar.advance(task, n), trajectory=trajectory, foot_lock=foot_lock,
        )
    for message in result.messages:
        console.print(f"[dim]{message}[/]", highlight=False)
    seconds = time.perf_counter() - started
    console.print(f"[dim]evaluated {result.average.frames:,} camera-frames (a frame once per camera) in "
                  f"{seconds:.1f} s ({result.average.frames / seconds:,.0f} frames/s, loading included)[/]",
                  highlight=False)
    _print_tables(result)
    for path in write_report(result, json_out=json_out, csv_out=csv_out):
        console.print(f"wrote [bold]{path}[/]", highlight=False)


def _print_tables(result: EvaluationResult) -> None:
    settings = f"keypoints {result.keypoints}, {'flip TTA' if result.tta else 'no TTA'}, {result.precision}"
    if result.smoothing and result.smoothing != "none":
        settings += f", smoothed: {result.smoothing}"
    if result.foot_lock:
        settings += ", foot lock"
    console.print(_table(f"{', '.join(result.subjects or [])} ({settings})", result.actions, result.average))
    if result.average.world is not None:
        console.print(_world_table("world motion", result.actions, result.average))
    for subject, actions in (result.by_subject or {}).items():
        console.print(_table(subject, actions, result.subject_average(subject)))
        if result.average.world is not None:
            console.print(_world_table(f"{subject}: world motion", actions, result.subject_average(subject)))


def _world_table(title: str, actions: dict[str, Scores], average: Scores) -> Table:
    """The world-motion metrics (rie_cli.world_metrics), each in its own unit."""
    from rie_cli.world_metrics import UNITS, WORLD_METRICS

    table = Table(title=title, title_justify="left")
    table.add_column("action")
    for name in WORLD_METRICS:
        table.add_column(f"{name} ({UNITS[name]})", justify="right")
    for name, scores in [*actions.items(), ("[bold]average[/]", average)]:
        if scores is average:
            table.add_section()
        table.add_row(name, *("-" if v != v else f"{v:.2f}" for v in scores.world.values()))
    table.caption = "docs/evaluate.md, World motion: definitions; - = undefined (RTE of motion in place)"
    return table


def _table(title: str, actions: dict[str, Scores], average: Scores) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("action")
    trajectory = average.root_error is not None
    for name in ("P1 MPJPE", "P2 P-MPJPE", "N-MPJPE", "MPJVE") + (("root error", "abs MPJPE") if trajectory else ()):
        table.add_column(name, justify="right")
    table.add_column("frames", justify="right")

    def cells(s: Scores) -> list[str]:
        values = [s.mpjpe, s.p_mpjpe, s.n_mpjpe, s.mpjve] + ([s.root_error, s.abs_mpjpe] if trajectory else [])
        return [("-" if v != v else f"{v:.1f}") for v in values] + [f"{s.frames:,}"]

    for name, scores in actions.items():
        table.add_row(name, *cells(scores))
    table.add_section()
    table.add_row("[bold]average[/]", *cells(average))
    table.caption = "errors in mm; average = mean over action classes; frames: camera-frames (once per camera)"
    return table


def register(app: typer.Typer) -> None:
    app.command("evaluate", help=HELP)(cli_errors(evaluate))
