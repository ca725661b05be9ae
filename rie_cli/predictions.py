"""Prediction files: what `rie export predictions` and `rie predict` write, and reading them back.

Two kinds, named apart by what they hold:

- dataset predictions (many sequences), `rie export predictions`: .npz (VideoPose3D's
  nesting: subject -> action -> list of per-camera (N, J, 3) arrays, a pickled dict
  under `predictions`, JSON text under `metadata`, and with a trajectory model the
  predicted roots under `trajectory`, nested alike), .csv or .json; docs/export.md.
  `write_dataset_predictions` / `read_dataset_predictions`.
- a clip prediction (one sequence), `rie predict`: an .npz of plain arrays, `poses_3d`
  (T, J, 3) and what produced it; optional keys `trajectory` (T, 3) float32, the
  camera-space root in metres, and `space` ("camera-relative", "camera" or "world").
  `write_clip_prediction` / `read_clip_prediction`.

One sequence out of either kind: `read_sequence_poses` (its root-relative camera-space
poses, what `rie render --predictions` shows) and `read_sequence` (a `PredictedSequence`:
poses in whatever space the file holds, skeleton, fps, trajectory; `rie export bvh`).
Every write is atomic (`rie_cli.atomic`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rie_cli.atomic import atomic_path
from rie_cli.errors import RieError, choices
from rie_cli.skeleton import Skeleton

PREDICTION_SUFFIXES = (".npz", ".csv", ".json")
JSON_DECIMALS = 6  # micrometres: below float32 resolution of poses in metres


def write_dataset_predictions(out: Path, sequences, poses: list[np.ndarray], metadata: dict,
                              skeleton: Skeleton, trajectories: list[np.ndarray] | None = None,
                              contacts: list[np.ndarray] | None = None) -> Path:
    """Many sequences: one (N, J, 3) array per `Sequence` to `out` (.npz, .csv or .json), atomically.

    `trajectories`: the predicted camera-space root (N, 3) of each sequence, stored
    beside the poses in .npz and .json files (`trajectory`); `contacts`: its feet's
    contacts (N, F) bool (`--foot-lock`), stored alike (`contacts`).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as partial:
        if suffix == ".npz":
            _write_npz(partial, sequences, poses, metadata, trajectories, contacts)
        elif suffix == ".csv":
            _write_csv(partial, sequences, poses, skeleton)
        elif suffix == ".json":
            _write_json(partial, sequences, poses, metadata, trajectories, contacts)
        else:
            raise RieError(f"cannot write '{out.name}': predictions are written as .npz, .csv or .json")
    return out


def _nested(sequences, poses, dtype=np.float32) -> dict:
    """subject -> action -> list indexed by camera (None for cameras not selected)."""
    nested: dict[str, dict[str, list]] = {}
    for seq, pose in zip(sequences, poses):
        cams = nested.setdefault(seq.subject, {}).setdefault(seq.action, [])
        cams.extend([None] * (seq.camera_index + 1 - len(cams)))
        cams[seq.camera_index] = np.asarray(pose, dtype=dtype)
    return nested


def _write_npz(path: Path, sequences, poses, metadata, trajectories=None, contacts=None) -> None:
    # np.savez stores the dict as a 0-d object array (VideoPose3D's own layout);
    # `metadata` is plain JSON text, readable without allow_pickle.
    extra = {}
    if trajectories is not None:  # the same nesting, (N, 3) per camera
        extra["trajectory"] = np.array(_nested(sequences, trajectories), dtype=object)
    if contacts is not None:  # (N, F) bool per camera, F = the skeleton's feet
        extra["contacts"] = np.array(_nested(sequences, contacts, dtype=bool), dtype=object)
    with open(path, "wb") as f:
        np.savez_compressed(f, predictions=np.array(_nested(sequences, poses), dtype=object),
                            metadata=np.array(json.dumps(metadata)), **extra)


