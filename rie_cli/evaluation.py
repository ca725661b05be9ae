"""The evaluation protocol of docs/method.md §5: predictions per sequence, errors per action class.

    model = load_for_inference("ckpt.bin")                              # rie_cli.api
    predictions = model.predict([s.keypoints_2d for s in sequences])    # one (N, J, 3) per sequence
    result = evaluate_predictions(sequences, predictions)               # per action class, in mm
    result.to_json()["average"]["mpjpe"]                                 # the action-wise average P1

Every frame counts once inside its action class (all sequences, subjects and cameras
of the class together: a frame-weighted mean); the reported average is the plain mean
over action classes ("action-wise average"), as the authors report it. MPJVE is
averaged over the consecutive-frame pairs of each class the same way.

`rie_cli.api.load_for_inference` and its `predict` are the one way that `rie evaluate`,
`rie export`, `rie render` and `rie predict` load a model and get predictions, so that
all of them see identical poses.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rie_cli import metrics, world_metrics
from rie_cli.atomic import check_writable, write_text_atomic
from rie_cli.devices import resolve_device, resolve_precision, set_tf32
from rie_cli.errors import RieError
from rie_cli.loading import load_models

METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")
# With a trajectory model (`rie evaluate --trajectory`): the predicted root's distance
# from the true camera-space root, and the MPJPE of pose + trajectory against the true
# camera-space joints (`rie_cli.trajectory.absolute_poses`).
TRAJECTORY_METRICS = ("root_error", "abs_mpjpe")
CSV_FIELDS = ("subject", "action", *METRICS, "frames")
_MM_PER_M = 1000.0


@dataclass
class Scores:
    """Errors of one group of frames (an action class, or the average), in millimetres."""

    mpjpe: float
    p_mpjpe: float
    n_mpjpe: float
    mpjve: float  # NaN where the group has no two consecutive frames
    frames: int
    root_error: float | None = None  # only with a trajectory model
    abs_mpjpe: float | None = None  # only with a trajectory model
    world: dict[str, float] | None = None  # world-motion metrics (rie_cli.world_metrics), with a trajectory

    def to_json(self) -> dict:
        out = {name: _json_number(getattr(self, name)) for name in METRICS}
        for name in TRAJECTORY_METRICS:
            if getattr(self, name) is not None:
                out[name] = _json_number(getattr(self, name))
        for name, value in (self.world or {}).items():
            out[name] = _json_number(value)
        out["frames"] = int(self.frames)
        return out


@dataclass
class _Accumulator:
    """Running float64 sums of per-frame errors (metres) for one group of frames."""

    frames: int = 0
    pairs: int = 0  # consecutive-frame pairs, for MPJVE
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(METRICS + TRAJECTORY_METRICS, 0.0))
    trajectory: bool = False  # the trajectory sums are filled
    world: world_metrics.WorldSums | None = None  # with a trajectory

    @classmethod
    def of_sequence(cls, pred: np.ndarray, target: np.ndarray, trajectory: tuple | None = None,
                    world: world_metrics.WorldSums | None = None) -> "_Accumulator":
        """The sums of one sequence: (N, J, 3) prediction and target, float64, metres.

        `trajectory`: (predicted root (N, 3), true root (N, 3)), camera space, metres;
        `world`: the sequence's world-motion sums.
        """
        acc = cls(frames=len(pred), pairs=max(len(pred) - 1, 0))
        acc.sums["mpjpe"] = float(metrics.mpjpe(pred, target).sum())
        acc.sums["p_mpjpe"] = float(metrics.p_mpjpe(pred, target).sum())
        acc.sums["n_mpjpe"] = float(metrics.n_mpjpe(pred, target).sum())
        if len(pred) > 1:
            acc.sums["mpjve"] = float(metrics.mpjve(pred, target).sum())
        if trajectory is not None:
            from rie_cli.trajectory import absolute_poses, root_errors

            predicted_root, true_root = trajectory
            acc.trajectory = True
            acc.sums["root_error"] = float(root_errors(predicted_root, true_root).sum())
            absolute_pred = absolute_poses(pred, predicted_root).astype(np.float64)
            absolute_true = target + np.asarray(true_root, dtype=np.float64)[:, None, :]  # target's root is 0
            acc.sums["abs_mpjpe"] = float(metrics.mpjpe(absolute_pred, absolute_true).sum())
        acc.world = world
        return acc

    def add(self, other: "_Accumulator") -> None:
        self.frames += other.frames
        self.pairs += other.pairs
        self.trajectory = self.trajectory or other.trajectory
        for name in METRICS + TRAJECTORY_METRICS:
            self.sums[name] += other.sums[name]
        if other.world is not None:
            self.world = self.world or world_metrics.WorldSums()
            self.world.add(other.world)

    def scores(self) -> Scores:
        def mean(name: str, count: int) -> float:
            return self.sums[name] / count * _MM_PER_M if count else math.nan

        return Scores(
            mpjpe=mean("mpjpe", self.frames),
            p_mpjpe=mean("p_mpjpe", self.frames),
            n_mpjpe=mean("n_mpjpe", self.frames),
            mpjve=mean("mpjve", self.pairs),
            frames=self.frames,
            root_error=mean("root_error", self.frames) if self.trajectory else None,
            abs_mpjpe=mean("abs_mpjpe", self.frames) if self.trajectory else None,
            world=self.world.means() if self.world is not None else None,
        )


def action_wise_average(actions: dict[str, Scores]) -> Scores:
    """The plain mean over action classes of each metric (each class counts once; MPJVE
    over the classes where it is defined)."""

    def mean(name: str) -> float | None:
        values = [getattr(s, name) for s in actions.values()]
        if any(v is None for v in values):
            return None  # a trajectory metric without a trajectory model
        if name == "mpjve":
            # Undefined (NaN) for a class without two consecutive frames: averaged over the
            # classes that have it. Any other NaN is a wrong number and stays visible.
            values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    return Scores(
        mpjpe=mean("mpjpe"),
        p_mpjpe=mean("p_mpjpe"),
        n_mpjpe=mean("n_mpjpe"),
        mpjve=mean("mpjve"),
        frames=sum(s.frames for s in actions.values()),
        root_error=mean("root_error"),
        abs_mpjpe=mean("abs_mpjpe"),
        world=(world_metrics.average([s.world for s in actions.values()])
               if all(s.world is not None for s in actions.values()) else None),
    )


@dataclass
class EvaluationResult:
    """Per action class scores and their action-wise average, optionally per subject too."""

    actions: dict[str, Scores]  # action class -> scores, in the order classes first appear
    average: Scores
    by_subject: dict[str, dict[str, Scores]] | None = None  # subject -> action class -> scores
    # What was evaluated; filled by `evaluate_checkpoint`, kept None by `evaluate_predictions`.
    checkpoint: str | None = None
    data: str | None = None
    keypoints: str | None = None
    subjects: list[str] | None = None
    tta: bool | None = None
    precision: str | None = None
    model: dict | None = None  # the ModelConfig of the checkpoint, as a dict
    stage: int | None = None
    origin: str | None = None  # "rie" | "authors-rie" | "videopose3d"
    smoothing: str | None = None  # the temporal filter applied before scoring ("none" if not)
    foot_lock: bool | None = None  # scored after `--foot-lock` (rie_cli.foot_contact)
    messages: list[str] = field(default_factory=list)  # what loading the checkpoint inferred
    trajectory: str | None = None  # the trajectory checkpoint, with `rie evaluate --trajectory`
    trajectory_model: dict | None = None  # its ModelConfig, as a dict

    @property
    def has_trajectory(self) -> bool:
        return self.average.root_error is not None

    def subject_average(self, subject: str) -> Scores:
        return action_wise_average(self.by_subject[subject])

    def to_json(self) -> dict:
        """The machine-readable result; the schema is documented in docs/evaluate.md."""
        out: dict = {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "keypoints": self.keypoints,
            "subjects": self.subjects,
            "tta": self.tta,
            "precision": self.precision,
            "model": self.model,
            "stage": self.stage,
            "origin": self.origin,
            **({"trajectory": self.trajectory, "trajectory_model": self.trajectory_model}
               if self.has_trajectory else {}),
            "smoothing": self.smoothing,
            **({"foot_lock": self.foot_lock} if self.has_trajectory else {}),
            "units": "mm",
            **({"world_units": dict(world_metrics.UNITS)} if self.average.world is not None else {}),
            "actions": {name: s.to_json() for name, s in self.actions.items()},
            "average": self.average.to_json(),
        }
        if self.by_subject is not None:
            out["by_subject"] = {
                subject: {
                    "actions": {name: s.to_json() for name, s in actions.items()},
                    "average": self.subject_average(subject).to_json(),
                }
                for subject, actions in self.by_subject.items()
            }
        return out

    def rows(self) -> list[dict]:
        """Flat rows (subject, action, metrics, frames) for CSV and tables.

        First every action over all subjects, then their average (subject "all",
        action "average"); with per-subject results, each subject's actions and
        average follow.
        """
        groups = [("all", self.actions, self.average)]
        if self.by_subject is not None:
            groups += [(s, acts, self.subject_average(s)) for s, acts in self.by_subject.items()]
        rows = []
        for subject, actions, average in groups:
            for name, scores in [*actions.items(), ("average", average)]:
                rows.append({"subject": subject, "action": name, **scores.to_json()})
        return rows

    def to_csv(self) -> str:
        """`rows()` as CSV text with a header line; undefined values are empty cells."""
        world = world_metrics.WORLD_METRICS if self.average.world is not None else ()
        fields = CSV_FIELDS[:-1] + (TRAJECTORY_METRICS if self.has_trajectory else ()) + world + CSV_FIELDS[-1:]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: "" if row[k] is None else row[k] for k in fields})
        return buffer.getvalue()


def evaluate_predictions(sequences, predictions, by_subject: bool = False,
                         trajectories: list[np.ndarray] | None = None, *, fps: float | None = None,
                         skeleton=None) -> EvaluationResult:
    """Score predictions against the sequences' ground truth with the paper's protocol.

    `predictions[i]` is the (N, J, 3) prediction for `sequences[i]` in metres. The
    ground truth's root joint is zeroed (it is root-relative already; this makes the
    protocol independent of that convention); the prediction is used as it is.
    `trajectories[i]`, where given, is the predicted camera-space root (N, 3) of
    `sequences[i]`: it adds `root_error` and `abs_mpjpe` (TRAJECTORY_METRICS), and with
    the data's `fps` and `skeleton` the world-motion metrics (`rie_cli.world_metrics`)
    in world coordinates.
    """
    if len(sequences) != len(predictions):
        raise ValueError(f"{len(sequences)} sequences but {len(predictions)} predictions")
    if not sequences:
        raise RieError("nothing to evaluate: the selection holds no sequences")
    per_action: dict[str, _Accumulator] = {}
    per_subject: dict[str, dict[str, _Accumulator]] = {}
    if trajectories is not None and len(trajectories) != len(sequences):
        raise ValueError(f"{len(sequences)} sequences but {len(trajectories)} trajectories")
    for i, (seq, pred) in enumerate(zip(sequences, predictions)):
        if seq.positions_3d is None:
            raise RieError(f"{seq.subject} / {seq.action} has no 3D ground truth to evaluate against")
        target = np.array(seq.positions_3d, dtype=np.float64)  # (N, J, 3), a copy
        target[:, 0] = 0.0
        pred = np.asarray(pred, dtype=np.float64)
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {pred.shape} does not match ground truth {target.shape} "
                f"of {seq.subject} / {seq.action} camera {seq.camera_index}"
            )
        _check_finite(pred, "prediction", seq)
        cls = seq.action_class
        pair = _trajectory_pair(seq, trajectories, i)
        world = None if pair is None or fps is None else _world_sums(seq, pred, target, pair, fps, skeleton)
        sums = _Accumulator.of_sequence(pred, target, pair, world)
        per_action.setdefault(cls, _Accumulator()).add(sums)
        if by_subject:
            per_subject.setdefault(seq.subject, {}).setdefault(cls, _Accumulator()).add(sums)
    actions = {name: acc.scores() for name, acc in per_action.items()}
    subjects = None
    if by_subject:
        subjects = {s: {name: acc.scores() for name, acc in accs.items()} for s, accs in per_subject.items()}
    return EvaluationResult(actions=actions, average=action_wise_average(actions), by_subject=subjects)


def _trajectory_pair(seq, trajectories, i) -> tuple | None:
    """(predicted root (N, 3), true root (N, 3)) of sequence i, or None without trajectories."""
    if trajectories is None:
        return None
    if seq.trajectory is None:
        raise RieError(f"{seq.subject} / {seq.action} camera {seq.camera_index} has no true root position "
                       "(no camera extrinsics) to score a trajectory against")
    predicted = np.asarray(trajectories[i], dtype=np.float64)
    if predicted.shape != seq.trajectory.shape:
        raise ValueError(f"trajectory {predicted.shape} does not match {seq.trajectory.shape} "
                         f"of {seq.subject} / {seq.action} camera {seq.camera_index}")
    _check_finite(predicted, "predicted trajectory", seq)
    return predicted, seq.trajectory


def _check_finite(values: np.ndarray, what: str, seq) -> None:
    """RieError when a prediction holds NaN or infinite values (no error of it means anything)."""
    finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)  # (N,)
    if not finite.all():
        raise RieError(f"the {what} of {seq.subject} / {seq.action} camera {seq.camera_index} is NaN or "
                       f"infinite in {int((~finite).sum())} of {len(values)} frames: the model's output is not "
                       "finite (a diverged checkpoint?)")


def _world_sums(seq, pred, target, pair, fps: float, skeleton) -> world_metrics.WorldSums:
    """World-motion sums of one sequence: prediction and truth placed at their roots and
    brought to world coordinates (z up) with the sequence's camera."""
    from rie_cli.cameras import camera_to_world

    predicted_root, true_root = pair
    pred_world = camera_to_world(pred - pred[:, :1] + np.asarray(predicted_root, np.float64)[:, None], seq.camera)
    true_world = camera_to_world(target + np.asarray(true_root, np.float64)[:, None], seq.camera)
    return world_metrics.sequence_sums(pred_world, true_world, fps=fps, skeleton=skeleton)


