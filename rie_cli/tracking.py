"""Several people in one file: one track per person, and choosing whom to lift.

    detections = read_detections(Path("crowd.json"))      # rie_cli.keypoint_formats
    tracks = person_tracks(detections)                    # one KeypointTrack per person
    tracks[0].person, tracks[0].first_frame               # its label, where its frames start

A track spans its person's first to last frame; frames inside it where the person is
not found are missing points (filled as any other, rie_cli.lifting).

- Where the file gives track ids (COCO `track_id`, MMPose `track_id`, OpenPose
  `person_id`), they are the tracks, and the labels: no identity is guessed.
- Otherwise a simple tracker links detections frame to frame: each live track is
  compared with each detection of the next frame by the mean pixel distance of the
  joints both show, in units of the track's body size (the diagonal of its last box);
  pairs are taken greedily, nearest first, up to `MAX_DISTANCE` body sizes; a track
  unmatched for more than `MAX_GAP` frames ends; a detection left over starts a new
  track. Labels are 0, 1, ... in order of first appearance (the more confident first
  within a frame). Where each person's nearest detection is their own (people who stay
  apart), greedy nearest-first matching links what the Hungarian method links; where
  two people cross, identities can switch (a file with track ids avoids that).
"""

from __future__ import annotations

import numpy as np

from rie_cli.errors import RieError
from rie_cli.keypoint_tracks import Detections, KeypointTrack, Person
from rie_cli.lifting import DEFAULT_MIN_SCORE, valid_mask

MAX_GAP = 15  # frames a person may go unseen and keep their track
MAX_DISTANCE = 0.5  # body sizes: the furthest a person is taken to move between two detections
MIN_COMMON_JOINTS = 3  # joints two detections must both show to be compared


def person_tracks(detections: Detections, *, min_score: float = DEFAULT_MIN_SCORE, max_gap: int = MAX_GAP,
                  max_distance: float = MAX_DISTANCE) -> list[KeypointTrack]:
    """One `KeypointTrack` per person, ordered by label (the file's track ids, else the tracker's)."""
    ids = {p.track_id is None for people in detections.frames for p in people}
    if ids == {False, True}:
        raise RieError(f"{detections.format} file: some people have a track id and others not; "
                       "give every person one, or none (rie then tracks them itself)")
    if ids == {False}:
        linked = _tracks_from_ids(detections.frames)
        how = "the file's track ids"
    else:
        linked = _track(detections.frames, min_score, max_gap, max_distance)
        how = f"tracked by rie (nearest joints, up to {max_distance:g} body sizes, gaps up to {max_gap} frames)"
    tracks = []
    for label, items in sorted(linked.items()):
        first, last = items[0][0], items[-1][0]
        people: list[Person | None] = [None] * (last - first + 1)
        for t, person in items:
            people[t - first] = person
        note = f"person {label}: frames {first}-{last}, found in {len(items)} ({how})"
        tracks.append(detections.track(people, [note], person=label, first_frame=first))
    return tracks


def select_people(detections: Detections, person: int | str | None, *, min_score: float = DEFAULT_MIN_SCORE,
                  max_gap: int = MAX_GAP) -> list[KeypointTrack]:
    """Whom to lift (`--person`): None, the most confident person in each frame (one track,
    as for a one-person file); "all", every person's track; N, the track labelled N."""
    if person is None:
        return [detections.most_confident()]
    tracks = person_tracks(detections, min_score=min_score, max_gap=max_gap)
    if str(person) == "all":
        return tracks
    try:
        label = int(person)
    except ValueError:
        raise RieError(f"{{person}} takes a person's number or 'all', got '{person}'", arguments=("person",)) from None
    chosen = [t for t in tracks if t.person == label]
    if not chosen:
        raise RieError(f"no person {label} in the file (people: {', '.join(str(t.person) for t in tracks)})")
    return chosen


def _tracks_from_ids(frames: list[list[Person]]) -> dict[int, list[tuple[int, Person]]]:
    linked: dict[int, list[tuple[int, Person]]] = {}
    for t, people in enumerate(frames):
        ids = [p.track_id for p in people]
        if len(set(ids)) < len(ids):
            raise RieError(f"frame {t} has the same track id twice ({sorted(ids)})")
        for p in people:
            linked.setdefault(p.track_id, []).append((t, p))
    return linked


class _Live:
    """A track the tracker may still extend: its last seen joints and where they were."""

    def __init__(self, label: int, t: int, person: Person, valid: np.ndarray):
        self.label, self.items, self.last_t = label, [(t, person)], t
        self.points, self.valid = person.points.copy(), valid.copy()  # (K, 2), (K,): each joint's last seen value
        self.size = self._size()

    def extend(self, t: int, person: Person, valid: np.ndarray) -> None:
        self.items.append((t, person))
        self.last_t = t
        self.points[valid] = person.points[valid]
        self.valid |= valid
        self.size = self._size()

    def _size(self) -> float:
        """The diagonal of the box around the joints seen, at least one pixel."""
        seen = self.points[self.valid]
        return max(float(np.hypot(*(seen.max(0) - seen.min(0)))), 1.0) if len(seen) else 1.0

    def distance(self, person: Person, valid: np.ndarray) -> float:
        """Mean distance of the joints both show, in body sizes (inf with too few in common)."""
        common = self.valid & valid
        if common.sum() < MIN_COMMON_JOINTS:
            return np.inf
        return float(np.linalg.norm(self.points[common] - person.points[common], axis=-1).mean()) / self.size


def _track(frames: list[list[Person]], min_score: float, max_gap: int,
           max_distance: float) -> dict[int, list[tuple[int, Person]]]:
    """The tracker of the module docstring: label -> [(frame, person), ...]."""
    tracks: list[_Live] = []
    for t, people in enumerate(frames):
        valid = [valid_mask(p.points[None], None if np.isnan(p.scores).all() else p.scores[None], min_score)[0]
                 for p in people]  # a person without scores: every finite, non-zero point counts
        live = [track for track in tracks if t - track.last_t - 1 <= max_gap]
        pairs = sorted((track.distance(p, v), i, j) for i, track in enumerate(live)
                       for j, (p, v) in enumerate(zip(people, valid)))
        taken_tracks, taken_people = set(), set()
        for cost, i, j in pairs:
            if cost <= max_distance and i not in taken_tracks and j not in taken_people:
                live[i].extend(t, people[j], valid[j])
                taken_tracks.add(i)
                taken_people.add(j)
        for j in sorted(set(range(len(people))) - taken_people, key=lambda j: -people[j].rank):
            if valid[j].sum() >= MIN_COMMON_JOINTS:  # a detection with almost nothing seen starts no one
                tracks.append(_Live(len(tracks), t, people[j], valid[j]))
    return {track.label: track.items for track in tracks}
