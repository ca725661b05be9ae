"""Taking results out: predicted poses to .npz/.csv/.json, models to .pt2/ONNX.

    export_predictions("ckpt.bin", "data.h5", "gt", Path("pred.npz"))       # rie export predictions
    export_model("ckpt.bin", Path("rie.onnx"), "onnx")                      # rie export model

Predictions come from `rie_cli.api.load_for_inference(...).predict`, what `rie evaluate`
scores, so an export holds exactly the poses behind the reported errors. File layouts
are documented in docs/export.md: the `.npz` keeps VideoPose3D's nesting (subject ->
action -> list of per-camera (N, J, 3) arrays, a pickled dict under `predictions`).

The prediction files themselves are written and read by `rie_cli.predictions`.

An exported model is `SequenceLifter`: the evaluation model wrapped so that it takes
whole sequences, (B, T, J, 2) normalised 2D -> (B, T, J, 3), with the edge padding,
the per-frame windows and (optionally) the flip augmentation inside the graph (the
torch form of `rie_cli.windowing`). Batch
and sequence length are dynamic. After writing, the exported file is run against the
eager model at a batch and length other than the example's; a difference above 1e-4
deletes the file and fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rie_cli import __version__
from rie_cli.cameras import poses_to_world
from rie_cli.errors import RieError, install_hint
from rie_cli.loading import load_models
from rie_cli.predictions import PREDICTION_SUFFIXES, write_dataset_predictions
from rie_cli.skeleton import Skeleton

MODEL_FORMATS = {"pt2": ".pt2", "onnx": ".onnx"}
EXPORT_TOLERANCE = 1e-4
# Weights past this size go to an external `<name>.onnx.data` file (ONNX's protobuf
# limit is 2 GB); a test lowers it to export a small model that way.
ONNX_EXTERNAL_DATA_BYTES = 1_800_000_000


# --- predictions ---------------------------------------------------------------------

@dataclass
class PredictionExport:
    """What `export_predictions` wrote."""

    path: Path
    space: str  # "camera-relative" (root-relative), "camera" (absolute, with a trajectory model) or "world"
    sequences: int
    frames: int
    subjects: list[str] = field(default_factory=list)


def export_predictions(
    checkpoint: Path,
    data: Path,
    keypoints: str,
    out: Path,
    *,
    subjects: list[str] | None = None,
    actions: list[str] | None = None,
    world: bool = False,
    tta: bool = True,
    batch_size: int = 1024,
    device: str = "cpu",
    allow_unsafe_load: bool = False,
    smoothing=None,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    trajectory: Path | None = None,
    level: bool = True,
    foot_lock: bool = False,
) -> PredictionExport:
    """`rie export predictions`: predict every selected sequence and camera, write `out`.

    Subjects default to the file's test split (all subjects if it names none), as in
    `rie evaluate`. Poses are camera space, metres, root-relative as predicted; with
    `world`, the ground-truth root trajectory is added and the camera transform
    inverted; with `trajectory` (a trajectory model) the predicted root is added and
    the poses are brought to world coordinates (camera space where a camera has no
    extrinsics, upright on the floor the feet show with `level`), the roots stored beside
    them; `foot_lock` keeps planted feet still and stores the contacts. `smoothing` (a `rie_cli.smoothing.Smoothing`)
    filters each sequence's poses and root. `on_start(total_frames)` is called once
    the selection is known.
    """
    out = Path(out)
    if out.suffix.lower() not in PREDICTION_SUFFIXES:
        raise RieError(f"cannot write '{out.name}': predictions are written as .npz, .csv or .json")
    if batch_size < 1:
        raise RieError(f"batch size must be positive, got {batch_size}")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise RieError(f"checkpoint not found: {checkpoint}")
    if foot_lock and trajectory is None:
        raise RieError("--foot-lock needs --trajectory: feet are planted where the trajectory model places the body")
    dataset, subjects, sequences = _select_sequences(data, keypoints, subjects, actions, world=world,
                                                     trajectory=trajectory)
    loaded, traj = load_models(checkpoint, trajectory, dataset.skeleton, dataset.path.name, device=device, tta=tta,
                               allow_unsafe=allow_unsafe_load)
    traj_model = traj.model if traj is not None else None
    if on_start is not None:
        on_start(sum(len(s.keypoints_2d) for s in sequences) * (2 if traj_model is not None else 1))
    poses = loaded.predict([s.keypoints_2d for s in sequences], batch_size=batch_size, progress=progress)
    if smoothing is not None:
        poses = [smoothing.apply(p, dataset.fps) for p in poses]
    roots, contacts, space = None, None, "world" if world else "camera-relative"
    if world:
        poses = [poses_to_world(p, s.camera, s.trajectory) for p, s in zip(poses, sequences)]
    if traj_model is not None:
        poses, roots, contacts, space = _place(
            poses, sequences, traj_model, dataset, tta=tta, batch_size=batch_size, device=device, progress=progress,
            smooth=(lambda r: smoothing.apply(r, dataset.fps)) if smoothing else None, level=level,
            foot_lock=foot_lock)

    metadata = _metadata(space, dataset, checkpoint=checkpoint, trajectory=trajectory, data=data,
                         keypoints=keypoints, tta=tta, smoothing=smoothing, config=loaded.config)
    metadata["foot_lock"] = foot_lock
    if foot_lock:  # the columns of each `contacts` array
        metadata["contact_joints"] = [dataset.skeleton.joint_names[f] for f in dataset.skeleton.feet()]
    write_dataset_predictions(out, sequences, poses, metadata, dataset.skeleton, trajectories=roots,
                              contacts=contacts)
    return PredictionExport(path=out, space=metadata["space"], sequences=len(sequences),
                            frames=sum(len(p) for p in poses), subjects=subjects)


def _select_sequences(data: Path, keypoints: str, subjects: list[str] | None, actions: list[str] | None, *,
                      world: bool, trajectory: Path | None):
    """(dataset, subjects, sequences) to export; subjects default to the test split (or all)."""
    from rie_cli.data.dataset import PoseDataset

    dataset = PoseDataset(data)
    dataset.check_source(keypoints)
    subjects = list(subjects) if subjects else list(dataset.test_subjects or dataset.subjects())
    unknown = [s for s in subjects if s not in dataset.subjects()]
    if unknown:
        raise RieError(f"unknown subject(s) {', '.join(unknown)} (the file has: {', '.join(dataset.subjects())})")
    sequences = dataset.sequences(subjects, keypoints, actions=actions)
    if world and trajectory is not None:
        raise RieError("--world places the poses at the true root, --trajectory at the predicted one: give one")
    if world:
        missing = [s for s in sequences if s.trajectory is None]
        if missing:
            s = missing[0]
            raise RieError(f"--world needs 3D ground truth and camera extrinsics; {s.subject} / {s.action} "
                           f"camera {s.camera_index} has none")
    return dataset, subjects, sequences


def _metadata(space: str, dataset, *, checkpoint: Path, trajectory: Path | None, data: Path, keypoints: str,
              tta: bool, smoothing, config) -> dict:
    """What an export records about itself (docs/export.md)."""
    return {
        "format": "rie-predictions",
        "version": 1,
        "rie_version": __version__,
        "space": space,
        "units": "m",
        "root_relative": space == "camera-relative",
        "checkpoint": str(checkpoint),
        **({"trajectory_checkpoint": str(trajectory)} if trajectory is not None else {}),
        "data": str(data),
        "dataset": dataset.name,
        "keypoints": keypoints,
        "tta": tta,
        "fps": dataset.fps,
        "smoothing": smoothing.describe(dataset.fps) if smoothing is not None else "none",
        "model": config.to_dict(),
        "skeleton": dataset.skeleton.to_dict(),
    }


def _place(poses, sequences, traj_model, dataset, smooth=None, level: bool = True, foot_lock: bool = False,
           **predict_options) -> tuple[list, list, list | None, str]:
    """Poses at the roots a trajectory model predicts: (poses, roots (N, 3) each, contacts
    (N, F) each with `foot_lock` else None, space).

    World coordinates if every sequence's camera has extrinsics, otherwise upright on the
    floor the feet show (`level`) or camera space (`rie_cli.trajectory.place_motion`).
    `smooth(root)` filters each predicted root first.
    """
    from rie_cli.trajectory import place_motion, predict_trajectories

    roots = predict_trajectories(traj_model, [s.keypoints_2d for s in sequences], skeleton=dataset.skeleton,
                                 **predict_options)
    if smooth is not None:
        roots = [smooth(r).astype(np.float32) for r in roots]
    world = all(s.camera.has_extrinsics for s in sequences)
    placed = [place_motion(p, r, dataset.skeleton, dataset.fps, camera=s.camera if world else None, level=level,
                           foot_lock=foot_lock) for p, r, s in zip(poses, roots, sequences)]
    contacts = [m.contacts for m in placed] if foot_lock else None
    return [m.poses for m in placed], [m.root for m in placed], contacts, placed[0].space


# --- models --------------------------------------------------------------------------

def _lifter_class():
    import torch
    from torch import nn

    from rie_cli.windowing import mirror, window_indices

    class SequenceLifter(nn.Module):
        """The evaluation model over whole sequences: (B, T, J, 2) -> (B, T, J, 3).

        Every frame t is predicted from its own window of R frames (centred on t, or
        ending at t for a causal model), the sequence padded by repeating its first and
        last frames (docs/method.md §5). With `tta`, each window is also mirrored and the
        mirrored prediction flipped back and averaged in. Inputs are normalised screen
        coordinates; outputs camera space, metres, root-relative.
        """

        def __init__(self, model: nn.Module, skeleton: Skeleton, tta: bool) -> None:
            super().__init__()
            self.model = model
            self.tta = tta
            self.receptive_field = model.receptive_field()
            self.causal = bool(getattr(model.config, "causal", False))
            self.register_buffer("flip_joints", torch.as_tensor(skeleton.flip_permutation()), persistent=False)

        def forward(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
            batch, frames, joints, _ = keypoints_2d.shape  # (B, T, J, 2)
            # Edge padding and windowing in one gather (rie_cli.windowing's torch form).
            frame = torch.arange(frames, device=keypoints_2d.device)  # (T,)
            index = window_indices(frame, frames, self.receptive_field, self.causal)  # (T, R)
            windows = keypoints_2d[:, index].flatten(0, 1)  # (B*T, R, J, 2)
            poses = self.model(windows).reshape(batch, frames, joints, 3)  # (B, T, J, 3)
            if self.tta:
                back = mirror(self.model(mirror(windows, self.flip_joints))[:, 0], self.flip_joints)  # (B*T, J, 3)
                poses = (poses + back.reshape(batch, frames, joints, 3)) / 2
            return poses

    return SequenceLifter


def sequence_lifter(model, skeleton: Skeleton, tta: bool = True):
    """Wrap an eval-mode model (B, R, J, 2) -> (B, 1, J, 3) into a `SequenceLifter`."""
    return _lifter_class()(model, skeleton, tta).eval()


@dataclass
class ModelExport:
    """What `export_model` wrote and how well it matches the eager model."""

    path: Path
    format: str
    receptive_field: int
    tta: bool
    max_abs_diff: float
    check_shape: tuple[int, int, int, int]


def export_model(
    checkpoint: Path,
    out: Path,
    fmt: str,
    *,
    tta: bool = True,
    allow_unsafe_load: bool = False,
    tolerance: float = EXPORT_TOLERANCE,
) -> ModelExport:
    """`rie export model`: write the checkpoint's evaluation model as .pt2 or ONNX.

    The exported program is a `SequenceLifter` with dynamic batch and sequence length.
    It is then run, reloaded from the file, next to the eager model on a batch and a
    length other than the example's; above `tolerance` the file is removed and a
    RieError raised.
    """
    import torch

    from rie_cli.loading import load_for_inference

    fmt = fmt.lower()
    if fmt not in MODEL_FORMATS:
        raise RieError(f"unknown export format '{fmt}' (choose {' or '.join(MODEL_FORMATS)})")
    out = Path(out)
    if out.suffix.lower() != MODEL_FORMATS[fmt]:
        raise RieError(f"a {fmt} export is written to a {MODEL_FORMATS[fmt]} file, not '{out.name}'")
    if fmt == "onnx":
        _require_onnx()
    # The eager model, on the CPU in float32: what torch.export and ONNX trace.
    loaded = load_for_inference(checkpoint, device="cpu", tta=tta, allow_unsafe=allow_unsafe_load)
    lifter = sequence_lifter(loaded.model, loaded.skeleton, loaded.tta)
    rf = loaded.config.receptive_field()
    joints = loaded.config.num_joints

    example = _example_input(2, rf + 2, joints, seed=0)  # (2, R+2, J, 2)
    check = _example_input(3, rf // 2 + 5, joints, seed=1)  # another batch and length (shorter than R)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _staged_model_path(out) as partial:
        with torch.no_grad():
            expected = lifter(torch.from_numpy(check)).numpy()
            if fmt == "pt2":
                _write_pt2(lifter, example, partial)
                actual = _run_pt2(partial, check)
            else:
                _write_onnx(lifter, example, partial)
                actual = run_onnx(partial, check)
        diff = float(np.max(np.abs(actual - expected)))
        if not diff <= tolerance:
            raise RieError(f"the exported model differs from the eager one by {diff:.3g} (> {tolerance:g}) "
                           f"at input {check.shape}; nothing was written")
    return ModelExport(path=out, format=fmt, receptive_field=rf, tta=tta, max_abs_diff=diff,
                       check_shape=tuple(check.shape))


@contextlib.contextmanager
def _staged_model_path(out: Path):
    """Where to write an exported model: a private folder beside `out`, holding the file
    under its final name; on success it (and ONNX's external weights, `<name>.data`, whose
    name the .onnx file records) is renamed into place, and the folder removed either way.

    The final name matters: written to a temporary name and renamed (`atomic_path`), the
    .onnx would point at weights that keep the temporary name.
    """
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield stage / out.name
        if out.suffix.lower() == ".onnx":
            data = out.with_name(out.name + ".data")
            if (stage / data.name).exists():
                os.replace(stage / data.name, data)  # first: the model file must not point at nothing
            else:
                data.unlink(missing_ok=True)  # an older export's weights, which the new file does not use
        os.replace(stage / out.name, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _example_input(batch: int, frames: int, joints: int, seed: int) -> np.ndarray:
    """Smooth random 2D walks in normalised coordinates, (batch, frames, joints, 2)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-0.5, 0.5, size=(batch, 1, joints, 2))
    steps = rng.normal(scale=0.01, size=(batch, frames, joints, 2))
    return np.clip(start + np.cumsum(steps, axis=1), -1, 1).astype(np.float32)