def evaluate_checkpoint(
    checkpoint: Path,
    data: Path,
    keypoints: str,
    *,
    subjects: list[str] | None = None,
    actions: list[str] | None = None,
    tta: bool = True,
    by_subject: bool = False,
    batch_size: int = 1024,
    device: str = "cpu",
    precision: str = "fp32",
    tf32: bool = False,
    allow_unsafe_load: bool = False,
    smoothing=None,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    trajectory: Path | None = None,
    foot_lock: bool = False,
) -> EvaluationResult:
    """`rie evaluate`: load a checkpoint and a prepared file, predict, score.

    With `trajectory` (a trajectory model's checkpoint) the root is predicted too and
    scored (`root_error`, `abs_mpjpe`); progress then counts every frame twice.

    Subjects default to the file's test split. `on_start(total_frames)` is called once
    the selection is known, then `progress(n)` as frames are predicted. `precision`:
    auto, fp32, bf16 or fp16 (`rie_cli.devices.resolve_precision`); the result records
    the one used.
    `smoothing` (a `rie_cli.smoothing.Smoothing`) filters each sequence's prediction
    before scoring. `foot_lock` (with `trajectory`) scores the motion after
    `rie_cli.trajectory.lock_sequence`, in each camera's world frame.
    """
    if foot_lock and trajectory is None:
        raise RieError("--foot-lock needs --trajectory: feet are planted in the world, where the root places them")
    precision = resolve_precision(precision, device)  # "auto" -> what runs fast here; refuses slow bf16
    if resolve_device(device).type == "cuda":
        set_tf32(tf32)  # off by default: fp32 on the GPU gives the CPU's numbers
    if batch_size < 1:
        raise RieError(f"batch size must be positive, got {batch_size}")
    checkpoint, data = Path(checkpoint), Path(data)
    if not checkpoint.is_file():
        raise RieError(f"checkpoint not found: {checkpoint}")
    dataset, subjects, sequences = _select_sequences(data, keypoints, subjects, actions)

    loaded, trajectory_model = load_models(checkpoint, trajectory, dataset.skeleton, dataset.path.name, device=device,
                                           precision=precision, tta=tta, allow_unsafe=allow_unsafe_load)
    if on_start is not None:
        on_start(sum(len(seq.keypoints_2d) for seq in sequences) * (2 if trajectory_model is not None else 1))
    predictions, trajectories = _predict(loaded, trajectory_model, sequences, dataset, tta=tta, batch_size=batch_size,
                                         device=device, precision=precision, progress=progress, smoothing=smoothing)
    if foot_lock:
        from rie_cli.trajectory import lock_sequence

        locked = [lock_sequence(p, r, dataset.skeleton, dataset.fps, s.camera)
                  for p, r, s in zip(predictions, trajectories, sequences)]
        predictions, trajectories = [lk[0] for lk in locked], [lk[1] for lk in locked]
    result = evaluate_predictions(sequences, predictions, by_subject=by_subject, trajectories=trajectories,
                                  fps=dataset.fps, skeleton=dataset.skeleton)
    result.smoothing = smoothing.describe(dataset.fps) if smoothing is not None else "none"
    result.foot_lock = foot_lock
    if trajectory_model is not None:
        result.trajectory, result.trajectory_model = str(trajectory), trajectory_model.config.to_dict()
        result.messages = [f"trajectory: {m}" for m in trajectory_model.messages]
    result.checkpoint, result.data, result.keypoints, result.subjects = str(checkpoint), str(data), keypoints, subjects
    result.tta, result.precision = tta, precision
    result.model, result.stage, result.origin = loaded.config.to_dict(), loaded.stage, loaded.origin
    result.messages = list(loaded.messages) + result.messages
    return result


