"""Detector keypoints made ready to lift, and what a lift returns.

`rie predict`, `Lifter.lift` (rie_cli.api) and `LiftStream` (rie_cli.streaming) read a
detector's 2D the same way; this module is that shared part, so none of the three has
to import another for it:
1. mark missing points (NaN, exact zeros, scores under `min_score`, `valid_mask`) and
   fill them by linear interpolation over time, per joint, holding the first/last
   seen value at the ends (`fill_gaps`); a joint the sequence never shows is an
   error (for COCO, only the joints the mapping needs);
2. COCO-17 -> Human3.6M-17 (`joint_layouts.coco_to_h36m`), after filling, so that a
   point built from several (the pelvis from two hips) is never half real, half
   invented without the filled mask saying so (`prepare_keypoints`);
3. the image size from the options or the file (`image_size`), and normalisation with
   it (docs/method.md §1), refusing what is plainly not pixels (`normalized_keypoints`).
`LiftResult` is what the three give back: the poses and how the input was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rie_cli.cameras import normalize_screen_coordinates
from rie_cli.errors import RieError
from rie_cli.joint_layouts import LAYOUTS, coco_to_h36m, detect_layout
from rie_cli.keypoint_formats import KeypointTrack
from rie_cli.skeleton import H36M_17
from rie_cli.trajectory import absolute_poses

# Detector scores under this mark a point as missing (filled like a NaN one).
DEFAULT_MIN_SCORE = 0.3


@dataclass
class PreparedKeypoints:
    """Human3.6M-17 pixel keypoints ready to normalise, and what was done to them."""

    pixels: np.ndarray  # (T, 17, 2) float32, after mapping and gap filling
    filled: np.ndarray  # (T, 17) bool, True where the point was filled in
    layout: str  # the input's layout: "h36m" or "coco"
    notes: list[str] = field(default_factory=list)

    @property
    def filled_share(self) -> float:
        return float(self.filled.mean())


@dataclass
class LiftResult:
    """What `Lifter.lift` (or a recorded stream) found: the arrays `rie predict` writes, and how the input was read."""

    poses: np.ndarray  # (T, 17, 3) float32: camera space, metres, root-relative
    filled: np.ndarray  # (T, 17) bool: True where the input point was missing and filled in
    keypoints_2d: np.ndarray  # (T, 17, 2) float32 pixels, Human3.6M order, as used (after filling)
    keypoints_2d_normalized: np.ndarray  # (T, 17, 2) float32, the model's input
    layout: str  # the input's joint order: "h36m" or "coco"
    width: int
    height: int
    notes: list[str] = field(default_factory=list)
    trajectory: np.ndarray | None = None  # (T, 3) float32 camera-space root, metres, with a trajectory model
    detections: object = None  # rie_cli.video.detector.VideoDetections, for a lift from a video (Lifter.lift_video)

    @property
    def filled_share(self) -> float:
        return float(self.filled.mean())

    @property
    def camera_poses(self) -> np.ndarray | None:
        """(T, 17, 3) absolute camera-space poses: the pose placed at the predicted root
        (`rie_cli.trajectory.absolute_poses`); None without a trajectory model."""
        return None if self.trajectory is None else absolute_poses(self.poses, self.trajectory)


# --- missing points ----------------------------------------------------------------------

def valid_mask(points: np.ndarray, scores: np.ndarray | None, min_score: float) -> np.ndarray:
    """(T, K) True where a point counts as seen: finite, not exactly (0, 0) (how OpenPose
    and others write a joint they did not find), and scored at least `min_score`."""
    points = np.asarray(points, dtype=np.float64)
    valid = np.isfinite(points).all(-1) & ~(points == 0).all(-1)  # (T, K)
    if scores is not None:
        with np.errstate(invalid="ignore"):
            valid &= np.asarray(scores, dtype=np.float64) >= min_score  # NaN scores fail
    return valid


def fill_gaps(points: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Fill every point not `valid` by linear interpolation over time, per joint.

    Before the first and after the last seen frame the nearest seen value is held.
    Returns (filled points (T, K, 2), filled mask (T, K), joints never seen); a never
    seen joint stays NaN (the caller decides whether it matters).
    """
    points = np.asarray(points, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    num_frames, num_joints = valid.shape
    frames = np.arange(num_frames)
    out = np.full(points.shape, np.nan)
    never_seen = []
    for joint in range(num_joints):
        seen = np.flatnonzero(valid[:, joint])
        if seen.size == 0:
            never_seen.append(joint)
            continue
        for axis in range(2):
            # np.interp holds the end values outside [first seen, last seen]: edge hold.
            out[:, joint, axis] = np.interp(frames, seen, points[seen, joint, axis])
    return out, ~valid, never_seen


def prepare_keypoints(track: KeypointTrack, layout: str = "auto",
                      min_score: float = DEFAULT_MIN_SCORE) -> PreparedKeypoints:
    """The track's points as gap-filled Human3.6M-17 pixels."""
    if layout not in LAYOUTS:
        raise RieError(f"unknown layout '{layout}' (choose from {', '.join(LAYOUTS)})")
    num_joints = track.points.shape[1]
    if num_joints != 17:
        raise RieError(f"the keypoints have {num_joints} joints per frame; rie maps Human3.6M-17 and COCO-17 "
                       "(and OpenPose BODY_25 / COCO-18 folders, MMPose Halpe-26 / COCO-WholeBody files)")
    notes = list(track.notes)
    valid = valid_mask(track.points, track.scores, min_score)
    if layout == "auto":
        layout = track.layout
        if layout is None:
            layout = detect_layout(np.where(valid[..., None], track.points, np.nan))
            notes.append(f"joint order not stated in the file: read as {layout} from the body's geometry "
                         "(give the layout to override it)")
    elif track.layout is not None and track.layout != layout:
        notes.append(f"the file says {track.layout}; read as {layout} as asked")

    filled_points, filled, never_seen = fill_gaps(track.points, valid)
    if layout == "coco":
        pixels, filled, mapping_notes = coco_to_h36m(filled_points, filled)
        notes.extend(mapping_notes)
    else:
        if never_seen:
            names = ", ".join(H36M_17.joint_names[j] for j in never_seen)
            raise RieError(f"joint(s) {names} never seen in any frame (missing, zero, or scored under "
                           f"{{min_score}} {min_score:g}): cannot fill them", arguments=("min_score",))
        pixels = filled_points
    return PreparedKeypoints(pixels.astype(np.float32), filled, layout, notes)


# --- image size ----------------------------------------------------------------------------

def image_size(track: KeypointTrack, width: int | None, height: int | None) -> tuple[int, int, list[str]]:
    """(width, height) as given, else from the file; an error if neither has it."""
    notes = []
    if (width is None) != (height is None):
        raise RieError("give both {width} and {height} (the image size in pixels)", arguments=("width", "height"))
    if width is not None:
        if width <= 0 or height <= 0:
            raise RieError(f"{{width}} and {{height}} must be positive, got {width} x {height}",
                           arguments=("width", "height"))
        if track.width is not None and (track.width, track.height) != (width, height):
            notes.append(f"the file records {track.width} x {track.height}; using {width} x {height} as given")
        return int(width), int(height), notes
    if track.width is None or track.height is None:
        raise RieError(f"the image size is needed to normalise the keypoints and {track.format} input does not "
                       "record it: give {width} and {height} (the video's frame size in pixels)",
                       arguments=("width", "height"))
    if track.width <= 0 or track.height <= 0:
        raise RieError(f"the file records an image size of {track.width} x {track.height}: give {{width}} and "
                       "{height}", arguments=("width", "height"))
    return track.width, track.height, notes


def check_pixels(pixels: np.ndarray, width: int, height: int) -> None:
    """Refuse keypoints that are plainly not pixels of a width x height image."""
    extent = float(np.abs(pixels).max())
    if extent <= 1.5 and max(width, height) > 16:
        raise RieError("the keypoints all lie within [-1.5, 1.5]: they look normalised, but lifting needs "
                       "pixel coordinates (e.g. OpenPose with --keypoint_scale 0)")
    if extent > 10 * max(width, height):
        raise RieError(f"keypoints reach {extent:.0f} px, far outside a {width} x {height} image: "
                       "check {width}/{height} and the file's units", arguments=("width", "height"))


def normalized_keypoints(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, 17, 2) pixels -> float32 model input, after refusing what is plainly not pixels."""
    check_pixels(pixels, width, height)
    return normalize_screen_coordinates(pixels, width, height).astype(np.float32)
