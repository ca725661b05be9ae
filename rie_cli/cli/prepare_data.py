"""`rie prepare-data`: VideoPose3D .npz files (or Human3.6M CDF files) -> one HDF5 file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from rie_cli.progress import frame_progress
from rie_cli.cli.common import cli_errors, console, names, split_list
from rie_cli.data.prepare import BvhOptions, PrepareSummary, dataset_cameras, iter_summary_rows, prepare_dataset

HELP = """Convert a dataset into one HDF5 file that every other command reads.

[b]h36m[/b] and [b]humaneva[/b] use the built-in cameras; any other NAME reads
data_3d_NAME.npz and data_2d_NAME_<source>.npz from --data-dir and needs --cameras.
[b]bvh[/b] reads every .bvh file under --bvh-dir (BVH mocap: CMU, Bandai Namco, Mixamo
skeletons), 3D only, or with --cameras also the ground-truth 2D in those cameras.

Examples:

  rie prepare-data h36m --data-dir data/h36m --out h36m.h5 --keypoints gt,cpn_ft_h36m_dbb

  rie prepare-data h36m --from-cdf /data/H36M --out h36m_gt.h5

  rie prepare-data bnmocap --data-dir data/bnmocap-demo --cameras data/bnmocap-demo/cameras_bnmocap.json --test-subjects BN2-normal --out demo.h5

  rie prepare-data bnmocap --data-dir data/bnmocap-demo --cameras novel_cameras.json --project --test-subjects BN2-normal --out novel.h5

  rie prepare-data bvh --bvh-dir mocap/ --out mocap.h5

  rie prepare-data bvh --bvh-dir cmu/ --subject cmu --test-subjects cmu --cameras cameras.json --cameras-entry h36m --camera-subject S1 --out cmu.h5
"""


def prepare_data(
    dataset: Annotated[str, typer.Argument(help="Dataset name: h36m, humaneva, or the NAME in data_3d_NAME.npz.")],
    out: Annotated[Path, typer.Option(*names("--out"), help="The HDF5 file to write (.h5).")],
    data_dir: Annotated[
        Optional[Path], typer.Option("--data-dir", help="Directory holding the VideoPose3D-style .npz files.")
    ] = None,
    from_cdf: Annotated[
        Optional[Path],
        typer.Option("--from-cdf", help="h36m only: directory of the original S*/MyPoseFeatures/D3_Positions/*.cdf "
                     "files; writes the 3D and ground-truth 2D projected through the cameras (needs cdflib)."),
    ] = None,
    keypoints: Annotated[
        Optional[str],
        typer.Option(*names("--keypoints"), help="Comma-separated 2D sources to include, e.g. gt,cpn_ft_h36m_dbb "
                     "(default: every data_2d_NAME_<source>.npz found)."),
    ] = None,
    cameras: Annotated[
        Optional[Path],
        typer.Option("--cameras", help="Cameras JSON file (schema of cameras.json); required for datasets "
                     "other than h36m and humaneva, optional for those (replaces the built-in cameras)."),
    ] = None,
    train_subjects: Annotated[
        Optional[str],
        typer.Option("--train-subjects", help="Comma-separated training subjects recorded in the file "
                     "(default: h36m S1,S5,S6,S7,S8; humaneva Train/*; others: all not in --test-subjects)."),
    ] = None,
    test_subjects: Annotated[
        Optional[str],
        typer.Option("--test-subjects", help="Comma-separated test subjects recorded in the file "
                     "(default: h36m S9,S11; humaneva Validate/*; required for other datasets)."),
    ] = None,
    project: Annotated[
        bool,
        typer.Option("--project", help="Write the 2D source gt by projecting the 3D through --cameras instead of "
                     "reading 2D files: a test set in cameras the data was not recorded with (the file needs "
                     "intrinsics and, for every subject, extrinsics; docs/training.md)."),
    ] = False,
    cameras_entry: Annotated[Optional[str], typer.Option(
        "--cameras-entry", help="Which dataset of the --cameras file (default: the one named like DATASET, or the "
        "file's only one), e.g. h36m in cameras.json.")] = None,
    bvh_dir: Annotated[Optional[Path], typer.Option(
        "--bvh-dir", help="bvh: the folder of .bvh files; DIR/SUBJECT/ACTION.bvh, files directly in DIR belong "
        "to --subject.")] = None,
    fps: Annotated[Optional[float], typer.Option(
        "--fps", help="bvh: frames per second of the written file; every clip is resampled to it (default 50).")] = None,
    bvh_units: Annotated[Optional[str], typer.Option(
        "--units", help="bvh: length unit of the files: m, cm, mm, in, cmu (CMU's 1/0.45 inch) or auto (default: "
        "told from the leg length).")] = None,
    bvh_up: Annotated[Optional[str], typer.Option(
        "--up", help="bvh: up axis of the files: y, z or auto (default: told from the motion).")] = None,
    subject: Annotated[Optional[str], typer.Option(
        *names("--subject"), help="bvh: subject name of the files directly in --bvh-dir (default: the folder's name).")] = None,
    camera_subject: Annotated[Optional[str], typer.Option(
        "--camera-subject", help="bvh with --cameras: whose extrinsics in the cameras file place the cameras for "
        "every BVH subject (default: the subject's own, or the file's only set), e.g. S1.")] = None,
    skip_unmapped: Annotated[bool, typer.Option(
        "--skip-unmapped", help="bvh: convert the files whose skeleton maps to Human3.6M-17 and list the others "
        "(default: refuse them all, one line per file).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the output file if it already exists "
                                        "(refused otherwise).")] = False,
) -> None:
    # The cameras first: a cameras error is then reported before any progress is shown.
    camera_set = dataset_cameras(dataset, cameras, cameras_entry)
    given = {"fps": fps, "units": bvh_units, "up": bvh_up, "subject": subject, "camera_subject": camera_subject,
             "skip_unmapped": skip_unmapped or None}
    bvh = BvhOptions(**{k: v for k, v in given.items() if v is not None}) if any(
        v is not None for v in given.values()) else None
    with frame_progress(console, unit="sequences", records=True) as bar:
        task = bar.add_task("converting", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"converting {label}")

        summary = prepare_dataset(
            dataset, out, data_dir=data_dir, from_cdf=from_cdf, keypoints=split_list(keypoints), cameras=camera_set,
            train_subjects=split_list(train_subjects), test_subjects=split_list(test_subjects), force=force,
            progress=progress, project=project, bvh_dir=bvh_dir, bvh=bvh,
        )
    _print_summary(summary)


def _print_summary(summary: PrepareSummary) -> None:
    table = Table(title=f"{summary.dataset}: {summary.num_joints} joints, {summary.fps:g} fps, "
                        f"keypoint sources {', '.join(summary.sources) or 'none (3D only)'}")
    for column, justify in (("subject", "left"), ("split", "left"), ("actions", "right"), ("frames", "right")):
        table.add_column(column, justify=justify)
    for row in iter_summary_rows(summary):
        table.add_row(*row)
    table.add_section()
    table.add_row("total", "", str(summary.total_actions), f"{summary.total_frames:,}")
    console.print(table)
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"wrote [bold]{summary.out}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("prepare-data", help=HELP)(cli_errors(prepare_data))