def _select_sequences(data: Path, keypoints: str, subjects: list[str] | None, actions: list[str] | None):
    """(dataset, subjects, sequences) to evaluate; subjects default to the file's test split."""
    from rie_cli.data.dataset import PoseDataset

    dataset = PoseDataset(data)
    dataset.check_source(keypoints)
    subjects = list(subjects) if subjects else list(dataset.test_subjects)
    if not subjects:
        raise RieError(f"{data.name} records no test subjects: choose them with --subjects")
    # Unknown subjects and empty selections are refused here, with what the file has.
    sequences = dataset.sequences(subjects, keypoints, actions=actions)
    missing_3d = [s for s in sequences if s.positions_3d is None]
    if missing_3d:
        raise RieError(f"{missing_3d[0].subject} / {missing_3d[0].action} has no 3D ground truth to evaluate against")
    return dataset, subjects, sequences


def _predict(loaded, trajectory_model, sequences, dataset, *, tta: bool, batch_size: int, device, precision: str,
             progress, smoothing):
    """The (smoothed) poses (N, J, 3) of every sequence, and its roots (N, 3) with a trajectory model (else None)."""
    predictions = loaded.predict([seq.keypoints_2d for seq in sequences], batch_size=batch_size, progress=progress)
    trajectories = None
    if trajectory_model is not None:
        from rie_cli.trajectory import predict_trajectories

        trajectories = predict_trajectories(trajectory_model.model, [s.keypoints_2d for s in sequences],
                                            skeleton=dataset.skeleton, tta=tta, batch_size=batch_size,
                                            device=device, precision=precision, progress=progress)
    if smoothing is not None:  # the same filter on poses and root trajectories
        predictions = [smoothing.apply(p, dataset.fps) for p in predictions]
        if trajectories is not None:
            trajectories = [smoothing.apply(t, dataset.fps) for t in trajectories]
    return predictions, trajectories


