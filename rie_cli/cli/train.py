"""`rie train --stage 1|2|3`: the multi-stage training recipe of docs/method.md §3;
`rie train --target trajectory`: VideoPose3D's model of the camera-space root."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from rie_cli.cli.common import DeviceOption, cli_errors, console, fail, names, parse_filter_widths, split_list
from rie_cli.devices import PRECISION_HELP
from rie_cli.errors import RieError
from rie_cli.training import TrainOptions, TrainResult, train
from rie_cli.training.log import ConsoleReporter

HELP = """Train RIE in three stages (or the VideoPose3D baseline in one), or a trajectory model.

Stage 1 trains the part encoders, the global encoder and the decoders from scratch.
Stage 2 (--init STAGE1.pt) copies the part encoders (LocalLayer_*) and the global
encoder (GlobalInfo) from a stage-1 checkpoint, freezes them and trains the fusion
module and the decoders. As in the authors' code, the frozen encoders stay in train
mode: their BatchNorm statistics keep updating and their dropout stays on
(--frozen-eval changes that). Stage 3 (--init STAGE2.pt) fine-tunes everything.
--init also takes the authors' .bin files.

Defaults are the paper's recipe: 80/80/20 epochs, lr 1e-3/1e-3/5e-4 decayed x0.95 per
epoch, AdamW (amsgrad), batch 1024, dropout 0.2, flip augmentation, seed 4321.
Each epoch writes last.pt (and best.pt, and every --checkpoint-every epochs
epoch_NNN.pt), log.csv, log.jsonl and curves.png into --checkpoint-dir; a directory
that already holds a run needs --resume (continue it) or --force (start over).

--target trajectory trains VideoPose3D's trajectory model instead (one stage, no
--stage needed): the same network and windows, predicting the root's camera-space
position, with the MPJPE weighted by 1 / depth as loss; its logged error is the root
position error in mm. Give the checkpoint to evaluate/predict/render/export with
--trajectory.

Examples:

  rie train --stage 1 --data demo.h5 --keypoints gt --filter-widths 3,3,3 --checkpoint-dir runs/s1

  rie train --stage 2 --data demo.h5 --keypoints gt --init runs/s1/best.pt --checkpoint-dir runs/s2

  rie train --stage 3 --data demo.h5 --keypoints gt --init runs/s2/best.pt --checkpoint-dir runs/s3

  rie train --stage 1 --resume runs/s1/last.pt                    (continue an interrupted run)

  torchrun --nproc-per-node 2 -m rie_cli train --stage 1 --data demo.h5 --keypoints gt --checkpoint-dir runs/ddp

  rie train --target trajectory --data demo.h5 --keypoints gt --filter-widths 3,3,3 --checkpoint-dir runs/traj
