"""A 2D pose detector run over a video: frames in, one person's keypoints and scores out.

    detector = create_detector("mediapipe")
    detections = detect_video(Path("clip.mp4"), detector)
    detections.track            # a KeypointTrack, as the keypoint readers give (rie_cli.keypoint_tracks)
    write_detections(Path("clip_2d.npz"), detections)   # `rie predict --keypoints` reads it

A detector is anything with the `PoseDetector` shape: `detect(frame)` takes one
upright RGB frame (height, width, 3) uint8 and returns (points (17, 2) pixels,
scores (17,)) in the joint layout it names (`layout`: "coco" or "h36m", the layouts
`rie_cli.lifting.prepare_keypoints` maps); a frame without a person is NaN points
and zero scores. Nothing after the detector knows which one ran: the detections are
a `KeypointTrack`, and from there a video is lifted exactly like a keypoint file
(gaps filled, COCO mapped to Human3.6M, normalised), so adding a detector means
adding one class to `DETECTORS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from rie_cli.atomic import atomic_path
from rie_cli.errors import RieError
from rie_cli.keypoint_tracks import KeypointTrack
from rie_cli.video.reader import VideoInfo, VideoReader


class PoseDetector(Protocol):
    """One person's 2D keypoints per frame."""

    name: str  # what `rie predict` reports and the saved keypoints record
    layout: str  # joint order of the returned points: "coco" or "h36m"

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 RGB -> (points (17, 2) float32 pixels, scores (17,) float32);
        NaN points and zero scores where no person is found."""

    def close(self) -> None:
        """Free what the detector holds (models, threads)."""


# name -> "module:class"; imported only when chosen, so that a missing optional
# package fails only the run that needs it.
DETECTORS = {"mediapipe": "rie_cli.video.mediapipe_pose:MediaPipePose"}


def create_detector(name: str = "mediapipe") -> PoseDetector:
    """The detector called `name` (a key of `DETECTORS`), ready to run."""
    if name not in DETECTORS:
        raise RieError(f"unknown detector '{name}' (choose from {', '.join(DETECTORS)})")
    module, cls = DETECTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


@dataclass
class VideoDetections:
    """A detector's keypoints for every frame of a video, and where they came from."""

    track: KeypointTrack  # (T, 17, 2) pixels + (T, 17) scores, the detector's layout, the frame size
    info: VideoInfo
    detector: str

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def person_frames(self) -> np.ndarray:
        """(T,) True where the detector found a person."""
        return np.isfinite(self.track.points).all(axis=(1, 2))

    @property
    def person_share(self) -> float:
        return float(self.person_frames.mean()) if self.track.num_frames else 0.0


def detect_video(path: Path, detector: PoseDetector, *, max_frames: int | None = None,
                 on_start: Callable[[VideoInfo], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> VideoDetections:
    """Run `detector` on every frame of `path` (the first `max_frames`), streaming the frames.

    `on_start(info)` is called once the file is open (its frame count is an estimate),
    then `progress(1)` after each frame.
    """
    points, scores = [], []
    with VideoReader(path, max_frames=max_frames) as video:
        if on_start is not None:
            on_start(video.info)
        for frame in video:
            p, s = detector.detect(frame)
            points.append(np.asarray(p, dtype=np.float32))
            scores.append(np.asarray(s, dtype=np.float32))
            if progress is not None:
                progress(1)
    if not points:
        raise RieError(f"video {path} holds no frames")
    info = video.info
    # float32 as saved by `write_detections`, so that lifting these detections and lifting
    # the saved file start from the same numbers.
    track = KeypointTrack(np.stack(points).astype(np.float64), np.stack(scores).astype(np.float64),
                          detector.layout, "video", info.width, info.height, fps=info.fps)
    detections = VideoDetections(track, info, detector.name)
    absent = int((~detections.person_frames).sum())
    if absent == track.num_frames:
        raise RieError(f"the {detector.name} detector found no person in any frame of {path}")
    if absent:  # lifting fills them as any missing point (rie_cli.lifting)
        track.notes.append(f"no person found in {absent} of {track.num_frames} frames: their keypoints are "
                           "filled in from the frames around them")
    jumps = person_jumps(track.points)
    if jumps:
        shown = ", ".join(map(str, jumps[:5])) + (", ..." if len(jumps) > 5 else "")
        track.notes.append(f"the person detected jumps at frame(s) {shown}: another person taken for them? "
                           f"({detector.name} follows one person; lift such a clip in parts, or use a "
                           "multi-person detector's file with --person)")
    return detections


# A person's keypoint centre moves far less than their own size from one frame to the
# next (at most ~0.2 on the shared clips, even jumping); more means the detector now
# follows someone else (5.3 and 1.7 where the sports clip's detections switch people).
JUMP = 0.5


def person_jumps(points: np.ndarray) -> list[int]:
    """Frames (T, K, 2) where the detected keypoints' centre moved more than `JUMP` times
    the person's size (diagonal of their keypoints' box) since the last frame with a person."""
    seen = np.flatnonzero(np.isfinite(points).all(axis=(1, 2)))
    if len(seen) < 2:
        return []
    p = points[seen]  # (N, K, 2)
    centre = p.mean(axis=1)
    size = np.linalg.norm(p.max(axis=1) - p.min(axis=1), axis=-1)  # (N,)
    step = np.linalg.norm(np.diff(centre, axis=0), axis=-1) / np.maximum(np.minimum(size[1:], size[:-1]), 1e-6)
    return seen[1:][step > JUMP].tolist()


def write_detections(path: Path, detections: VideoDetections) -> Path:
    """Save the detections as a keypoint array `rie predict --keypoints` reads
    (docs/predict.md, Arrays): `keypoints` (T, 17, 3) = x, y, score in pixels (NaN
    points where no person was found), `width`, `height`, `layout`; also `fps`, the
    source `video` and the `detector`."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise RieError(f"cannot save keypoints to '{path.name}': use an .npz file")
    track = detections.track
    keypoints = np.concatenate((track.points, track.scores[..., None]), axis=-1).astype(np.float32)
    with atomic_path(path) as partial:
        with open(partial, "wb") as f:
            np.savez(f, keypoints=keypoints, width=np.int64(track.width), height=np.int64(track.height),
                     layout=np.array(track.layout), fps=np.float64(detections.fps),
                     video=np.array(str(detections.info.path)), detector=np.array(detections.detector))
    return path
