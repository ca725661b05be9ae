"""Reading 2D keypoints that detectors wrote, and the joint layouts they come in.

    track = read_keypoints(Path("clip.json"))            # format detected from the file
    track.points  # (T, K, 2) pixels, NaN where the file has no point
    track.scores  # (T, K) confidences or None
    track.layout  # "h36m", "coco" or None (17 joints of unknown order)

Formats (`FORMATS`; docs/predict.md shows each one):
- `h36m` / `coco`: a `.npy` array, or an `.npz` with key `keypoints`, of shape
  (frames, joints, 2) or (frames, joints, 3) with a score column, in pixels, in the
  named joint order. `auto` reads the same files and works out the order itself.
  An `.npz` may also hold `width` and `height` (the image size) and `layout`.
- `vp3d-custom`: VideoPose3D's custom-video file (`data/prepare_data_2d_custom.py`):
  `positions_2d` = {video: {"custom": [(N, 17, 2|3) array]}} and `metadata` with
  `layout_name` and `video_metadata` = {video: {"w": .., "h": ..}}.
- `mmpose-json`: MMPose predictions for a video: the inferencer's list of
  {"frame_id", "instances": [{"keypoints": [[x, y], ..], "keypoint_scores": [..],
  "bbox_score"}]}, the demo scripts' {"meta_info", "instance_info": [...same...]},
  or the older list of per-frame {"keypoints": [x, y, c, ...]}; also a folder of
  per-image JSON files.
- `openpose-dir`: a folder of OpenPose `*_keypoints.json` files (one per frame,
  `people[i].pose_keypoints_2d` = x, y, c, ...), BODY_25 or COCO-18, which are
  turned into COCO-17 here.

Where a file holds several people in a frame, the most confident one is kept (the
highest bbox score, else the highest mean keypoint score): `rie predict` lifts one
person and does no tracking.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rie_cli.errors import RieError
from rie_cli.joint_layouts import LAYOUTS

FORMATS = ("auto", "h36m", "coco", "vp3d-custom", "mmpose-json", "openpose-dir")

# OpenPose layouts -> COCO-17: for each COCO joint, its index in the OpenPose layout.
OPENPOSE_TO_COCO = {
    # BODY_25: 0 nose, 1 neck, 2-4 right arm, 5-7 left arm, 8 mid-hip, 9-11 right leg,
    # 12-14 left leg, 15/16 right/left eye, 17/18 right/left ear, 19-24 feet.
    25: ("BODY_25", (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)),
    # COCO-18: like BODY_25's first 15 without mid-hip, then eyes and ears.
    18: ("COCO-18", (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)),
}

# Layouts whose first 17 keypoints are COCO-17's (MMPose's Halpe-26 and COCO-WholeBody-133).
COCO_PREFIXED = {26: "Halpe-26", 133: "COCO-WholeBody"}


@dataclass
class KeypointTrack:
    """One person's 2D keypoints over time, in the file's own joint layout."""

    points: np.ndarray  # (T, K, 2) float64 pixels, NaN where the file has no point
    scores: np.ndarray | None  # (T, K) float64 confidences, None when the file has none
    layout: str | None  # "h36m", "coco", or None: 17 joints, order not stated by the file
    format: str  # what it was read as: a FORMATS name, or "array" for an array of unstated joint order
    width: int | None = None  # image size, where the file records it
    height: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.points.shape[0]


# --- entry point -----------------------------------------------------------------------

def read_keypoints(path: str | Path, fmt: str = "auto", *, video_name: str | None = None) -> KeypointTrack:
    """Read one person's keypoints from `path` as `fmt` ("auto": from the file itself)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise RieError(f"unknown keypoint format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not path.exists():
        raise RieError(f"keypoints not found: {path}")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt in ("h36m", "coco", "auto-array"):
        track = read_array(path, layout=None if fmt == "auto-array" else fmt)
    elif fmt == "vp3d-custom":
        track = read_vp3d_custom(path, video_name)
    elif fmt == "mmpose-json":
        track = read_mmpose_json(path)
    else:
        track = read_openpose_dir(path)
    if video_name is not None and track.format != "vp3d-custom":
        raise RieError("--video-name picks a video inside a VideoPose3D custom .npz; "
                       f"{path.name} is read as {track.format}")
    if track.num_frames == 0:
        raise RieError(f"{path.name} holds no frames")
    return track


