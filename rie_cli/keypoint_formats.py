"""Reading 2D keypoints that detectors wrote, and the joint layouts they come in.

    track = read_keypoints(Path("clip.json"))            # format detected from the file
    track.points  # (T, K, 2) pixels, NaN where the file has no point
    track.scores  # (T, K) confidences or None
    track.layout  # "h36m", "coco" or None (17 joints of unknown order)

Formats (`FORMATS`; docs/predict.md shows each one):
- `h36m` / `coco`: a `.npy` array, or an `.npz` with key `keypoints`, of shape
  (frames, joints, 2) or (frames, joints, 3) with a score column, in pixels, in the
  named joint order. `auto` reads the same files and works out the order itself.
  An `.npz` may also hold `width` and `height` (the image size), `layout` and `fps`.
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
- `coco-json`: COCO keypoint results, a list of {"image_id", "keypoints": [x, y, v,
  ...], "score", optional "track_id"} (one entry per person per image; integer image
  ids are frame numbers), or a PoseTrack-style {"images": [{"id", "frame_id"?,
  "width"?, "height"?}], "annotations": [...same...]}.

Files with several people in a frame: `read_detections` gives every person of every
frame (`Detections`, with the file's track ids where it has them: COCO `track_id`,
MMPose `track_id`, OpenPose `person_id`); `rie_cli.tracking` turns them into one track
per person. `read_keypoints` gives one person: in each frame the most confident one
(the highest bbox score, else the highest mean keypoint score).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rie_cli.detector_json import load_json, read_coco_json, read_mmpose_json, read_openpose_dir
from rie_cli.errors import RieError
from rie_cli.joint_layouts import LAYOUTS
from rie_cli.keypoint_tracks import Detections, KeypointTrack, Person  # noqa: F401  (Person: part of the API)

FORMATS = ("auto", "h36m", "coco", "vp3d-custom", "mmpose-json", "openpose-dir", "coco-json")


# --- entry point -----------------------------------------------------------------------

def read_keypoints(path: str | Path, fmt: str = "auto", *, video_name: str | None = None) -> KeypointTrack:
    """Read one person's keypoints from `path` as `fmt` ("auto": from the file itself);
    where a frame has several people, the most confident one."""
    read = _read(Path(path), fmt, video_name)
    return read if isinstance(read, KeypointTrack) else read.most_confident()


def read_detections(path: str | Path, fmt: str = "auto", *, video_name: str | None = None) -> Detections:
    """Every person of every frame of `path` (a one-person array: person 0 in each frame)."""
    read = _read(Path(path), fmt, video_name)
    return Detections.of_track(read) if isinstance(read, KeypointTrack) else read


def _read(path: Path, fmt: str, video_name: str | None) -> KeypointTrack | Detections:
    if fmt not in FORMATS:
        raise RieError(f"unknown keypoint format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not path.exists():
        raise RieError(f"keypoints not found: {path}")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt in ("h36m", "coco", "auto-array"):
        read = read_array(path, layout=None if fmt == "auto-array" else fmt)
    elif fmt == "vp3d-custom":
        read = read_vp3d_custom(path, video_name)
    elif fmt == "mmpose-json":
        read = read_mmpose_json(path)
    elif fmt == "coco-json":
        read = read_coco_json(path)
    else:
        read = read_openpose_dir(path)
    if video_name is not None and read.format != "vp3d-custom":
        raise RieError("{video_name} picks a video inside a VideoPose3D custom .npz; "
                       f"{path.name} is read as {read.format}", arguments=("video_name",))
    if read.num_frames == 0:
        raise RieError(f"{path.name} holds no frames")
    return read


def detect_format(path: Path) -> str:
    """The format of `path` from its kind and contents; "auto-array" is a keypoint array
    whose joint order is left open (the file's `layout`, else `detect_layout`)."""
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise RieError(f"{path} is a folder without .json files (expected OpenPose or MMPose per-frame JSON)")
        first = load_json(files[0])
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
        doc = load_json(path)
        if isinstance(doc, dict) and "people" in doc:
            raise RieError(f"{path.name} is one OpenPose frame: give the folder of per-frame files")
        if (isinstance(doc, dict) and "annotations" in doc) or (
                isinstance(doc, list) and doc and isinstance(doc[0], dict) and "image_id" in doc[0]):
            return "coco-json"
        return "mmpose-json"
    raise RieError(f"cannot tell the format of {path.name}: expected .npy, .npz, .json or a folder "
                   "(or name it with {fmt})", arguments=("fmt",))

# --- arrays ----------------------------------------------------------------------------

def read_array(path: Path, layout: str | None = None) -> KeypointTrack:
    """A (frames, joints, 2|3) pixel array from .npy, or .npz key `keypoints`."""
    width = height = fps = None
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
            fps = _optional_fps(f, path)
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
    return KeypointTrack(points, scores, layout, fmt, width, height, fps=fps)


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
            raise RieError(f"{path.name} holds {len(videos)} videos; pick one with {{video_name}} "
                           f"({', '.join(map(str, videos))})", arguments=("video_name",))
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

# --- helpers ---------------------------------------------------------------------------

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


def _optional_fps(f, path: Path) -> float | None:
    """The frame rate an .npz records (`rie predict --save-keypoints` writes it), or None."""
    if "fps" not in f.files:
        return None
    try:
        fps = float(np.asarray(f["fps"]).reshape(()))
    except (TypeError, ValueError):
        raise RieError(f"{path.name}: 'fps' must be one number") from None
    if not np.isfinite(fps) or fps <= 0:
        raise RieError(f"{path.name}: 'fps' must be a positive number, got {fps:g}")
    return fps


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
