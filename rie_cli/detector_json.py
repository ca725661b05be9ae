"""Detector JSON files with any number of people per frame: MMPose predictions, COCO
keypoint results and OpenPose folders (the formats are described in
`rie_cli.keypoint_formats`, which reads every format through `read_keypoints`).
Each gives `Detections`: every person of every frame, with the file's track ids where
it has them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rie_cli.errors import RieError
from rie_cli.keypoint_tracks import Detections, Person

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


# --- MMPose ----------------------------------------------------------------------------

def read_mmpose_json(path: Path) -> Detections:
    """MMPose predictions: one JSON for a video, or a folder of per-image JSON files."""
    meta: dict = {}
    if path.is_dir():
        files = _sorted_frames(sorted(path.glob("*.json")))
        if not files:
            raise RieError(f"{path} holds no .json files")
        frames = [load_json(f) for f in files]
        source = f"{len(files)} files in {path.name}"
    else:
        doc = load_json(path)
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
    return _detections(people, meta, source, "mmpose-json")


def _detections(people: list[list[Person]], meta: dict, source: str, fmt: str, **size) -> Detections:
    """Per-frame people of an MMPose or COCO file, in one layout (`_mmpose_layout`)."""
    num_joints = {len(p.points) for persons in people for p in persons}
    if not num_joints:
        raise RieError(f"{source}: no person is detected in any frame")
    if len(num_joints) > 1:
        raise RieError(f"{source}: frames disagree on the number of keypoints ({sorted(num_joints)})")
    (k,) = num_joints
    notes: list[str] = []
    keep, layout = _mmpose_layout(meta, k, source, notes)
    has_scores = any(np.isfinite(p.scores).any() for persons in people for p in persons)
    for persons in people:
        for p in persons:
            p.points, p.scores = p.points[:keep], p.scores[:keep]
    return Detections(people, layout, fmt, notes=notes, has_scores=has_scores, **size)


def _frame_people(frame, source: str, index: int) -> list[Person]:
    """One frame's people (MMPose instances, or a list of COCO-style entries)."""
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
        out.append(Person(xy, conf, _ranking_score(person, conf), _track_id(person.get("track_id"), source, index)))
    return out


def _track_id(value, source: str, index: int) -> int | None:
    """A file's identity of a person: an integer, or None where it has none (OpenPose
    writes -1, as a number or a 1-list)."""
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else value
    if value is None or (isinstance(value, (int, float)) and value == -1):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise RieError(f"{source}: frame {index} has a track id that is not an integer: {value!r}")
    return int(value)


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


def _mmpose_layout(meta: dict, k: int, source: str, notes: list[str]) -> tuple[int, str | None]:
    """(how many of the K keypoints to keep, their layout) from the file's dataset name."""
    name = str(meta.get("dataset_name", "")).lower()
    if "h36m" in name or "human3.6m" in name:
        if k != 17:
            raise RieError(f"{source}: a Human3.6M model should give 17 keypoints, got {k}")
        return k, "h36m"
    if k == 17:
        return k, ("coco" if "coco" in name else None)
    if k in COCO_PREFIXED:
        notes.append(f"{COCO_PREFIXED[k]} keypoints: the first 17 (COCO's body joints) are used")
        return 17, "coco"
    raise RieError(f"{source}: {k} keypoints per person; rie maps Human3.6M-17, COCO-17, Halpe-26 and "
                   "COCO-WholeBody-133 layouts")


# --- COCO results ----------------------------------------------------------------------

def read_coco_json(path: Path) -> Detections:
    """COCO keypoint results (a list of per-person entries with `image_id`), or a
    PoseTrack-style {"images", "annotations"}: people grouped into frames by image."""
    doc = load_json(path)
    images: list = []
    if isinstance(doc, dict) and "annotations" in doc:
        images, entries = doc.get("images") or [], doc["annotations"]
    else:
        entries = doc
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "image_id" in e for e in entries):
        raise RieError(f"{path.name} is not COCO keypoint results: expected entries with 'image_id' and 'keypoints'")
    frame_of, size = _coco_frames(images, entries, path.name)
    frames: list[list[Person]] = [[] for _ in range(max(frame_of.values(), default=-1) + 1)]
    for entry in entries:
        if entry.get("category_id", 1) == 1:  # COCO's "person"; other categories carry no body
            t = frame_of[entry["image_id"]]
            frames[t].extend(_frame_people([entry], path.name, t))
    return _detections(frames, {"dataset_name": "coco"}, path.name, "coco-json", **size)