"""

# The options of `rie train`, declared here so that the command's signature reads as
# the list of its options and its body as what it does with them.
_StageOption = Annotated[Optional[int], typer.Option(
    "--stage", help="1: from scratch; 2: fusion and decoders on frozen stage-1 encoders; 3: fine-tune "
    "everything. Required for pose models; a trajectory model has one stage.")]
_TargetOption = Annotated[Optional[str], typer.Option(
    "--target", help="pose (default): the 3D pose; trajectory: VideoPose3D's model of the root's "
    "camera-space position.")]
_DataOption = Annotated[Optional[Path], typer.Option(
    *names("--data"), help="Prepared .h5 file (rie prepare-data). With --resume, defaults to the run's file.")]
_KeypointsOption = Annotated[Optional[str], typer.Option(
    *names("--keypoints"), help="2D keypoint source in the file, e.g. gt or cpn_ft_h36m_dbb (default: the "
    "file's only source).")]
_CheckpointDirOption = Annotated[Optional[Path], typer.Option(
    *names("--checkpoint-dir"), help="Directory for the run's checkpoints and logs (one run per directory; "
    "default with --resume: the checkpoint's directory).")]
# -c means --checkpoint (a checkpoint to read) in every command; train reads none that
# way, and before the names were unified -c was its --checkpoint-dir: say so in one line.
_NoCheckpointOption = Annotated[Optional[Path], typer.Option(*names("--checkpoint"), hidden=True)]
_InitOption = Annotated[Optional[Path], typer.Option(
    "--init", help="Stage 2: a stage-1 checkpoint; stage 3: a stage-2 checkpoint (this project's .pt "
    "or the authors' .bin).")]
_ResumeOption = Annotated[Optional[Path], typer.Option(
    *names("--resume"), help="Continue an interrupted run from its last.pt (same epoch, optimizer, schedules, "
    "data order and RNG state).")]
_EpochsOption = Annotated[Optional[int], typer.Option(
    *names("--epochs"), help="Total epochs (default 80/80/20 for stages 1/2/3). With --resume, raise it to "
    "train longer.")]
_LrOption = Annotated[Optional[float], typer.Option(
    "--lr", help="Initial learning rate (default 1e-3/1e-3/5e-4).")]
_LrDecayOption = Annotated[Optional[float], typer.Option(
    "--lr-decay", help="Learning-rate factor applied after every epoch (default 0.95).")]
_BatchSizeOption = Annotated[Optional[int], typer.Option(
    *names("--batch-size"), help="Windows per batch, over all processes (default 1024).")]
_DropoutOption = Annotated[Optional[float], typer.Option(
    "--dropout", help="Dropout of the temporal blocks (default 0.2).")]
_FilterWidthsOption = Annotated[Optional[str], typer.Option(
    "--filter-widths", "--arc", help="Stage 1: temporal filter widths, e.g. 3,3,3 (receptive field 27; "
    "default 3,3,3,3,3 = 243). Stages 2 and 3 take the --init model's.")]
_ChannelsOption = Annotated[Optional[int], typer.Option(
    "--channels", help="Stage 1: temporal convolution channels (default 256).")]
_LatentOption = Annotated[Optional[int], typer.Option(
    "--latent", "--lfd", help="Stage 1: latent feature size, the authors' -lfd (default 256; 512 for their "
    "CPN model).")]
_FcWidthOption = Annotated[Optional[int], typer.Option(
    "--fc-width", help="Stage 1: width of the fully connected blocks (global encoder, fusion, decoders); "
    "1024 in the paper (default).")]
_CausalOption = Annotated[bool, typer.Option(
    "--causal", help="Stage 1: causal windows (each frame predicted from past frames only).")]
_ArchOption = Annotated[Optional[str], typer.Option(
    "--arch", help="rie (default) or videopose3d (the baseline; stage 1 only).")]
_TrainSubjectsOption = Annotated[Optional[str], typer.Option(
    "--train-subjects", help="Comma-separated training subjects (default: the file's training split).")]
_TestSubjectsOption = Annotated[Optional[str], typer.Option(
    "--test-subjects", help="Comma-separated validation subjects (default: the file's test split).")]
_ActionsOption = Annotated[Optional[str], typer.Option(
    *names("--actions"), help="Comma-separated action prefixes to train and validate on (default: all).")]
_SubsetOption = Annotated[Optional[float], typer.Option(
    "--subset", help="Train on this fraction of every training sequence (a fixed contiguous slice; default "
    "1).")]
_DownsampleOption = Annotated[Optional[int], typer.Option(
    "--downsample", help="Keep every N-th training frame (default 1).")]
_WindowStrideOption = Annotated[Optional[int], typer.Option(
    "--window-stride", help="Train on the window of every N-th frame, another 1/N of them each epoch (frames "
    "whose index is the epoch modulo N), from the full-rate sequences: N times fewer windows per epoch, at "
    "the frame rate the model is evaluated at (unlike --downsample, which lowers the frame rate). Default 1.")]
_NoAugmentOption = Annotated[bool, typer.Option(
    "--no-augment", help="No flip augmentation of training windows.")]
_NoEvalOption = Annotated[bool, typer.Option(
    "--no-eval", help="Skip the per-epoch evaluation (no best.pt then).")]
_CheckpointEveryOption = Annotated[Optional[int], typer.Option(
    "--checkpoint-every", help="Also keep epoch_NNN.pt every N epochs (default 10; 0: only last.pt and "
    "best.pt).")]
_SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", help="Seed of weights, data order and dropout (default 4321).")]
_PrecisionOption = Annotated[str, typer.Option(
    "--precision", help=f"{PRECISION_HELP}. bf16/fp16 autocast the forward pass (fp16 with a gradient scaler); "
    "bf16 is faster on CPUs with AVX-512 BF16 or AMX and on GPUs from Ampere on.")]
_CompileOption = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the training step (about a minute of compilation first). On one GPU it "
    "replays the step as CUDA graphs: 3.4-4.8x the eager bf16 step on an H100 (docs/training.md). On a CPU it was "
    "no faster than eager here (needs a C++ compiler); measure with benchmarks/bench_train.py --compile.")]
_Tf32Option = Annotated[bool, typer.Option(
    "--tf32", help="CUDA: float32 matrix products in TF32 (tensor cores, 10-bit mantissa; several times "
    "faster, results no longer match the CPU's to float rounding). Off by default; no effect on a CPU.")]
_FrozenEvalOption = Annotated[bool, typer.Option(
    "--frozen-eval", help="Stage 2: keep the frozen encoders in eval mode (fixed BatchNorm statistics, no "
    "dropout). Default: train mode, as the authors did.")]
_VirtualCamerasOption = Annotated[bool, typer.Option(
    "--virtual-cameras", help="Project each training window's 3D through a random camera, drawn anew every batch "
    "(the --vcam-* options; defaults cover phones and studio cameras), instead of showing only the dataset's "
    "cameras: a model for any viewpoint, lens and image shape (docs/training.md, \"Virtual cameras\").")]
_VcamAzimuthOption = Annotated[Optional[str], typer.Option(
    "--vcam-azimuth", help="Virtual cameras: azimuth range about the vertical, degrees LOW,HIGH (default 0,360).")]
_VcamElevationOption = Annotated[Optional[str], typer.Option(
    "--vcam-elevation", help="Virtual cameras: elevation above the person's pelvis, degrees LOW,HIGH (default "
    "-10,60).")]
_VcamDistanceOption = Annotated[Optional[str], typer.Option(
    "--vcam-distance", help="Virtual cameras: distance to the pelvis, metres LOW,HIGH (default 2,8; raised where "
    "the person would not fit in the image).")]
_VcamRollOption = Annotated[Optional[float], typer.Option(
    "--vcam-roll", help="Virtual cameras: roll about the optical axis, degrees either way (default 10).")]
_VcamFocalLengthOption = Annotated[Optional[str], typer.Option(
    "--vcam-focal-length", help="Virtual cameras: focal length, 35 mm-equivalent millimetres LOW,HIGH, drawn "
    "log-uniformly (default 18,80).")]
_VcamPrincipalPointOption = Annotated[Optional[float], typer.Option(
    "--vcam-principal-point", help="Virtual cameras: principal point offset from the image centre, share of the "
    "image size either way (default 0.02).")]
_VcamImageSizesOption = Annotated[Optional[str], typer.Option(
    "--vcam-image-sizes", help="Virtual cameras: image sizes to draw from, WxH,... (default "
    "1920x1080,1080x1920,1280x720,720x1280,1000x1000).")]
_VcamDistortionOption = Annotated[Optional[float], typer.Option(
    "--vcam-distortion", help="Virtual cameras: radial distortion k1 drawn from [-K, K] (default 0: none).")]
_VcamAimOption = Annotated[Optional[float], typer.Option(
    "--vcam-aim", help="Virtual cameras: how far off-centre the person may be, share of the free image space "
    "(default 0.5; 0: always centred).")]
_VcamNoiseOption = Annotated[Optional[float], typer.Option(
    "--vcam-noise", help="Virtual cameras: detector-like 2D jitter, standard deviation as a share of the person's "
    "size in the image, correlated over 3 frames (default 0: exact projections).")]
_VcamShareOption = Annotated[Optional[float], typer.Option(
    "--vcam-share", help="Virtual cameras: share of the training windows that get a virtual camera; the rest "
    "keep the dataset's 2D (default 0.5; 3D-only data: all of them).")]
_ForceOption = Annotated[bool, typer.Option(
    "--force", help="Start over in a --checkpoint-dir that already holds a run: its checkpoints, logs and "
    "run.json are deleted first (refused otherwise). With --resume from an earlier checkpoint "
    "(epoch_NNN.pt): the files of the epochs after it are deleted.")]


def train_command(
    stage: _StageOption = None,
    target: _TargetOption = None,
    data: _DataOption = None,
    keypoints: _KeypointsOption = None,
    checkpoint_dir: _CheckpointDirOption = None,
    init: _InitOption = None,
    resume: _ResumeOption = None,
    epochs: _EpochsOption = None,
    lr: _LrOption = None,
    lr_decay: _LrDecayOption = None,
    batch_size: _BatchSizeOption = None,
    dropout: _DropoutOption = None,
    filter_widths: _FilterWidthsOption = None,
    channels: _ChannelsOption = None,
    latent: _LatentOption = None,
    fc_width: _FcWidthOption = None,
    causal: _CausalOption = False,
    arch: _ArchOption = None,
    train_subjects: _TrainSubjectsOption = None,
    test_subjects: _TestSubjectsOption = None,
    actions: _ActionsOption = None,
    subset: _SubsetOption = None,
    downsample: _DownsampleOption = None,
    window_stride: _WindowStrideOption = None,
    no_augment: _NoAugmentOption = False,
    no_eval: _NoEvalOption = False,
    checkpoint_every: _CheckpointEveryOption = None,
    seed: _SeedOption = None,
    device: DeviceOption = "auto",
    precision: _PrecisionOption = "fp32",
    compile: _CompileOption = False,
    tf32: _Tf32Option = False,
    frozen_eval: _FrozenEvalOption = False,
    force: _ForceOption = False,
    checkpoint: _NoCheckpointOption = None,
    virtual_cameras: _VirtualCamerasOption = False,
    vcam_azimuth: _VcamAzimuthOption = None,
    vcam_elevation: _VcamElevationOption = None,
    vcam_distance: _VcamDistanceOption = None,
    vcam_roll: _VcamRollOption = None,
    vcam_focal_length: _VcamFocalLengthOption = None,
    vcam_principal_point: _VcamPrincipalPointOption = None,
    vcam_image_sizes: _VcamImageSizesOption = None,
    vcam_distortion: _VcamDistortionOption = None,
    vcam_aim: _VcamAimOption = None,
    vcam_noise: _VcamNoiseOption = None,
    vcam_share: _VcamShareOption = None,
) -> None:
    if checkpoint is not None:
        fail("rie train takes no -c/--checkpoint: the run's directory is --checkpoint-dir (-o); start from a "
             "checkpoint with --init, continue a run with --resume", code=2)
    camera_distribution = _camera_distribution(
        virtual_cameras, azimuth=vcam_azimuth, elevation=vcam_elevation, distance=vcam_distance, roll=vcam_roll,
        focal_length=vcam_focal_length, principal_point=vcam_principal_point, image_sizes=vcam_image_sizes,
        distortion=vcam_distortion, aim=vcam_aim, noise=vcam_noise, share=vcam_share)
    options = TrainOptions(
        stage=stage, data=data, keypoints=keypoints, checkpoint_dir=checkpoint_dir, init=init, resume=resume,
        epochs=epochs, lr=lr, lr_decay=lr_decay, batch_size=batch_size, dropout=dropout,
        filter_widths=parse_filter_widths(filter_widths) if filter_widths else None, channels=channels,
        latent=latent, fc_width=fc_width, causal=True if causal else None, arch=arch,
        subjects_train=split_list(train_subjects), subjects_test=split_list(test_subjects),
        actions=split_list(actions), subset=subset, downsample=downsample, window_stride=window_stride,
        augment=False if no_augment else None, evaluate=not no_eval, checkpoint_every=checkpoint_every,
        seed=seed, device=device, precision=precision, compile=compile, tf32=tf32,
        frozen_eval=True if frozen_eval else None,
        target=target,
        force=force,
        virtual_cameras=camera_distribution,
    )
    result = train(options, ConsoleReporter(console))
    _render(result)


def _camera_distribution(enabled: bool, **given) -> dict | None:
    """The --vcam-* options given, as CameraDistribution parameters (None without --virtual-cameras)."""
    given = {key: value for key, value in given.items() if value is not None}
    if not enabled:
        if given:
            flags = ", ".join(f"--vcam-{key.replace('_', '-')}" for key in given)
            raise RieError(f"{flags} set the virtual cameras: add --virtual-cameras")
        return None
    for key in ("azimuth", "elevation", "distance", "focal_length"):
        if key in given:
            given[key] = _pair(given[key], f"--vcam-{key.replace('_', '-')}")
    if "image_sizes" in given:
        given["image_sizes"] = [_image_size(v) for v in split_list(given["image_sizes"]) or []]
    return given


def _pair(value: str, flag: str) -> list[float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise RieError(f"{flag} takes LOW,HIGH (two numbers), got '{value}'") from None
    return [low, high]


def _image_size(value: str) -> list[int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise RieError(f"--vcam-image-sizes takes sizes like 1920x1080, got '{value}'") from None
    return [width, height]


def _render(result: TrainResult) -> None:
    kind = "trajectory model" if result.config.target == "trajectory" else f"stage {result.stage}"
    error = "root error" if result.config.target == "trajectory" else "MPJPE"
    table = Table(title=f"{kind}: {result.epoch}/{result.epochs} epochs", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    if result.history:
        last = result.history[-1]
        for key, label in (("train_mpjpe", f"train {error} (mm)"), ("train_eval_mpjpe", f"train {error}, eval mode (mm)"),
                           ("val_mpjpe", f"validation {error} (mm)")):
            if last.get(key) is not None:
                table.add_row(label, f"{last[key]:.2f}")
    if result.best_val is not None:
        table.add_row(f"best validation {error} (mm)", f"{result.best_val:.2f}")
    table.add_row("trainable / frozen parameters", f"{result.trainable_parameters:,} / {result.frozen_parameters:,}")
    for label, path in (("last checkpoint", result.last), ("best checkpoint", result.best)):
        if path is not None:
            table.add_row(label, str(path))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP)(cli_errors(train_command))