def detect_format(path: Path) -> str:
    """The format of `path` from its kind and contents; "auto-array" is a keypoint array
    whose joint order is left open (the file's `layout`, else `detect_layout`)."""
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise RieError(f"{path} is a folder without .json files (expected OpenPose or MMPose per-frame JSON)")
        first = _load_json(files[0])
        if isinstance(first, dict) and "people" in first:
            return "openpose-dir"
        return "mmpose-json"
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "auto-array"
    if suffix == ".npz":
        with _open_npz(path) as f:
            if "positions_2d" in f.files:
                return "vp3d-custom"
            if "keypoints" in f.files:
                return "auto-array"
            raise RieError(f"{path.name} has neither 'keypoints' nor 'positions_2d' (keys: {', '.join(f.files)})")
    if suffix == ".json":
        doc = _load_json(path)
        if isinstance(doc, dict) and "people" in doc:
            raise RieError(f"{path.name} is one OpenPose frame: give the folder of per-frame files")
        return "mmpose-json"
    raise RieError(f"cannot tell the format of {path.name}: expected .npy, .npz, .json or a folder "
                   "(or name it with --format)")


# --- arrays ----------------------------------------------------------------------------

def read_array(path: Path, layout: str | None = None) -> KeypointTrack:
    """A (frames, joints, 2|3) pixel array from .npy, or .npz key `keypoints`."""
    width = height = None
    stored_layout = None
    if path.is_dir():
        raise RieError(f"{path} is a folder; a keypoint array is a .npy or .npz file")
    if path.suffix.lower() == ".npz":
        with _open_npz(path) as f:
            if "keypoints" not in f.files:
                raise RieError(f"{path.name} has no 'keypoints' array (keys: {', '.join(f.files)})")
            array = f["keypoints"]
            width = _optional_int(f, "width", path)
            height = _optional_int(f, "height", path)
            if "layout" in f.files:
                stored_layout = str(f["layout"])
    else:
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise RieError(f"cannot read {path.name} as a .npy array: {_first_line(exc)}") from None
    if stored_layout is not None and stored_layout not in LAYOUTS[1:]:
        raise RieError(f"{path.name} names layout '{stored_layout}'; known layouts: h36m, coco")
    if layout is None:
        layout = stored_layout
    points, scores = split_scores(array, path.name)
    fmt = layout if layout in ("h36m", "coco") else "array"
    return KeypointTrack(points, scores, layout, fmt, width, height)


