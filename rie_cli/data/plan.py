"""What every converter of `rie prepare-data` builds, and the one writer of the HDF5 file.

A converter (`prepare.py`: VideoPose3D `.npz` and Human3.6M CDF; `prepare_bvh.py`: BVH
mocap) first builds a `Plan`: everything known before a single array is written
(subjects, actions, skeleton, cameras, split) plus a loader of one sequence. Then
`write_plan` streams the sequences one (subject, action) at a time into a temporary
file next to the output and renames it at the end, so an interrupted or failed run
never leaves a half-written file under the final name. Layout: docs/hdf5-format.md.
The split rules and the stored cameras entry are shared by every converter too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from rie_cli import __version__
from rie_cli.atomic import atomic_path, check_writable
from rie_cli.cameras import Camera, CameraSet
from rie_cli.data import h5format
from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton

# progress(done, total, label): called after each (subject, action) is written.
ProgressFn = Callable[[int, int, str], None]

# Published splits (docs/method.md §4); other datasets must name their test subjects.
H36M_TRAIN = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST = ("S9", "S11")


@dataclass
class SubjectSummary:
    subject: str
    split: str  # "train", "test" or "-"
    actions: int
    frames: int


@dataclass
class PrepareSummary:
    out: Path
    dataset: str
    num_joints: int
    fps: float
    sources: list[str]
    subjects: list[SubjectSummary]
    notes: list[str] = field(default_factory=list)

    @property
    def total_actions(self) -> int:
        return sum(s.actions for s in self.subjects)

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.subjects)


@dataclass
class Plan:
    dataset: str
    skeleton: Skeleton
    fps: float
    cameras_entry: dict
    sources: list[str]
    train: list[str]
    test: list[str]
    source_info: dict
    items: list[tuple[str, str]]  # (subject, action) in writing order
    # (subject, action) -> ((N, J, 3) float32 world metres, {source: (C, N, J, 2) float32 px})
    load: Callable[[str, str], tuple[np.ndarray, dict[str, np.ndarray]]]
    notes: list[str] = field(default_factory=list)


# --- writing -------------------------------------------------------------------------

def check_output(out: str | Path, force: bool) -> Path:
    out = Path(out)
    if out.is_dir():
        raise RieError(f"output {out} is a directory; give a file name like {out / 'data.h5'}")
    return check_writable(out, force)


def write_plan(out: Path, plan: Plan, progress: ProgressFn | None) -> PrepareSummary:
    out.parent.mkdir(parents=True, exist_ok=True)
    split = {s: "train" for s in plan.train} | {s: "test" for s in plan.test}
    counts: dict[str, list[int]] = {}  # subject -> [actions, frames]
    # Also on Ctrl-C: nothing half-written may survive, under any name.
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            h5format.write_root_attributes(f, h5format.RootAttributes(
                dataset=plan.dataset,
                skeleton=plan.skeleton,
                fps=plan.fps,
                keypoint_sources=plan.sources,
                train_subjects=plan.train,
                test_subjects=plan.test,
                source=plan.source_info | {"rie_version": __version__,
                                           "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            ))
            h5format.write_cameras(f, plan.cameras_entry)
            subjects_group = f.create_group(h5format.SUBJECTS_GROUP, track_order=True)
            for done, (subject, action) in enumerate(plan.items, start=1):
                positions, keypoints = plan.load(subject, action)
                _write_action(subjects_group, subject, action, positions, keypoints)
                counts.setdefault(subject, [0, 0])
                counts[subject][0] += 1
                counts[subject][1] += len(positions)
                if progress is not None:
                    progress(done, len(plan.items), f"{subject} {action}")
    return PrepareSummary(
        out=out,
        dataset=plan.dataset,
        num_joints=plan.skeleton.num_joints,
        fps=plan.fps,
        sources=plan.sources,
        subjects=[SubjectSummary(s, split.get(s, "-"), a, n) for s, (a, n) in counts.items()],
        notes=plan.notes,
    )


def _write_action(subjects_group: h5py.Group, subject: str, action: str,
                  positions: np.ndarray, keypoints: dict[str, np.ndarray]) -> None:
    key = h5format.encode_key(subject)
    if key not in subjects_group:
        subjects_group.create_group(key, track_order=True).attrs["name"] = subject
    group = subjects_group[key].create_group(h5format.encode_key(action), track_order=True)
    group.attrs["name"] = action
    n, j, _ = positions.shape
    group.create_dataset(h5format.POSITIONS_3D, data=positions.astype(np.float32),
                         chunks=h5format.positions_chunks(n, j), **h5format.COMPRESSION)
    kp_group = group.create_group(h5format.KEYPOINTS_2D, track_order=True)
    for source, views in keypoints.items():  # (C, N, J, 2)
        kp_group.create_dataset(source, data=views.astype(np.float32),
                                chunks=h5format.keypoints_chunks(n, j), **h5format.COMPRESSION)


def check_finite(arr: np.ndarray, label: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise RieError(f"{label}: {int(bad.sum())} NaN/inf values (first at frame {frame})")


def resolve_splits(name: str, subjects: list[str], train: list[str] | None,
                    test: list[str] | None) -> tuple[list[str], list[str]]:
    """The split recorded in the file. Given lists are used as they are; a list not given
    is the published split (Human3.6M, HumanEva-I) or every subject not in the other list.
    A dataset without a published split must name its test subjects."""
    if test is None:
        if name == "h36m":
            test = [s for s in H36M_TEST if s in subjects]
        elif name == "humaneva":
            test = [s for s in subjects if s.startswith("Validate/")]
        else:
            raise RieError(f"dataset '{name}' has no default split: give --test-subjects "
                           f"(its subjects: {', '.join(subjects)})")
    if train is None:
        if name == "h36m":
            train = [s for s in H36M_TRAIN if s in subjects]
        elif name == "humaneva":
            train = [s for s in subjects if s.startswith("Train/")]
        else:
            train = [s for s in subjects if s not in test]
    for s in train + test:
        if s not in subjects:
            raise RieError(f"split subject '{s}' is not in the data (its subjects: {', '.join(subjects)})")
    both = sorted(set(train) & set(test))
    if both:
        raise RieError(f"subjects {', '.join(both)} are in both the training and the test split")
    return list(train), list(test)


# --- cameras -------------------------------------------------------------------------

def subject_cameras(cameras: CameraSet, subject: str) -> tuple[Camera, ...]:
    """The subject's cameras; HumanEva-I names subjects 'Train/S1' while its cameras file
    has 'S1', so the part after the last '/' is tried too."""
    if subject in cameras.cameras:
        return cameras.cameras[subject]
    return cameras.for_subject(subject.rsplit("/", 1)[-1])


def cameras_entry(cameras: CameraSet, subjects: list[str]) -> dict:
    """The cameras-file entry stored in the file, with extrinsics keyed by the dataset's
    own subject names (so a reader needs no HumanEva special case)."""
    intrinsics = []
    for cam in cameras.intrinsics_only:
        d = cam.to_dict()
        d.pop("orientation", None)
        d.pop("translation", None)
        intrinsics.append(d)
    extrinsics = {}
    for subject in subjects:
        cams = subject_cameras(cameras, subject)
        if all(c.has_extrinsics for c in cams):
            extrinsics[subject] = [{"orientation": list(c.orientation),
                                    "translation": [t * 1000.0 for t in c.translation]} for c in cams]
    return {"fps": cameras.fps, "intrinsics": intrinsics, "extrinsics": extrinsics}


def iter_summary_rows(summary: PrepareSummary) -> Iterator[tuple[str, str, str, str]]:
    """(subject, split, actions, frames) rows as text, for tables."""
    for s in summary.subjects:
        yield s.subject, s.split, str(s.actions), f"{s.frames:,}"
