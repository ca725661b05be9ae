"""The `rie-poses` HDF5 layout (docs/hdf5-format.md): names, constants and small helpers.

One place defines how a prepared file is laid out, so the writer (`plan.py`) and
the reader (`dataset.py`) cannot drift apart:

    /                      root attributes (RootAttributes)
    /cameras               attribute "json": the dataset's cameras-file entry
    /subjects/<s>/<a>/     attribute "name"; datasets positions_3d, keypoints_2d/<source>

Group keys are the subject and action names with "%" and "/" escaped (HumanEva-I
subjects are "Train/S1"); the real name is always the group's "name" attribute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import h5py
import numpy as np

from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton, skeleton_from_dict

FORMAT_NAME = "rie-poses"
FORMAT_VERSION = 1

UNITS = {"positions_3d": "metres, world frame", "keypoints_2d": "pixels"}

CAMERAS_GROUP = "cameras"
SUBJECTS_GROUP = "subjects"
POSITIONS_3D = "positions_3d"  # (N, J, 3) float32, world frame, metres
KEYPOINTS_2D = "keypoints_2d"  # group: one (C, N, J, 2) float32 pixel dataset per source

# Frames per chunk: ~70 kB of 3D for 17 joints, big enough for gzip to work well,
# small enough that reading a short window touches few chunks.
CHUNK_FRAMES = 1024
COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def encode_key(name: str) -> str:
    """A subject/action name -> an HDF5 group key ('Train/S1' -> 'Train%2FS1')."""
    # "%" first, so that an escaped "/" cannot be confused with a literal "%2F".
    return name.replace("%", "%25").replace("/", "%2F")


def decode_key(key: str) -> str:
    """Inverse of `encode_key`."""
    return key.replace("%2F", "/").replace("%25", "%")


def action_path(subject: str, action: str) -> str:
    """The HDF5 path of one (subject, action) group."""
    return f"/{SUBJECTS_GROUP}/{encode_key(subject)}/{encode_key(action)}"


def positions_chunks(num_frames: int, num_joints: int) -> tuple[int, int, int]:
    """Chunks along time only: all joints and coordinates of a frame in one chunk."""
    return (max(1, min(num_frames, CHUNK_FRAMES)), num_joints, 3)


def keypoints_chunks(num_frames: int, num_joints: int) -> tuple[int, int, int, int]:
    """One camera per chunk, chunked along time like the 3D."""
    return (1, max(1, min(num_frames, CHUNK_FRAMES)), num_joints, 2)


@dataclass
class RootAttributes:
    """The root attributes of a prepared file: what a reader needs before any array."""

    dataset: str
    skeleton: Skeleton
    fps: float
    keypoint_sources: list[str]
    train_subjects: list[str]
    test_subjects: list[str]
    source: dict = field(default_factory=dict)  # kind, input files, rie version, created (UTC)
    units: dict = field(default_factory=lambda: dict(UNITS))
    format_version: int = FORMAT_VERSION

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def write_root_attributes(f: h5py.File, meta: RootAttributes) -> None:
    a = f.attrs
    a["format"] = FORMAT_NAME
    a["format_version"] = np.int64(meta.format_version)
    a["dataset"] = meta.dataset
    a["num_joints"] = np.int64(meta.num_joints)
    a["skeleton"] = json.dumps(meta.skeleton.to_dict())
    # Also as plain integer arrays, for people reading the file with other tools.
    a["parents"] = np.asarray(meta.skeleton.parents, dtype=np.int64)
    a["joints_left"] = np.asarray(meta.skeleton.joints_left, dtype=np.int64)
    a["joints_right"] = np.asarray(meta.skeleton.joints_right, dtype=np.int64)
    a["fps"] = np.float64(meta.fps)
    a["units"] = json.dumps(meta.units)
    a["keypoint_sources"] = json.dumps(list(meta.keypoint_sources))
    a["train_subjects"] = json.dumps(list(meta.train_subjects))
    a["test_subjects"] = json.dumps(list(meta.test_subjects))
    a["source"] = json.dumps(meta.source)


def read_root_attributes(f: h5py.File, path: str = "") -> RootAttributes:
    """Read and check the root attributes; RieError when the file is not a rie-poses file
    or comes from a newer format version."""
    a = f.attrs
    where = path or f.filename
    if _text(a.get("format", "")) != FORMAT_NAME:
        raise RieError(f"{where} is not a prepared rie file (run `rie prepare-data` first)")
    version = int(a.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise RieError(f"{where} has format version {version}; this rie reads up to {FORMAT_VERSION} (upgrade rie)")
    try:
        return RootAttributes(
            dataset=_text(a["dataset"]),
            skeleton=skeleton_from_dict(json.loads(_text(a["skeleton"]))),
            fps=float(a["fps"]),
            keypoint_sources=list(json.loads(_text(a["keypoint_sources"]))),
            train_subjects=list(json.loads(_text(a["train_subjects"]))),
            test_subjects=list(json.loads(_text(a["test_subjects"]))),
            source=json.loads(_text(a.get("source", "{}"))),
            units=json.loads(_text(a.get("units", json.dumps(UNITS)))),
            format_version=version,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise RieError(f"{where} has broken root attributes: {exc!r}") from None


def write_cameras(f: h5py.File, cameras_entry: dict) -> None:
    """Store the dataset's cameras-file entry (schema: docs/hdf5-format.md) as JSON, plus
    plain numeric copies for other tools."""
    group = f.create_group(CAMERAS_GROUP)
    group.attrs["json"] = json.dumps(cameras_entry)
    intrinsics = cameras_entry["intrinsics"]
    for key in ("focal_length", "center", "radial_distortion", "tangential_distortion"):
        if all(key in cam for cam in intrinsics):
            group.create_dataset(key, data=np.asarray([cam[key] for cam in intrinsics], dtype=np.float64))
    group.create_dataset("resolution", data=np.asarray([[c["res_w"], c["res_h"]] for c in intrinsics], dtype=np.int64))
    extrinsics = group.create_group("extrinsics")
    for subject, extrs in (cameras_entry.get("extrinsics") or {}).items():
        if not extrs or not all(e and "orientation" in e and "translation" in e for e in extrs):
            continue
        sub = extrinsics.create_group(encode_key(subject))
        sub.attrs["name"] = subject
        sub.create_dataset("orientation", data=np.asarray([e["orientation"] for e in extrs], dtype=np.float64))
        sub.create_dataset("translation_mm", data=np.asarray([e["translation"] for e in extrs], dtype=np.float64))


def read_cameras_entry(f: h5py.File) -> dict:
    """The cameras-file entry stored by `write_cameras` (for `camera_set_from_dict`)."""
    return json.loads(_text(f[CAMERAS_GROUP].attrs["json"]))


def iter_action_groups(f: h5py.File):
    """Yield (subject, action, group) in file order, with the real (decoded) names."""
    for subject_group in f[SUBJECTS_GROUP].values():
        subject = _text(subject_group.attrs["name"])
        for action_group in subject_group.values():
            yield subject, _text(action_group.attrs["name"]), action_group
