"""Reading a prepared HDF5 file (docs/hdf5-format.md) into model-ready sequences.

`PoseDataset` opens the file only for as long as a read takes (h5py handles cannot
be pickled or shared across processes), and turns the stored world-frame 3D and
pixel 2D into what the model consumes (docs/method.md §1, §4):
- 2D: normalised screen coordinates of the sequence's camera;
- 3D: camera-space, root-relative, joint 0 zeroed, with the root trajectory kept aside.
Selection follows the authors' options: subjects, action prefixes (`-a`), `--subset`
(a deterministic contiguous slice of each sequence) and `--downsample` (stride).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rie_cli.cameras import Camera, CameraSet, camera_set_from_dict, normalize_screen_coordinates, world_to_camera
from rie_cli.data.h5format import (
    KEYPOINTS_2D,
    POSITIONS_3D,
    iter_action_groups,
    read_cameras_entry,
    read_root_attributes,
)
from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton


@dataclass
class Sequence:
    subject: str
    action: str  # e.g. "Walking 1"; the class is the part before the first space
    camera_index: int
    camera: Camera
    keypoints_2d: np.ndarray  # (N, J, 2) float32, normalised screen coordinates
    positions_3d: np.ndarray | None  # (N, J, 3) float32, camera space, metres, joint 0 = 0
    trajectory: np.ndarray | None  # (N, 3) float32, camera-space root position, metres

    @property
    def action_class(self) -> str:
        return action_class(self.action)

    def __len__(self) -> int:
        return len(self.keypoints_2d)


@dataclass
class WorldSequence:
    """One (subject, action) as 3D alone: what a file without 2D sources holds (`rie
    prepare-data bvh` without --cameras), for training through virtual cameras."""

    subject: str
    action: str
    world: np.ndarray  # (N, J, 3) float32, world frame, metres

    @property
    def action_class(self) -> str:
        return action_class(self.action)

    def __len__(self) -> int:
        return len(self.world)


def action_class(action: str) -> str:
    """'Walking 1' -> 'Walking', 'walk 003.2' -> 'walk' (docs/method.md §4)."""
    return action.split(" ")[0]


def _slice_start(length: int, n_frames: int, key: str, seed: int) -> int:
    """A start in [0, length - n_frames] that depends only on (seed, key): the same
    subset of a sequence on every run and every machine."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (length - n_frames + 1)