def _write_csv(path: Path, sequences, poses, skeleton: Skeleton) -> None:
    names = skeleton.joint_names or tuple(f"joint{j}" for j in range(skeleton.num_joints))
    header = ["subject", "action", "camera", "frame"] + [f"{n}_{axis}" for n in names for axis in "xyz"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for seq, pose in zip(sequences, poses):
            flat = np.asarray(pose, dtype=np.float32).reshape(len(pose), -1)  # (N, 3J)
            for frame, row in enumerate(flat):
                writer.writerow([seq.subject, seq.action, seq.camera_index, frame]
                                + [f"{v:.{JSON_DECIMALS}f}" for v in row])


def _write_json(path: Path, sequences, poses, metadata, trajectories=None, contacts=None) -> None:
    doc = {
        "metadata": metadata,
        "sequences": [
            {"subject": seq.subject, "action": seq.action, "camera": seq.camera_index,
             "frames": len(pose), "poses": np.round(np.asarray(pose, dtype=np.float64), JSON_DECIMALS).tolist()}
            for seq, pose in zip(sequences, poses)
        ],
    }
    for entry, root in zip(doc["sequences"], trajectories or []):
        entry["trajectory"] = np.round(np.asarray(root, dtype=np.float64), JSON_DECIMALS).tolist()
    for entry, planted in zip(doc["sequences"], contacts or []):
        entry["contacts"] = np.asarray(planted, dtype=bool).tolist()
    with open(path, "w") as f:
        json.dump(doc, f)


def read_dataset_predictions(path: Path) -> tuple[dict, dict]:
    """Many sequences: an .npz of `rie export predictions` -> (nested predictions, metadata)."""
    path = Path(path)
    with _reading(path):
        with np.load(path, allow_pickle=True) as f:
            if "predictions" not in f:
                raise RieError(f"{path.name} holds no 'predictions' (keys: {', '.join(f.files)})")
            nested = f["predictions"].item()
            metadata = json.loads(str(f["metadata"])) if "metadata" in f else {}
    return nested, metadata


def recorded_keypoints(path: Path) -> str | None:
    """The 2D keypoint source an export of a prepared file was predicted from (its metadata's
    `keypoints`); None for a `rie predict` clip or a file that does not record it."""
    path = Path(path)
    with _reading(path):
        with np.load(path, allow_pickle=False) as f:
            if "predictions" not in f or "metadata" not in f:
                return None
            source = json.loads(str(f["metadata"])).get("keypoints")
    return None if source is None else str(source)


def write_clip_prediction(out: Path, poses_3d: np.ndarray, arrays: dict) -> Path:
    """One clip: `poses_3d` (T, J, 3) and the other `arrays` as one .npz of plain arrays
    (np.load needs no allow_pickle), written atomically (`rie predict`'s output)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    contents = {"poses_3d": np.asarray(poses_3d, dtype=np.float32)}
    contents.update({key: np.asarray(value) for key, value in arrays.items()})
    with atomic_path(out) as partial, open(partial, "wb") as f:
        np.savez_compressed(f, **contents)
    return out


def read_clip_prediction(path: Path) -> dict[str, np.ndarray]:
    """One clip: every array of an .npz written by `rie predict` (`poses_3d` among them)."""
    path = Path(path)
    with _reading(path):
        with np.load(path) as f:
            if "poses_3d" not in f:
                raise RieError(f"{path.name} holds no 'poses_3d' (keys: {', '.join(f.files)}); "
                               "is it a `rie predict` output?")
            return {key: f[key] for key in f.files}


def read_sequence_poses(path: Path, subject: str, action: str, camera: int) -> np.ndarray:
    """One sequence's (N, J, 3) camera-space prediction from either kind of .npz: the
    (subject, action, camera) entry of an export, or the `poses_3d` of a `rie predict` clip."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise RieError(f"--predictions must be an .npz file (from `rie export predictions` or `rie predict`): {path}")
    with _reading(path):
        with np.load(path, allow_pickle=True) as f:
            if "predictions" not in f and "poses_3d" in f:
                return _root_relative(path, f)
    nested, metadata = read_dataset_predictions(path)
    # "camera" is how files written before trajectory models named root-relative poses.
    if metadata.get("space", "camera-relative") not in ("camera-relative", "camera") or \
            not metadata.get("root_relative", True):
        raise RieError(f"{path.name} holds {metadata['space']}-space poses; render needs root-relative camera-space "
                       "poses (an export written without --world or --trajectory)")
    try:
        pose = nested[subject][action][camera]
    except (KeyError, IndexError, TypeError):
        pose = None
    if pose is None:
        raise RieError(f"{path.name} holds no prediction for {subject} / {action} camera {camera}")
    return np.asarray(pose, dtype=np.float32)


def _root_relative(path: Path, f) -> np.ndarray:
    """The root-relative camera-space poses (T, J, 3) of a `rie predict` file, whatever its `space`."""
    poses = _one_person(path, np.asarray(f["poses_3d"], dtype=np.float32))
    space = str(f["space"]) if "space" in f else "camera-relative"  # files from before trajectories
    if space == "camera-relative":
        return poses
    if space == "camera" and "trajectory" in f:  # placed at the predicted root: take it off again
        return poses - np.asarray(f["trajectory"], dtype=np.float32)[:, None, :]
    if space == "floor" and "floor_rotation" in f:  # levelled: back to camera space, then root-relative
        camera = (poses - f["floor_offset"]) @ np.asarray(f["floor_rotation"])
        return (camera - camera[:, :1]).astype(np.float32)
    raise RieError(f"{path.name} holds {space}-space poses; render needs camera-space ones (a `rie predict` "
                   "output written without --cameras)")


def _one_person(path: Path, poses: np.ndarray) -> np.ndarray:
    """A `rie predict` file's poses, refused where it holds several people ((P, T, J, 3))."""
    if poses.ndim == 4:
        raise RieError(f"{path.name} holds {poses.shape[0]} people (rie predict --person all): write one person's "
                       "file with --person N to use it here")
    return poses


@contextlib.contextmanager
def _reading(path: Path):
    """Turn the ways reading an .npz fails into one RieError line naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise RieError(f"predictions file not found: {path}") from None
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise RieError(f"cannot read predictions file {path}: {exc}") from None


@dataclass
class PredictedSequence:
    """One sequence of a predictions file, with what is needed to use it elsewhere."""

    poses: np.ndarray  # (T, J, 3) metres, in `space`
    skeleton: Skeleton
    space: str  # "camera" / "camera-relative" (camera axes) or "world"
    fps: float | None
    trajectory: np.ndarray | None  # (T, 3) camera-space root to add to root-relative poses, where the file has it
    root_relative: bool  # poses relative to the root joint (the root's own small offsets are noise)
    label: str  # "S9 / Walking camera 0", or the file name for a single-sequence file


def read_sequence(path: Path, subject: str | None = None, action: str | None = None,
                  camera: int | None = None) -> PredictedSequence:
    """One sequence from a predictions .npz: the single `poses_3d` of `rie predict`, or
    one (subject, action, camera) of `rie export predictions` (each may be left out
    where the file holds only one)."""
    from rie_cli.skeleton import skeleton_for_joints, skeleton_from_dict

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise RieError(f"predictions must be an .npz file (from `rie predict` or `rie export predictions`): {path}")
    try:
        with np.load(path, allow_pickle=True) as f:
            arrays = {key: f[key] for key in f.files}
    except FileNotFoundError:
        raise RieError(f"predictions file not found: {path}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise RieError(f"cannot read predictions file {path}: {exc}") from None
    metadata = json.loads(str(arrays["metadata"])) if "metadata" in arrays else {}
    fps = float(arrays["fps"]) if "fps" in arrays else metadata.get("fps")
    space = str(arrays["space"]) if "space" in arrays else metadata.get("space", "camera-relative")
    # Files written before the "camera-relative" name say "camera" with root_relative.
    root_relative = bool(metadata.get("root_relative", space == "camera-relative"))
    if "poses_3d" in arrays:
        poses = _one_person(path, np.asarray(arrays["poses_3d"], dtype=np.float32))
        trajectory = arrays.get("trajectory")
        label = path.name
    elif "predictions" in arrays:
        nested = arrays["predictions"].item()
        subject, action, camera = _choose_sequence(nested, subject, action, camera, path.name)
        poses = np.asarray(nested[subject][action][camera], dtype=np.float32)
        trajectory = _nested_entry(arrays.get("trajectory"), subject, action, camera)
        label = f"{subject} / {action} camera {camera}"
    else:
        raise RieError(f"{path.name} holds no poses (no 'poses_3d' or 'predictions'; keys: {', '.join(arrays)})")
    if poses.ndim != 3 or poses.shape[-1] != 3 or len(poses) == 0:
        raise RieError(f"{path.name}: expected poses of shape (frames, joints, 3), got {poses.shape}")
    skeleton = (skeleton_from_dict(metadata["skeleton"]) if "skeleton" in metadata
                else skeleton_for_joints(poses.shape[1]))
    if not root_relative:
        trajectory = None  # already in the poses (placed at the predicted root); kept in the file for reference
    if trajectory is not None:
        trajectory = np.asarray(trajectory, dtype=np.float32)
        if trajectory.shape != (len(poses), 3):
            raise RieError(f"{path.name}: trajectory of shape {trajectory.shape} does not match {len(poses)} frames")
    return PredictedSequence(poses, skeleton, space, float(fps) if fps else None, trajectory, root_relative, label)


def _choose_sequence(nested: dict, subject, action, camera, name: str) -> tuple[str, str, int]:
    """Fill in subject, action and camera where the file leaves one choice; else a
    RieError that lists what there is."""
    def pick(what: str, value, options: list, flag: str):
        if value is None:
            if len(options) == 1:
                return options[0]
            raise RieError(f"{name} holds several {what}s: choose one with {flag} ({choices(options)})")
        if value not in options:
            raise RieError(f"{name} has no {what} '{value}' (it has: {choices(options)})")
        return value

    subject = pick("subject", subject, sorted(nested), "--subject")
    action = pick("action", action, sorted(nested[subject]), "--action")
    cameras = [i for i, p in enumerate(nested[subject][action]) if p is not None]
    camera = pick("camera", camera, cameras, "--camera")
    return subject, action, camera


def _nested_entry(value, subject: str, action: str, camera: int):
    """The (subject, action, camera) entry of an optional nested array, or None."""
    if value is None:
        return None
    try:
        return value.item()[subject][action][camera]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


# --- models --------------------------------------------------------------------------
