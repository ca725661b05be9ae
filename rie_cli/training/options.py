"""What a training run is asked to do: `TrainOptions`, and how unset options get values.

Every option starts as `None` ("not given"). `resolve_options` fills the gaps from,
in order: the run being resumed (a resumed run keeps its recipe), then the stage's
recipe of docs/method.md §3, then the common defaults. Keeping "not given" apart from
"given" is what lets a resume or a stage-2/3 start refuse options that contradict
the checkpoint instead of silently ignoring them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from rie_cli.data.virtual_cameras import CameraDistribution
from rie_cli.devices import PRECISION_CHOICES
from rie_cli.errors import RieError

STAGES = (1, 2, 3)
TARGETS = ("pose", "trajectory")  # rie_cli.model.config.TARGETS

# docs/method.md §3: epochs and learning rate per stage.
STAGE_RECIPES = {
    1: {"epochs": 80, "lr": 1e-3},
    2: {"epochs": 80, "lr": 1e-3},
    3: {"epochs": 20, "lr": 5e-4},
}

# Shared by all stages (docs/method.md §3, the authors' run.py defaults).
COMMON_DEFAULTS = {
    "lr_decay": 0.95,
    "batch_size": 1024,
    "dropout": 0.2,
    "filter_widths": (3, 3, 3, 3, 3),
    "channels": 256,
    "latent": 256,
    "fc_width": 1024,
    "causal": False,
    "arch": "rie",
    "subset": 1.0,
    "downsample": 1,
    "window_stride": 1,
    "augment": True,
    "checkpoint_every": 10,
    "seed": 4321,
    "frozen_eval": False,
}

# The model's shape: chosen by the user in stage 1, inherited from --init in stages 2 and 3.
ARCH_FIELDS = ("arch", "filter_widths", "channels", "latent", "fc_width", "causal")

# What makes two runs "the same run": a checkpoint directory holding a run that
# differs in any of these is another run. Epochs may grow (train longer), and where
# and how fast it runs (device, precision, evaluation, checkpoint period) may change.
IDENTITY_FIELDS = (
    "target", "stage", "init", "arch", "filter_widths", "channels", "latent", "fc_width", "causal", "dropout",
    "keypoints", "subjects_train", "subjects_test", "actions", "subset", "downsample", "window_stride",
    "lr", "lr_decay", "batch_size", "augment", "seed", "frozen_eval", "virtual_cameras",
)
# Options a resumed run may change.
RESUMABLE_CHANGES = ("epochs", "checkpoint_every", "evaluate", "device", "precision", "compile", "tf32", "data")
# Seeds the run derives from --seed (seed + rank for dropout) stay below 2^63.
MAX_SEED = 2**62


@dataclass
class TrainOptions:
    stage: int | None  # None: 1 for a trajectory model (its only stage); required for poses
    data: Path | None = None
    keypoints: str | None = None
    checkpoint_dir: Path | None = None
    init: Path | None = None  # stage 2: a stage-1 checkpoint; stage 3: a stage-2 one
    resume: Path | None = None  # a `last`/periodic checkpoint of an interrupted run
    epochs: int | None = None
    lr: float | None = None
    lr_decay: float | None = None
    batch_size: int | None = None
    dropout: float | None = None
    filter_widths: tuple[int, ...] | None = None
    channels: int | None = None
    latent: int | None = None
    fc_width: int | None = None  # the fully connected blocks' width (1024 in the paper)
    causal: bool | None = None
    arch: str | None = None
    subjects_train: list[str] | None = None
    subjects_test: list[str] | None = None
    actions: list[str] | None = None
    subset: float | None = None
    downsample: int | None = None
    # Train on the window of every N-th frame, a different 1/N each epoch, at full frame rate.
    window_stride: int | None = None
    augment: bool | None = None
    evaluate: bool = True
    checkpoint_every: int | None = None
    seed: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False  # torch.compile the training step's model (fuses BN/LeakyReLU/dropout)
    tf32: bool = False  # CUDA: TF32 matrix products (rie_cli.devices.set_tf32)
    # Stage 2 only: put the frozen encoders in eval mode (BN statistics fixed, no
    # dropout). Off by default: the authors' frozen encoders stay in train mode.
    frozen_eval: bool | None = None
    # "pose" (the three stages) or "trajectory": VideoPose3D's model of the camera-space
    # root position, one stage, trained with the depth-weighted MPJPE.
    target: str | None = None
    # Start over in a --checkpoint-dir that holds a run: that run's files are discarded.
    force: bool = False
    # --virtual-cameras: the camera distribution's parameters (CameraDistribution.to_dict;
    # those not given take its defaults), or None: the dataset's own 2D only.
    virtual_cameras: dict | None = None

    def to_dict(self) -> dict:
        """Plain types only (stored in checkpoints, which load with weights_only=True)."""
        d = asdict(self)
        for key in ("data", "checkpoint_dir", "init", "resume"):
            d[key] = None if d[key] is None else str(d[key])
        if d["filter_widths"] is not None:
            d["filter_widths"] = list(d["filter_widths"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainOptions":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("data", "checkpoint_dir", "init", "resume"):
            if d.get(key) is not None:
                d[key] = Path(d[key])
        if d.get("filter_widths") is not None:
            d["filter_widths"] = tuple(d["filter_widths"])
        return cls(**d)

    def identity(self) -> dict:
        d = self.to_dict()
        identity = {k: d[k] for k in IDENTITY_FIELDS}
        # Runs from before trajectory models existed recorded no target: a pose run
        # keeps that identity so that it can still be resumed.
        if identity["target"] in (None, "pose"):
            del identity["target"]
        # Likewise runs from before --window-stride: every window, as stride 1 means.
        if identity["window_stride"] in (None, 1):
            del identity["window_stride"]
        if identity["virtual_cameras"] is None:  # and from before --virtual-cameras
            del identity["virtual_cameras"]
        return identity


def resolve_options(options: TrainOptions, resumed: TrainOptions | None = None) -> TrainOptions:
    """A copy of `options` with every recipe option set.

    With `resumed` (the options stored in the checkpoint being resumed), the run keeps
    its stored recipe; an option given now that contradicts it is an error, except the
    few in RESUMABLE_CHANGES.
    """
    options = _resolve_target(options, resumed)
    if options.virtual_cameras is not None:  # every parameter set, so that runs compare as they ran
        options = replace(options, virtual_cameras=CameraDistribution.from_dict(options.virtual_cameras).to_dict())
    if options.stage not in STAGES:
        raise RieError(f"--stage must be 1, 2 or 3, got {options.stage}")
    if options.precision not in PRECISION_CHOICES:
        raise RieError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got '{options.precision}'")
    if options.init is not None and options.resume is not None:
        raise RieError("--init starts a new run and --resume continues one: give only one of them")
    if resumed is not None:
        if resumed.stage != options.stage:
            raise RieError(f"--resume: the checkpoint is from stage {resumed.stage}, not stage {options.stage}")
        given = options.to_dict()
        stored = resumed.to_dict()
        for key, value in given.items():
            if key in RESUMABLE_CHANGES or key in ("stage", "target", "checkpoint_dir", "resume", "init", "force"):
                continue
            if value is not None and value != stored[key]:
                raise RieError(
                    f"--resume continues the run as it was set up: it used {key.replace('_', '-')}="
                    f"{_show(stored[key])}, not {_show(value)}"
                )
        merged = replace(
            resumed,
            target=options.target,
            data=options.data or resumed.data,
            checkpoint_dir=options.checkpoint_dir,
            resume=options.resume,
            epochs=options.epochs if options.epochs is not None else resumed.epochs,
            checkpoint_every=options.checkpoint_every if options.checkpoint_every is not None
            else resumed.checkpoint_every,
            evaluate=options.evaluate,
            device=options.device,
            precision=options.precision,
            compile=options.compile,
            tf32=options.tf32,
            force=options.force,  # with --resume: discard the epochs after the checkpoint
        )
        return _check_values(merged)

    filled = replace(options)
    for key, value in {**COMMON_DEFAULTS, **STAGE_RECIPES[options.stage]}.items():
        # Stages 2 and 3 take their architecture from the --init checkpoint
        # (rie_cli.training.stages); here they stay "not given".
        if key in ARCH_FIELDS and options.stage != 1:
            continue
        if getattr(filled, key) is None:
            setattr(filled, key, value)
    return _check_values(filled)


def _resolve_target(options: TrainOptions, resumed: TrainOptions | None) -> TrainOptions:
    """Fill `target` and, for a trajectory model, its one stage and its architecture."""
    target = options.target or (resumed.target if resumed is not None else None) or "pose"
    if target not in TARGETS:
        raise RieError(f"--target must be pose or trajectory, got '{target}'")
    if resumed is not None and (resumed.target or "pose") != target:
        raise RieError(f"--resume: the checkpoint is a {resumed.target or 'pose'} run, not a {target} run")
    stage = options.stage if options.stage is not None or resumed is None else resumed.stage
    if target == "trajectory":
        if stage not in (None, 1):
            raise RieError("a trajectory model has one training stage: leave --stage out (or give 1)")
        if options.arch not in (None, "videopose3d"):
            raise RieError(f"a trajectory model is the VideoPose3D network: --arch {options.arch} does not apply")
        if options.init is not None:
            raise RieError("a trajectory model trains from scratch: --init is for pose stages 2 and 3")
        stage = 1
        arch = "videopose3d" if resumed is None else options.arch
        return replace(options, target=target, stage=stage, arch=arch)
    if stage is None:
        raise RieError("--stage is required for pose training: 1, 2 or 3")
    return replace(options, target=target)


def _check_values(o: TrainOptions) -> TrainOptions:
    if o.data is None:
        raise RieError("--data is required: a prepared .h5 file (see `rie prepare-data`)")
    if o.epochs < 1:
        raise RieError(f"--epochs must be at least 1, got {o.epochs}")
    if o.window_stride is not None and o.window_stride < 1:
        raise RieError(f"--window-stride must be at least 1, got {o.window_stride}")
    if o.lr <= 0:
        raise RieError(f"--lr must be positive, got {o.lr}")
    if not 0 < o.lr_decay <= 1:
        raise RieError(f"--lr-decay must be in (0, 1], got {o.lr_decay}")
    if o.batch_size < 1:
        raise RieError(f"--batch-size must be at least 1, got {o.batch_size}")
    if not 0 <= o.seed < MAX_SEED:
        # NumPy's generators (the data order) take no negative seed; torch's none past 2^64.
        raise RieError(f"--seed must be an integer from 0 to {MAX_SEED - 1}, got {o.seed}")
    if o.checkpoint_every < 0:
        raise RieError(f"--checkpoint-every must be >= 0 (0: only last and best), got {o.checkpoint_every}")
    if o.arch is not None and o.arch not in ("rie", "videopose3d"):
        raise RieError(f"--arch must be rie or videopose3d, got '{o.arch}'")
    if o.arch == "videopose3d" and o.stage != 1:
        raise RieError("the VideoPose3D baseline has one training stage: use --stage 1 with --arch videopose3d")
    if o.stage == 1 and o.init is not None:
        raise RieError("stage 1 trains from scratch: --init is for stages 2 and 3 (use --resume to continue a run)")
    if o.stage in (2, 3) and o.init is None and o.resume is None:
        previous = {2: "stage-1", 3: "stage-2"}[o.stage]
        raise RieError(f"stage {o.stage} starts from a {previous} checkpoint: pass --init FILE")
    return o


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)