class PoseDataset:
    """A prepared `rie-poses` HDF5 file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise RieError(f"data file not found: {self.path}")
        if self.path.is_dir():  # h5py's error for a folder is a page of C-level detail
            raise RieError(f"{self.path} is a folder: give the prepared .h5 file (rie prepare-data)")
        try:
            with h5py.File(self.path, "r") as f:
                meta = read_root_attributes(f, str(self.path))
                self.cameras: CameraSet = camera_set_from_dict(meta.dataset, read_cameras_entry(f))
                # subject -> action -> HDF5 group path (names come from the groups'
                # attributes because keys are escaped, e.g. HumanEva's "Train/S1").
                self._groups: dict[str, dict[str, str]] = {}
                for subject, action, group in iter_action_groups(f):
                    self._groups.setdefault(subject, {})[action] = group.name
        except RieError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise RieError(f"cannot read {self.path} as a prepared rie file: {exc}") from None
        self.name = meta.dataset
        self.skeleton: Skeleton = meta.skeleton
        self.fps = meta.fps
        self.keypoint_sources: list[str] = meta.keypoint_sources
        self.train_subjects: list[str] = meta.train_subjects
        self.test_subjects: list[str] = meta.test_subjects

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints

    def subjects(self) -> list[str]:
        return list(self._groups)

    def actions(self, subject: str) -> list[str]:
        self._check_subject(subject)
        return list(self._groups[subject])

    def _check_subject(self, subject: str) -> None:
        if subject not in self._groups:
            raise RieError(f"subject '{subject}' is not in {self.path.name} (it has: {', '.join(self._groups)})")

    def _check_action(self, subject: str, action: str) -> str:
        self._check_subject(subject)
        if action not in self._groups[subject]:
            raise RieError(f"action '{action}' of subject {subject} is not in {self.path.name}")
        return self._groups[subject][action]

    def check_source(self, keypoints: str) -> None:
        if keypoints not in self.keypoint_sources:
            raise RieError(
                f"keypoint source '{keypoints}' is not in {self.path.name} "
                f"(it has: {', '.join(self.keypoint_sources) or 'none'})"
            )

    def world_positions(self, subject: str, action: str) -> np.ndarray:
        """(N, J, 3) float32 world positions in metres."""
        group = self._check_action(subject, action)
        with h5py.File(self.path, "r") as f:
            return f[group][POSITIONS_3D][()]

    def keypoints_pixels(self, subject: str, action: str, keypoints: str) -> np.ndarray:
        """(C, N, J, 2) float32 pixel keypoints of every camera."""
        group = self._check_action(subject, action)
        self.check_source(keypoints)
        with h5py.File(self.path, "r") as f:
            return f[group][KEYPOINTS_2D][keypoints][()]

    def select_actions(self, subject: str, actions: list[str] | None) -> list[str]:
        """The subject's actions whose names start with one of `actions` (all if None)."""
        names = self.actions(subject)
        if not actions:
            return names
        return [a for a in names if any(a.startswith(prefix) for prefix in actions)]

    def sequences(
        self,
        subjects: list[str],
        keypoints: str,
        actions: list[str] | None = None,
        subset: float = 1.0,
        downsample: int = 1,
        cameras: list[int] | None = None,
        seed: int = 1234,
        with_3d: bool = True,
    ) -> list[Sequence]:
        """Every selected (subject, action, camera) as a model-ready `Sequence`."""
        if not subjects:
            raise RieError("no subjects selected")
        if not 0 < subset <= 1:
            raise RieError(f"--subset must be in (0, 1], got {subset}")
        if downsample < 1:
            raise RieError(f"--downsample must be >= 1, got {downsample}")
        self.check_source(keypoints)
        for subject in subjects:
            self._check_subject(subject)
        out: list[Sequence] = []
        with h5py.File(self.path, "r") as f:
            for subject in subjects:
                subject_cameras = self.cameras.for_subject(subject)
                for action in self.select_actions(subject, actions):
                    group = f[self._groups[subject][action]]
                    kp_all = group[KEYPOINTS_2D][keypoints][()]  # (C, N, J, 2) pixels
                    world = group[POSITIONS_3D][()] if with_3d else None  # (N, J, 3)
                    for cam_index in range(kp_all.shape[0]):
                        if cameras is not None and cam_index not in cameras:
                            continue
                        cam = subject_cameras[cam_index]
                        kp = normalize_screen_coordinates(kp_all[cam_index], cam.res_w, cam.res_h)
                        pos, traj = None, None
                        if world is not None and cam.has_extrinsics:
                            cam_space = world_to_camera(world, cam).astype(np.float32)
                            traj = cam_space[:, 0].copy()
                            pos = cam_space - cam_space[:, :1]  # root-relative, joint 0 = 0
                        kp, pos, traj = self._cut(kp, pos, traj, subset, downsample,
                                                  f"{subject}/{action}/{cam_index}", seed)
                        out.append(Sequence(subject, action, cam_index, cam,
                                            kp.astype(np.float32), pos, traj))
        if not out:
            raise RieError(
                f"the selection (subjects {', '.join(subjects)}; actions {', '.join(actions or ['all'])}) "
                "holds no sequences"
            )
        return out

    def world_sequences(self, subjects: list[str], actions: list[str] | None = None, subset: float = 1.0,
                        downsample: int = 1, seed: int = 1234) -> list[WorldSequence]:
        """Every selected (subject, action) as world 3D, with the selection rules of `sequences`."""
        if not subjects:
            raise RieError("no subjects selected")
        for subject in subjects:
            self._check_subject(subject)
        out = []
        with h5py.File(self.path, "r") as f:
            for subject in subjects:
                for action in self.select_actions(subject, actions):
                    world = f[self._groups[subject][action]][POSITIONS_3D][()]
                    world = self._cut(world, None, None, subset, downsample, f"{subject}/{action}", seed)[0]
                    out.append(WorldSequence(subject, action, world.astype(np.float32)))
        if not out:
            raise RieError(f"the selection (subjects {', '.join(subjects)}; actions {', '.join(actions or ['all'])}) "
                           "holds no sequences")
        return out

    @staticmethod
    def _cut(kp, pos, traj, subset, stride, key, seed):
        """The authors' --subset (contiguous, deterministic slice) and --downsample."""
        n = len(kp)
        start, stop = 0, n
        if subset < 1:
            n_frames = int(round(n // stride * subset) * stride)
            n_frames = max(n_frames, min(n, stride))
            start = _slice_start(n, n_frames, key, seed)
            stop = start + n_frames
        sl = slice(start, stop, stride)
        return kp[sl], None if pos is None else pos[sl], None if traj is None else traj[sl]
