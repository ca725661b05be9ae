"""Joint layouts of detector keypoints: telling Human3.6M-17 from COCO-17, and COCO-17 -> Human3.6M-17.

    layout = detect_layout(points)                       # "h36m" or "coco" from the body's geometry
    h36m, filled, notes = coco_to_h36m(coco, filled)     # gap-filled COCO pixels -> Human3.6M pixels

Reading the files these come in is `rie_cli.keypoint_formats`; filling missing points
before the mapping is `rie_cli.lifting`.
"""

from __future__ import annotations

import numpy as np

from rie_cli.errors import RieError

LAYOUTS = ("auto", "h36m", "coco")

COCO_17_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)

# Where the H36M head joint goes: beyond the face centre, on the line from the thorax,
# by this fraction of the thorax-to-face distance. Human3.6M's head joint is near the
# top of the head, which no COCO keypoint marks (docs/predict.md, "Known limits").
HEAD_RAISE = 0.5

# COCO-17 -> Human3.6M-17 joints taken over directly (H36M index: COCO index). The
# remaining H36M joints (pelvis, spine, thorax, neck/nose, head) are built from several.
_COCO_DIRECT = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}
NOSE = 0
FACE = (1, 2, 3, 4)  # COCO eyes and ears
COCO_BODY = tuple(range(5, 17))  # shoulders to ankles: all needed


def detect_layout(points: np.ndarray) -> str:
    """"h36m" or "coco" for a (T, 17, 2) track whose file does not say which.

    In Human3.6M order joints 2 and 3 are the right knee and foot, far from joint 0
    (the pelvis); in COCO order they are an eye and an ear, next to joint 0 (the nose).
    Relative to the size of the body in the frame the two differ about tenfold
    (~0.4 against ~0.03), so a wide margin is left between the two answers.
    """
    points = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(points).all(-1)  # (T, 17)
    usable = finite[:, [0, 2, 3]].all(1) & (finite.sum(1) >= 6)
    if not usable.any():
        raise RieError("cannot tell the joint order (too few keypoints in any frame): set {layout} to h36m or coco",
                       arguments=("layout",))
    p = points[usable]  # (N, 17, 2)
    with np.errstate(invalid="ignore"):
        extent = np.nanmax(p, axis=1) - np.nanmin(p, axis=1)  # (N, 2)
    size = np.hypot(extent[:, 0], extent[:, 1])
    reach = (np.linalg.norm(p[:, 2] - p[:, 0], axis=-1) + np.linalg.norm(p[:, 3] - p[:, 0], axis=-1)) / 2
    ratio = float(np.median(reach[size > 0] / size[size > 0])) if (size > 0).any() else float("nan")
    if ratio < 0.1:
        return "coco"
    if ratio > 0.2:
        return "h36m"
    raise RieError(f"cannot tell whether the 17 joints are in Human3.6M or COCO order (ratio {ratio:.2f}): "
                   "set {layout} to h36m or coco", arguments=("layout",))


def coco_ready(seen: np.ndarray) -> np.ndarray:
    """(..., 17) joints seen so far -> (...) whether a Human3.6M pose can be built: the
    whole body and at least one face point (nose, eyes or ears)."""
    seen = np.asarray(seen, dtype=bool)
    return seen[..., list(COCO_BODY)].all(-1) & seen[..., [NOSE, *FACE]].any(-1)


def seen_so_far(filled: np.ndarray, seen_before: np.ndarray | None = None) -> np.ndarray:
    """(T, 17) filled mask -> (T, 17) joints seen up to each frame, the causal rule of the
    face points (`coco_to_h36m`): the frames up to the first one where the pose can be
    built (`coco_ready`) take that frame's set; `seen_before` (17,) is what earlier
    frames saw (a stream's later frames)."""
    seen = np.logical_or.accumulate(~np.asarray(filled, dtype=bool), axis=0)
    if seen_before is not None:
        seen |= np.asarray(seen_before, dtype=bool)
    ready = np.flatnonzero(coco_ready(seen))
    if ready.size and ready[0] > 0:
        seen[: ready[0]] = seen[ready[0]]
    return seen