def _coco_frames(images: list, entries: list, name: str) -> tuple[dict, dict]:
    """image id -> frame index, and the image size where the file records one. Frames are
    the images in order (their `frame_id` where given); without an image list, integer
    ids are frame numbers from the first, other ids are sorted."""
    size = {}
    if images:
        if not all(isinstance(i, dict) and "id" in i for i in images):
            raise RieError(f"{name}: every entry of 'images' needs an 'id'")
        ordered = sorted(images, key=lambda i: i.get("frame_id", 0)) if all("frame_id" in i for i in images) \
            else images
        sizes = {(i.get("width"), i.get("height")) for i in images}
        if len(sizes) == 1 and None not in next(iter(sizes)):
            width, height = next(iter(sizes))
            size = {"width": int(width), "height": int(height)}
        frame_of = {image["id"]: t for t, image in enumerate(ordered)}
        unknown = {e["image_id"] for e in entries} - frame_of.keys()
        if unknown:
            raise RieError(f"{name}: annotations of image(s) not in 'images': {sorted(map(str, unknown))[:5]}")
        return frame_of, size
    ids = sorted({e["image_id"] for e in entries}, key=str)
    if all(isinstance(i, int) for i in ids):
        first = min(ids, default=0)
        return {i: i - first for i in ids}, size
    return {i: t for t, i in enumerate(ids)}, size


# --- OpenPose --------------------------------------------------------------------------

def read_openpose_dir(path: Path) -> Detections:
    """A folder of OpenPose per-frame JSON files -> COCO-17 keypoints with confidences
    (`person_id`, where OpenPose's tracking set it, is the track id)."""
    if not path.is_dir():
        raise RieError(f"{path} is not a folder: OpenPose writes one JSON file per frame into a folder")
    files = sorted(path.glob("*_keypoints.json")) or sorted(path.glob("*.json"))
    files = _sorted_frames(files)
    if not files:
        raise RieError(f"{path} holds no OpenPose *_keypoints.json files")
    frames: list[list[tuple[np.ndarray, int | None]]] = []
    for t, file in enumerate(files):
        doc = load_json(file)
        if not isinstance(doc, dict) or "people" not in doc:
            raise RieError(f"{file.name} is not an OpenPose frame (no 'people')")
        people = []
        for person in doc["people"] or []:
            flat = _numbers(person.get("pose_keypoints_2d", []), file.name, t).reshape(-1)
            if flat.size == 0:
                continue
            if flat.size % 3:
                raise RieError(f"{file.name}: pose_keypoints_2d has {flat.size} numbers, not x, y, c triples")
            people.append((flat.reshape(-1, 3), _track_id(person.get("person_id"), file.name, t)))  # (K, 3)
        frames.append(people)
    sizes = {len(p) for people in frames for p, _ in people}
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
    coco = [[(p[list(to_coco)], track_id) for p, track_id in people] for people in frames]  # (17, 3) each
    notes = [f"OpenPose {layout_name}, {len(files)} frames, converted to COCO-17"]
    return Detections([[Person(p[:, :2].copy(), p[:, 2].copy(), float(p[:, 2].mean()), track_id)
                        for p, track_id in people] for people in coco], "coco", "openpose-dir", notes=notes)


# --- helpers ---------------------------------------------------------------------------

def _sorted_frames(files: list[Path]) -> list[Path]:
    """Frame files in frame order: by the last number in the name (OpenPose pads them,
    other tools may not), then by name."""
    def key(f: Path):
        numbers = re.findall(r"\d+", f.stem)
        return (int(numbers[-1]) if numbers else -1, f.name)

    return sorted(files, key=key)


def load_json(path: Path):
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
