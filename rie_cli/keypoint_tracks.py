"""What keypoint readers give: one person's track, or every person of every frame.

    track.points     # KeypointTrack: (T, K, 2) pixels of one person, NaN where absent
    detections.frames  # Detections: per frame, a list of `Person` (points, scores, rank, track id)

Reading files is `rie_cli.keypoint_formats` (arrays, VideoPose3D) and
`rie_cli.detector_json` (MMPose, COCO, OpenPose); one track per person out of
`Detections` is `rie_cli.tracking`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
    person: int | None = None  # the person's label (rie_cli.tracking), where a file holds several
    first_frame: int = 0  # the file's frame of points[0] (a person's track spans only their frames)
    fps: float | None = None  # frames per second, where the file records it (an .npz `fps`)

    @property
    def num_frames(self) -> int:
        return self.points.shape[0]


@dataclass
class Person:
    """One person in one frame of a detector file."""

    points: np.ndarray  # (K, 2) float64 pixels, in the file's layout after conversion (COCO-17 for OpenPose)
    scores: np.ndarray  # (K,) float64 confidences, NaN where the file has none
    rank: float  # how confident the detection is: the bbox score, else the mean keypoint score
    track_id: int | None = None  # the file's identity for this person, where it has one


@dataclass
class Detections:
    """Every person of every frame of a file, before choosing one or tracking them."""

    frames: list[list[Person]]
    layout: str | None
    format: str
    width: int | None = None
    height: int | None = None
    notes: list[str] = field(default_factory=list)
    has_scores: bool = True

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def num_joints(self) -> int:
        return next(len(p.points) for people in self.frames for p in people)

    def track(self, people: list[Person | None], notes: list[str], **fields) -> KeypointTrack:
        """A `KeypointTrack` of one person per frame (None: not in that frame)."""
        k = self.num_joints
        points = np.full((len(people), k, 2), np.nan)
        scores = np.full((len(people), k), np.nan)
        for t, person in enumerate(people):
            if person is not None:
                points[t], scores[t] = person.points, person.scores
        return KeypointTrack(points, scores if self.has_scores else None, self.layout, self.format, self.width,
                             self.height, list(self.notes) + notes, **fields)

    def most_confident(self) -> KeypointTrack:
        """One person: in each frame the most confident detection (no tracking)."""
        crowded = sum(len(people) > 1 for people in self.frames)
        notes = [f"{crowded} frame(s) have several people; the most confident one is used in each "
                 "(--person picks one person, or all)"] if crowded else []
        return self.track([max(people, key=lambda p: p.rank) if people else None for people in self.frames], notes)

    @classmethod
    def of_track(cls, track: KeypointTrack) -> "Detections":
        """A one-person file's track as detections (person 0 wherever a point is finite)."""
        scores = track.scores if track.scores is not None else np.full(track.points.shape[:2], np.nan)
        frames = [[Person(track.points[t], scores[t], 1.0, 0)] if np.isfinite(track.points[t]).any() else []
                  for t in range(track.num_frames)]
        return cls(frames, track.layout, track.format, track.width, track.height, list(track.notes),
                   track.scores is not None)