def coco_to_h36m(coco: np.ndarray, filled: np.ndarray,
                 seen_before: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Gap-filled COCO-17 (T, 17, 2) -> Human3.6M-17 (T, 17, 2), with the filled mask.

    `coco` may hold NaN only for joints never seen in the whole track; `filled` (T, 17)
    marks points that were filled in. An H36M point counts as filled when any COCO
    point it is built from was. Pelvis = mid-hips, thorax = mid-shoulders, spine
    midway between them, neck/nose = the nose, head = the face centre (mean of the
    eyes and ears) raised along the thorax-to-face line (`HEAD_RAISE`).

    The face points of frame t are those seen up to t (`seen_so_far`; from the start up
    to the first frame where the whole body and a face point have been seen, that
    frame's set). So a stream, which cannot know later frames, builds the same head and
    neck (rie_cli.streaming passes `seen_before` for its frames after the start); before
    the nose is seen the neck/nose joint is the face centre, without eyes or ears the
    head is placed from the nose.
    """
    coco = np.asarray(coco, dtype=np.float64)
    filled = np.asarray(filled, dtype=bool)
    ever = np.isfinite(coco).all(-1).all(0)  # (17,)
    missing = [COCO_17_NAMES[j] for j in COCO_BODY if not ever[j]]
    if missing:
        raise RieError(f"no {', '.join(missing)} keypoint in any frame: cannot build a Human3.6M pose from COCO")
    if not ever[[NOSE, *FACE]].any():
        raise RieError("no face keypoint (nose, eyes, ears) in any frame: cannot place the neck/nose and head joints")

    h36m = np.empty(coco.shape, dtype=np.float64)  # (T, 17, 2)
    h36m_filled = np.empty(filled.shape, dtype=bool)  # (T, 17)

    def put(target: int, sources) -> None:
        sources = list(sources)
        h36m[:, target] = coco[:, sources].mean(axis=1)
        h36m_filled[:, target] = filled[:, sources].any(axis=1)

    for target, source in _COCO_DIRECT.items():
        put(target, (source,))
    put(0, (11, 12))  # pelvis: mid-hips
    put(8, (5, 6))  # thorax: mid-shoulders
    h36m[:, 7] = (h36m[:, 0] + h36m[:, 8]) / 2  # spine
    h36m_filled[:, 7] = h36m_filled[:, 0] | h36m_filled[:, 8]

    seen = seen_so_far(filled, seen_before) & ever  # (T, 17): the points each frame builds from
    face = seen[:, list(FACE)]  # (T, 4)
    face_count = face.sum(1)  # (T,)
    face_points = np.where(face[..., None], coco[:, list(FACE)], 0.0)  # (T, 4, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        face_centre = face_points.sum(1) / face_count[:, None]  # (T, 2), NaN without eyes or ears
    face_filled = (face & filled[:, list(FACE)]).any(1)  # (T,)
    nose_seen = seen[:, NOSE]
    h36m[:, 9] = np.where(nose_seen[:, None], coco[:, NOSE], face_centre)  # neck/nose
    h36m_filled[:, 9] = np.where(nose_seen, filled[:, NOSE], face_filled)
    has_face = face_count > 0
    centre = np.where(has_face[:, None], face_centre, coco[:, NOSE])
    h36m[:, 10] = centre + HEAD_RAISE * (centre - h36m[:, 8])
    h36m_filled[:, 10] = np.where(has_face, face_filled, filled[:, NOSE]) | h36m_filled[:, 8]
    return h36m, h36m_filled, _face_notes(seen, seen_before)


def _face_notes(seen: np.ndarray, seen_before: np.ndarray | None) -> list[str]:
    """What `coco_to_h36m` did about face points that were never, or only later, seen."""
    notes = []
    if not seen[-1, NOSE]:
        notes.append("the nose is never seen: the neck/nose joint is the centre of the eyes and ears instead")
    if not seen[-1, list(FACE)].any():
        notes.append("no eyes or ears are seen: the head joint is placed from the nose")
    start = seen[0] if seen_before is None else np.asarray(seen_before, dtype=bool)
    late = [COCO_17_NAMES[j] for j in (NOSE, *FACE) if seen[-1, j] and not start[j]]
    if late and start[[NOSE, *FACE]].any():
        notes.append(f"{', '.join(late)} first seen after the start: used for the neck and head from then on "
                     "(as a stream, which cannot know later frames, does)")
    return notes
