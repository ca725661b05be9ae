"""`rie predict --person`: which people of a file to lift, and the files written for several.

- `read_people_tracks`: the tracks `--person N|all` selects (rie_cli.tracking); with
  `all`, a person who cannot be lifted (a joint the mapping needs never seen) is left
  out with a note instead of failing the whole file.
- `person_path`: a per-person output name, `{person}` in it replaced by the label
  (`--bvh 'out_{person}.bvh'`).
- `write_people_prediction`: one .npz holding every person lifted: the clip-file keys of
  `rie predict` (docs/predict.md, "Output file") with a person axis first, on the file's
  frame axis, NaN (False in masks) in the frames outside a person's track; `people`
  (the labels) and `present` (P, T) say who is where.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rie_cli.atomic import check_writable
from rie_cli.errors import RieError
from rie_cli.keypoint_formats import read_detections
from rie_cli.keypoint_tracks import KeypointTrack
from rie_cli.predictions import write_clip_prediction
from rie_cli.skeleton import H36M_17
from rie_cli.tracking import select_people

PERSON_FIELD = "{person}"


def several(person) -> bool:
    """Whether `--person` asks for every person (one .npz of several, a BVH each)."""
    return person is not None and str(person) == "all"


def read_people_tracks(path: Path, fmt: str, video_name: str | None, person, min_score: float,
                       make_clip) -> tuple[list, int, list[str]]:
    """(clips of the people `person` selects, the file's frame count, notes). `make_clip(track)`
    makes a track ready to lift; with `all`, a track it refuses is left out with a note."""
    detections = read_detections(path, fmt, video_name=video_name)
    tracks: list[KeypointTrack] = select_people(detections, person, min_score=min_score)
    clips, notes = [], []
    for track in tracks:
        try:
            clips.append(make_clip(track))
        except RieError as exc:
            if not several(person):
                raise
            notes.append(f"person {track.person} left out: {exc}")
    if not clips:
        raise RieError(f"no person in {Path(path).name} can be lifted ({'; '.join(notes)})")
    return clips, detections.num_frames, notes


def person_path(pattern: Path, label: int | None) -> Path:
    """`pattern` with `{person}` replaced by the person's label (unchanged without one)."""
    return Path(str(pattern).replace(PERSON_FIELD, "" if label is None else str(label)))


def check_person_paths(pattern: Path | None, labels: list[int | None], force: bool, what: str = "--bvh") -> None:
    """Before lifting: several people need `{person}` in a per-person name, and none of
    the names it gives may exist (without --force)."""
    if pattern is None:
        return
    if len(labels) > 1 and PERSON_FIELD not in str(pattern):
        raise RieError(f"{what} writes one file per person: put {PERSON_FIELD} in its name "
                       f"(e.g. {what} 'clip_{PERSON_FIELD}{Path(pattern).suffix}')")
    if PERSON_FIELD in str(pattern):
        for label in labels:
            check_writable(person_path(pattern, label), force)


def write_people_prediction(out: Path, people: list[dict], num_frames: int, settings: dict) -> Path:
    """Several people's results (each: label, first_frame, poses (T_i, 17, 3), pixels,
    normalized, filled, trajectory or None) as one .npz on the file's frame axis."""
    count = len(people)
    arrays = {
        "people": np.array([p["label"] for p in people], dtype=np.int64),
        "present": np.zeros((count, num_frames), dtype=bool),
        "keypoints_2d": np.full((count, num_frames, 17, 2), np.nan, dtype=np.float32),
        "keypoints_2d_normalized": np.full((count, num_frames, 17, 2), np.nan, dtype=np.float32),
        "filled_mask": np.zeros((count, num_frames, 17), dtype=bool),
        "filled_share": np.array([float(p["filled"].mean()) for p in people]),
        "joint_names": np.array(H36M_17.joint_names),
    }
    poses = np.full((count, num_frames, 17, 3), np.nan, dtype=np.float32)
    roots = np.full((count, num_frames, 3), np.nan, dtype=np.float32)
    for i, person in enumerate(people):
        span = slice(person["first_frame"], person["first_frame"] + len(person["poses"]))
        arrays["present"][i, span] = True
        arrays["keypoints_2d"][i, span] = person["pixels"]
        arrays["keypoints_2d_normalized"][i, span] = person["normalized"]
        arrays["filled_mask"][i, span] = person["filled"]
        poses[i, span] = person["poses"]
        if person["trajectory"] is not None:
            roots[i, span] = person["trajectory"]
    if any(p["trajectory"] is not None for p in people):
        arrays["trajectory"] = roots  # (P, T, 3) camera-space roots, metres
    for key, value in settings.items():
        arrays[key] = np.array(value)
    return write_clip_prediction(out, poses, arrays)  # poses_3d: (P, T, 17, 3)