# --- the report files of `rie evaluate --json/--csv` ---

def check_report_outputs(json_out: str | Path | None, csv_out: str | Path | None, force: bool) -> None:
    """Refuse report files that cannot be written, before a long evaluation rather than after it.

    `json_out` "-" is stdout (never refused); None: not asked for.
    """
    for out in ([Path(json_out)] if json_out not in (None, "-") else []) + ([Path(csv_out)] if csv_out else []):
        check_writable(out, force)
        if not out.parent.is_dir():
            raise RieError(f"the folder of output {out} does not exist")


def write_report(result: EvaluationResult, *, json_out: str | Path | None = None,
                 csv_out: str | Path | None = None) -> list[Path]:
    """Write the result as JSON (docs/evaluate.md; to stdout with "-") and as CSV (`to_csv`).

    Files are written atomically (checked beforehand with `check_report_outputs`);
    returns the files written, stdout not included.
    """
    written = []
    if json_out is not None:
        text = json.dumps(result.to_json(), indent=2) + "\n"
        if json_out == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_text_atomic(Path(json_out), text)
            written.append(Path(json_out))
    if csv_out is not None:
        write_text_atomic(Path(csv_out), result.to_csv())
        written.append(Path(csv_out))
    return written


def _json_number(value: float):
    """JSON has no NaN: undefined errors (MPJVE of single frames) become null."""
    return None if math.isnan(value) else float(value)