def _dynamic_shapes():
    from torch.export import Dim

    return ({0: Dim("batch", min=1, max=65536), 1: Dim("frames", min=1, max=1_000_000)},)


def _write_pt2(lifter, example: np.ndarray, path: Path) -> None:
    import torch

    try:
        program = torch.export.export(lifter, (torch.from_numpy(example),), dynamic_shapes=_dynamic_shapes())
    except Exception as exc:  # torch.export reports unsupported code with many exception types
        raise RieError(f"torch.export could not trace the model: {_first_line(exc)}") from None
    torch.export.save(program, str(path))


def _run_pt2(path: Path, x: np.ndarray) -> np.ndarray:
    import torch

    program = torch.export.load(str(path))
    with torch.no_grad():
        return program.module()(torch.from_numpy(x)).numpy()


def _write_onnx(lifter, example: np.ndarray, path: Path) -> None:
    import torch

    params = sum(p.numel() for p in lifter.parameters())
    try:
        with _quiet_exporter():
            torch.onnx.export(
                lifter,
                (torch.from_numpy(example),),
                str(path),
                dynamo=True,
                dynamic_shapes=_dynamic_shapes(),
                input_names=["keypoints_2d"],
                output_names=["poses_3d"],
                external_data=params * 4 > ONNX_EXTERNAL_DATA_BYTES,  # one file unless past ONNX's limit
                verbose=False,
            )
    except Exception as exc:  # the exporter raises its own error types
        raise RieError(f"ONNX export failed: {_first_line(exc)}") from None


@contextlib.contextmanager
def _quiet_exporter():
    """The ONNX exporter logs warnings about optional packages (torchvision) and
    deprecations that say nothing about this model; keep them off the user's terminal."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    """Run an exported .onnx file on (B, T, J, 2) input with onnxruntime (CPU)."""
    _require_onnx()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise RieError(f"ONNX export needs {', '.join(missing)} (the optional 'export' dependencies of rie): "
                       f"{install_hint('export')}")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__