def split_scores(array, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(T, K, 2) -> points, None; (T, K, 3) -> points, scores (third column)."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu" or array.ndim != 3 or array.shape[-1] not in (2, 3):
        raise RieError(f"{name}: keypoints must be a numeric (frames, joints, 2) array, or (frames, joints, 3) "
                       f"with a score column; got {array.dtype} {array.shape}")
    array = array.astype(np.float64)
    return array[..., :2].copy(), (array[..., 2].copy() if array.shape[-1] == 3 else None)


# --- VideoPose3D custom video ----------------------------------------------------------

def read_vp3d_custom(path: Path, video_name: str | None) -> KeypointTrack:
    """VideoPose3D's `data_2d_custom_*.npz`: one video's track and its resolution."""
    try:
        with np.load(path, allow_pickle=True) as f:
            if "positions_2d" not in f.files:
                raise RieError(f"{path.name} has no 'positions_2d' (keys: {', '.join(f.files)}): "
                               "not a VideoPose3D custom-video file")
            positions = f["positions_2d"].item()
            metadata = f["metadata"].item() if "metadata" in f.files else {}
    except RieError:
        raise
    except (OSError, ValueError, EOFError, AttributeError) as exc:
        raise RieError(f"cannot read {path.name} as a VideoPose3D .npz: {_first_line(exc)}") from None
    if not isinstance(positions, dict) or not positions:
        raise RieError(f"{path.name}: 'positions_2d' holds no videos")
    videos = sorted(positions)
    if video_name is None:
        if len(videos) > 1:
            raise RieError(f"{path.name} holds {len(videos)} videos; pick one with --video-name "
                           f"({', '.join(map(str, videos))})")
        video_name = videos[0]
    elif video_name not in positions:
        raise RieError(f"video '{video_name}' is not in {path.name} (it has: {', '.join(map(str, videos))})")
    entry = positions[video_name]
    try:
        array = entry["custom"][0]
    except (KeyError, IndexError, TypeError):
        raise RieError(f"{path.name}: video '{video_name}' has no ['custom'][0] keypoint array") from None
    points, scores = split_scores(array, f"{path.name} / {video_name}")

    layout_name = str(metadata.get("layout_name", "")).lower() if isinstance(metadata, dict) else ""
    layout = "coco" if layout_name == "coco" else "h36m" if layout_name.startswith("h36m") else None
    notes = [f"video '{video_name}' of {path.name}"]
    if layout_name and layout is None:
        notes.append(f"metadata layout '{layout_name}' is not h36m or coco; the joint order is worked out instead")
    video_meta = (metadata.get("video_metadata") or {}).get(video_name, {}) if isinstance(metadata, dict) else {}
    width, height = video_meta.get("w"), video_meta.get("h")
    return KeypointTrack(points, scores, layout, "vp3d-custom",
                         int(width) if width is not None else None,
                         int(height) if height is not None else None, notes)


# --- MMPose ----------------------------------------------------------------------------

def read_mmpose_json(path: Path) -> KeypointTrack:
    """MMPose predictions: one JSON for a video, or a folder of per-image JSON files."""
    meta: dict = {}
    if path.is_dir():
        files = _sorted_frames(sorted(path.glob("*.json")))
        if not files:
            raise RieError(f"{path} holds no .json files")
        frames = [_load_json(f) for f in files]
        source = f"{len(files)} files in {path.name}"
    else:
        doc = _load_json(path)
        source = path.name
        if isinstance(doc, dict) and "instance_info" in doc:  # the demo scripts' layout
            meta = doc.get("meta_info") or {}
            frames = doc["instance_info"]
        elif isinstance(doc, list):
            frames = doc
        else:
            raise RieError(f"{path.name} is not MMPose predictions: expected a list of frames or "
                           "{'meta_info', 'instance_info'}")
        if isinstance(frames, list) and frames and all(isinstance(f, dict) and "frame_id" in f for f in frames):
            frames = sorted(frames, key=lambda f: f["frame_id"])
    if not isinstance(frames, list):
        raise RieError(f"{source}: the frames are not a list")

    people = [_frame_people(frame, source, index) for index, frame in enumerate(frames)]
    num_joints = {len(p[0]) for persons in people for p in persons}
    if not num_joints:
        raise RieError(f"{source}: no person is detected in any frame")
    if len(num_joints) > 1:
        raise RieError(f"{source}: frames disagree on the number of keypoints ({sorted(num_joints)})")
    (k,) = num_joints
    points = np.full((len(frames), k, 2), np.nan)
    scores = np.full((len(frames), k), np.nan)
    crowded = 0
    for t, persons in enumerate(people):
        if not persons:
            continue
        crowded += len(persons) > 1
        xy, conf, _ = max(persons, key=lambda p: p[2])
        points[t], scores[t] = xy, conf
    notes = []
    if crowded:
        notes.append(f"{crowded} frame(s) have several people; the most confident one is used in each")
    has_scores = bool(np.isfinite(scores).any())
    points, layout = _mmpose_layout(points, meta, k, source, notes)
    if has_scores:
        scores = scores[:, : points.shape[1]]
    return KeypointTrack(points, scores if has_scores else None, layout, "mmpose-json", notes=notes)


def _frame_people(frame, source: str, index: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """One frame's people as (xy (K, 2), scores (K,) with NaN if absent, ranking score)."""
    if isinstance(frame, dict) and "instances" in frame:
        persons = frame["instances"] or []
    elif isinstance(frame, dict) and "keypoints" in frame:
        persons = [frame]
    elif isinstance(frame, list):
        persons = frame
    else:
        raise RieError(f"{source}: frame {index} is neither {{'instances': [...]}}, {{'keypoints': [...]}} "
                       "nor a list of people")
    out = []
    for person in persons:
        if not isinstance(person, dict) or "keypoints" not in person:
            raise RieError(f"{source}: frame {index} has a person without 'keypoints'")
        xy, conf = _person_keypoints(person["keypoints"], source, index)
        if "keypoint_scores" in person:
            conf = _numbers(person["keypoint_scores"], source, index).reshape(-1)
            if conf.shape[0] != xy.shape[0]:
                raise RieError(f"{source}: frame {index} has {xy.shape[0]} keypoints but {conf.shape[0]} scores")
        out.append((xy, conf, _ranking_score(person, conf)))
    return out


def _person_keypoints(value, source: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    array = _numbers(value, source, index)
    if array.ndim == 2 and array.shape[1] in (2, 3):
        xy = array[:, :2]
        conf = array[:, 2] if array.shape[1] == 3 else np.full(len(array), np.nan)
        return xy, conf
    if array.ndim == 1:
        # A flat list: x, y, c per joint (COCO's results layout), else x, y.
        known = (17, 18, 25, *COCO_PREFIXED)
        if array.size % 3 == 0 and array.size // 3 in known:
            triples = array.reshape(-1, 3)
            return triples[:, :2], triples[:, 2]
        if array.size % 2 == 0 and array.size // 2 in known:
            return array.reshape(-1, 2), np.full(array.size // 2, np.nan)
    raise RieError(f"{source}: frame {index} has keypoints of an unexpected shape {array.shape} "
                   "(expected [[x, y], ...], [[x, y, score], ...] or a flat x, y, score list)")


def _ranking_score(person: dict, conf: np.ndarray) -> float:
    for key in ("bbox_score", "score"):
        value = person.get(key)
        if isinstance(value, list):  # MMPose writes bbox_score as a scalar or a 1-list
            value = value[0] if value else None
        if isinstance(value, (int, float)):
            return float(value)
    finite = conf[np.isfinite(conf)]
    return float(finite.mean()) if finite.size else 0.0


def _mmpose_layout(points: np.ndarray, meta: dict, k: int, source: str, notes: list[str]):
    name = str(meta.get("dataset_name", "")).lower()
    if "h36m" in name or "human3.6m" in name:
        if k != 17:
            raise RieError(f"{source}: a Human3.6M model should give 17 keypoints, got {k}")
        return points, "h36m"
    if k == 17:
        return points, ("coco" if "coco" in name else None)
    if k in COCO_PREFIXED:
        notes.append(f"{COCO_PREFIXED[k]} keypoints: the first 17 (COCO's body joints) are used")
        return points[:, :17], "coco"
    raise RieError(f"{source}: {k} keypoints per person; rie maps Human3.6M-17, COCO-17, Halpe-26 and "
                   "COCO-WholeBody-133 layouts")


# --- OpenPose --------------------------------------------------------------------------

def read_openpose_dir(path: Path) -> KeypointTrack:
    """A folder of OpenPose per-frame JSON files -> COCO-17 keypoints with confidences."""
    if not path.is_dir():
        raise RieError(f"{path} is not a folder: OpenPose writes one JSON file per frame into a folder")
    files = sorted(path.glob("*_keypoints.json")) or sorted(path.glob("*.json"))
    files = _sorted_frames(files)
    if not files:
        raise RieError(f"{path} holds no OpenPose *_keypoints.json files")
    frames: list[np.ndarray | None] = []
    crowded = 0
    for file in files:
        doc = _load_json(file)
        if not isinstance(doc, dict) or "people" not in doc:
            raise RieError(f"{file.name} is not an OpenPose frame (no 'people')")
        candidates = []
        for person in doc["people"] or []:
            flat = _numbers(person.get("pose_keypoints_2d", []), file.name, 0).reshape(-1)
            if flat.size == 0:
                continue
            if flat.size % 3:
                raise RieError(f"{file.name}: pose_keypoints_2d has {flat.size} numbers, not x, y, c triples")
            candidates.append(flat.reshape(-1, 3))  # (K, 3)
        crowded += len(candidates) > 1
        frames.append(max(candidates, key=lambda p: p[:, 2].mean()) if candidates else None)
    sizes = {len(f) for f in frames if f is not None}
    if not sizes:
        raise RieError(f"{path.name}: no person is detected in any frame")
    if len(sizes) > 1:
        raise RieError(f"{path.name}: frames disagree on the number of keypoints ({sorted(sizes)})")
    (k,) = sizes
    if k not in OPENPOSE_TO_COCO:
        layout_hint = " (the MPI layout has no face points to place the head)" if k == 15 else ""
        raise RieError(f"{path.name}: {k} keypoints per person is not an OpenPose layout rie can map; "
                       f"use BODY_25 or COCO-18{layout_hint}")
    layout_name, to_coco = OPENPOSE_TO_COCO[k]
    raw = np.full((len(frames), k, 3), np.nan)
    for t, frame in enumerate(frames):
        if frame is not None:
            raw[t] = frame
    coco = raw[:, list(to_coco)]  # (T, 17, 3)
    notes = [f"OpenPose {layout_name}, {len(files)} frames, converted to COCO-17"]
    if crowded:
        notes.append(f"{crowded} frame(s) have several people; the most confident one is used in each")
    return KeypointTrack(coco[..., :2].copy(), coco[..., 2].copy(), "coco", "openpose-dir", notes=notes)


# --- helpers ---------------------------------------------------------------------------

def _sorted_frames(files: list[Path]) -> list[Path]:
    """Frame files in frame order: by the last number in the name (OpenPose pads them,
    other tools may not), then by name."""
    def key(f: Path):
        numbers = re.findall(r"\d+", f.stem)
        return (int(numbers[-1]) if numbers else -1, f.name)

    return sorted(files, key=key)


def _load_json(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise RieError(f"{path.name} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise RieError(f"cannot read {path}: {exc.strerror or exc}") from None


def _numbers(value, source: str, index: int) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RieError(f"{source}: frame {index} has keypoints that are not numbers") from None


def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise RieError(f"cannot read {path.name} as an .npz file: {_first_line(exc)}") from None


def _optional_int(f, key: str, path: Path) -> int | None:
    if key not in f.files:
        return None
    try:
        return int(np.asarray(f[key]).reshape(()))
    except (TypeError, ValueError):
        raise RieError(f"{path.name}: '{key}' must be one number") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
