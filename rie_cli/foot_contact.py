"""Feet that stay planted: foot contacts, and the `--foot-lock` cleanup.

    contacts = detect_contacts(poses, H36M_17, fps=50)          # (T, F) bool, F = skeleton.feet()
    locked = lock_feet(poses, H36M_17, fps=50)                   # FootLock: poses, contacts, level

Poses are absolute, (T, J, 3) metres, in a frame with z up: world coordinates, or the
level floor `rie_cli.trajectory.floor_transform` estimates (`trajectory.place_motion`
and `trajectory.lock_sequence` bring camera-space poses there and back).
docs/predict.md, "Feet that stay planted", says what the options do.

Contacts come from the predicted feet alone: a foot is planted where it is less than
`CONTACT_HEIGHT` above the floor level and moves slower than `CONTACT_SPEED` (its path
smoothed over `SPEED_WINDOW_SECONDS` first: predictions jitter), or, of two feet, is
the one carrying the weight: the slower one (below `SLOWER_SHARE` times the other's
speed), not higher than the other by more than a third of `CONTACT_HEIGHT`. (A
predicted body often glides: the root a trajectory model predicts
moves while the pose model's legs do not, so a planted foot can move at walking speed
in the prediction; the comparison of the two feet still finds it.) The floor level is
where the feet stand: the median height of the lower foot over the frames it is slow.
Contacts shorter than `MIN_CONTACT_SECONDS`, and gaps in a contact that short, are
noise and are dropped or filled.

`lock_feet` then
1. gives every contact (a run of planted frames of one foot) an anchor: the foot's
   median position over the run, on the floor level;
2. moves the whole body (the root) by the weighted mean of the planted feet's distance
   from their anchors, interpolated over the frames where no foot is planted and
   smoothed over `ROOT_SMOOTHING_SECONDS`, so that the body travels with its planted
   feet instead of gliding over them;
3. bends each leg (two-bone IK on hip-knee-ankle, with the leg's median bone lengths,
   the knee bending to the side it bent to, smoothed) so that the planted foot is
   exactly on its anchor; over `BLEND_SECONDS` before and after a contact the foot's
   goal eases between the anchor and where the foot was predicted, so that nothing
   pops. Where a leg cannot reach, the body moves by what is left (eased in and out
   over `BLEND_SECONDS`, `_spread`) and the legs are solved again;
4. keeps everything out of the floor: no foot below the floor level, and a frame with
   any other joint below it is lifted (eased alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rie_cli.skeleton import Skeleton

CONTACT_SPEED = 0.3  # m/s: the published contact threshold (1 cm per frame at 30 fps)
CONTACT_HEIGHT = 0.06  # metres above the floor level
SLOWER_SHARE = 1.0  # a foot slower than this share of the other's speed (and not above it) carries the weight
SPEED_WINDOW_SECONDS = 0.12  # the foot's path is smoothed over this before its speed is taken
MIN_CONTACT_SECONDS = 0.12  # shorter contacts, and shorter gaps within one, are noise
BLEND_SECONDS = 0.1  # a foot's goal eases in and out of its anchor over this
ROOT_SMOOTHING_SECONDS = 0.3  # the body's shift towards its planted feet is smoothed over this
UP = 2  # z
IK_ROUNDS = 30  # body shifts for goals out of reach


@dataclass
class FootLock:
    """What `lock_feet` made."""

    poses: np.ndarray  # (T, J, 3) float64, feet planted, nothing under the floor
    contacts: np.ndarray  # (T, F) bool, per foot of `skeleton.feet()`
    level: float  # the floor level of the foot joints (z, metres)


def foot_speeds(poses: np.ndarray, feet: list[int], fps: float) -> np.ndarray:
    """(T, F) speed of each foot joint, m/s, from its path smoothed over `SPEED_WINDOW_SECONDS`."""
    from rie_cli.smoothing import smooth_poses

    window = max(3, int(round(SPEED_WINDOW_SECONDS * fps)) | 1)
    path = smooth_poses(np.asarray(poses, np.float64)[:, feet], "savgol", window=window, order=2)
    if len(path) < 2:
        return np.zeros(path.shape[:2])
    return np.linalg.norm(np.gradient(path, axis=0), axis=-1) * fps


def floor_level(poses: np.ndarray, feet: list[int], speeds: np.ndarray) -> float:
    """Height (z) the feet stand at: the median of the lower foot's height over the frames
    where it moves slower than `CONTACT_SPEED` (over all frames if it never does)."""
    heights = np.asarray(poses)[:, feet, UP]  # (T, F)
    lower = heights.argmin(axis=1)
    rows = np.arange(len(heights))
    slow = speeds[rows, lower] < CONTACT_SPEED
    return float(np.median(heights[rows, lower][slow] if slow.any() else heights[rows, lower]))


def detect_contacts(poses: np.ndarray, skeleton: Skeleton, fps: float) -> np.ndarray:
    """(T, F) bool: foot f (of `skeleton.feet()`) planted at frame t; poses z up, metres."""
    poses = np.asarray(poses, np.float64)
    feet = list(skeleton.feet())
    speeds = foot_speeds(poses, feet, fps)
    level = floor_level(poses, feet, speeds)
    heights = poses[:, feet, UP]
    slow = speeds < CONTACT_SPEED
    if len(feet) == 2:  # the weight-bearing foot: clearly slower than the other and not above it
        slow |= (speeds < SLOWER_SHARE * speeds[:, ::-1]) & (heights <= heights[:, ::-1] + CONTACT_HEIGHT / 3)
    planted = slow & (heights < level + CONTACT_HEIGHT)
    shortest = max(2, int(round(MIN_CONTACT_SECONDS * fps)))
    return np.stack([_drop_short_runs(_fill_short_gaps(planted[:, f], shortest), shortest)
                     for f in range(len(feet))], axis=1)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a (T,) mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _fill_short_gaps(mask: np.ndarray, shortest: int) -> np.ndarray:
    out = mask.copy()
    for start, end in _runs(~mask):
        if 0 < start and end < len(mask) and end - start < shortest:
            out[start:end] = True
    return out


def _drop_short_runs(mask: np.ndarray, shortest: int) -> np.ndarray:
    out = mask.copy()
    for start, end in _runs(mask):
        if end - start < shortest:
            out[start:end] = False
    return out


def foot_goals(foot: np.ndarray, contact: np.ndarray, level: float, blend: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchors and weights of one foot: (targets (T, 3), weights (T,)).

    Each contact's anchor is the foot's median position over it, at the floor `level`;
    its weight is 1 on the contact and falls linearly to 0 over `blend` frames on either
    side (where two contacts' ramps meet, the nearer one wins)."""
    frames = len(foot)
    targets, weights = foot.copy(), np.zeros(frames)
    for start, end in _runs(contact):
        anchor = np.median(foot[start:end], axis=0)
        anchor[UP] = level
        reach = np.arange(max(0, start - blend), min(frames, end + blend))
        distance = np.maximum(np.maximum(start - reach, reach - (end - 1)), 0)
        weight = 1.0 - distance / (blend + 1)
        nearer = weight > weights[reach]
        weights[reach[nearer]] = weight[nearer]
        targets[reach[nearer]] = anchor
    return targets, weights


def two_bone_ik(hip: np.ndarray, goal: np.ndarray, thigh, shin, pole: np.ndarray):
    """(knee, ankle) (N, 3) of a leg from `hip` (N, 3) with bones of length `thigh` and
    `shin` (scalars or (N, 1)) whose ankle is on `goal` (N, 3).

    The knee bends towards `pole` (N, 3), a direction from the hip (the knee's own side,
    made perpendicular to the leg); a goal out of reach is approached as far as the
    straightened leg allows, along its direction."""
    to_goal = goal - hip
    distance = np.linalg.norm(to_goal, axis=-1, keepdims=True)
    along = to_goal / np.maximum(distance, 1e-9)
    reach = np.clip(distance, np.abs(thigh - shin) + 1e-9, thigh + shin - 1e-9)
    cos_hip = np.clip((thigh ** 2 + reach ** 2 - shin ** 2) / (2 * thigh * reach), -1.0, 1.0)
    bend = pole - np.sum(pole * along, -1, keepdims=True) * along  # perpendicular to the leg
    fallback = np.cross(along, np.array([1.0, 0.0, 0.0]))  # a pole along the leg: any perpendicular
    bend = np.where(np.linalg.norm(bend, axis=-1, keepdims=True) > 1e-6, bend, fallback)
    bend /= np.maximum(np.linalg.norm(bend, axis=-1, keepdims=True), 1e-12)
    new_knee = hip + thigh * (cos_hip * along + np.sqrt(1 - cos_hip ** 2) * bend)
    return new_knee, hip + reach * along


def _legs(poses: np.ndarray, skeleton: Skeleton, feet: list[int], fps: float) -> list[tuple]:
    """Per foot: (hip, knee, ankle joints, thigh and shin lengths (the sequence's medians:
    a predicted leg's bones vary from frame to frame), the knee's side (T, 3) from the hip,
    smoothed over `SPEED_WINDOW_SECONDS` so that a nearly straight leg does not flip its knee)."""
    from rie_cli.smoothing import smooth_poses

    window = max(3, int(round(SPEED_WINDOW_SECONDS * fps)) | 1)
    legs = []
    for ankle in feet:
        knee = skeleton.parents[ankle]
        hip = skeleton.parents[knee]
        thigh = float(np.median(np.linalg.norm(poses[:, knee] - poses[:, hip], axis=-1)))
        shin = float(np.median(np.linalg.norm(poses[:, ankle] - poses[:, knee], axis=-1)))
        pole = smooth_poses(poses[:, knee] - poses[:, hip], "savgol", window=window, order=2)
        legs.append((hip, knee, ankle, thigh, shin, pole))
    return legs


def lock_feet(poses: np.ndarray, skeleton: Skeleton, fps: float, contacts: np.ndarray | None = None) -> FootLock:
    """`--foot-lock` on absolute poses (T, J, 3), metres, z up (module docstring)."""
    poses = np.array(poses, dtype=np.float64)
    feet = list(skeleton.feet())
    if contacts is None:
        contacts = detect_contacts(poses, skeleton, fps)
    level = floor_level(poses, feet, foot_speeds(poses, feet, fps))
    blend = max(1, int(round(BLEND_SECONDS * fps)))
    goals = [foot_goals(poses[:, f], contacts[:, i], level, blend) for i, f in enumerate(feet)]
    targets = np.stack([g[0] for g in goals], axis=1)  # (T, F, 3)
    weights = np.stack([g[1] for g in goals], axis=1)  # (T, F)

    poses += _root_correction(poses[:, feet], targets, weights, fps)[:, None]
    legs = _legs(poses, skeleton, feet, fps)
    for _ in range(IK_ROUNDS):  # a goal out of the leg's reach: move the body by what is left, bend again
        residual = np.zeros((len(poses), 3))
        for i, (hip, knee, ankle, thigh, shin, pole) in enumerate(legs):
            goal = poses[:, ankle] + weights[:, i, None] * (targets[:, i] - poses[:, ankle])
            goal[:, UP] = np.maximum(goal[:, UP], level)
            poses[:, knee], poses[:, ankle] = two_bone_ik(poses[:, hip], goal, thigh, shin, pole)
            residual += weights[:, i, None] * (goal - poses[:, ankle])
        residual /= np.maximum(weights.sum(axis=1), 1e-9)[:, None]  # a weighted mean: it cannot grow
        if np.abs(residual).max() < 1e-7:
            break
        poses += _spread(residual, fps)[:, None]
    lift = np.zeros((len(poses), 3))
    lift[:, UP] = np.maximum(level - poses[..., UP].min(axis=1), 0.0)  # nothing under the floor
    poses += _spread(lift, fps)[:, None]
    return FootLock(poses, contacts, level)


def _spread(shift: np.ndarray, fps: float) -> np.ndarray:
    """A per-frame body shift (T, 3) eased in and out over `BLEND_SECONDS` on either side:
    each frame takes the largest of its neighbours' shifts, scaled down linearly with
    their distance (its own at full size), so the body moves by the whole shift where
    it is needed and does not jump there."""
    half = max(1, int(round(BLEND_SECONDS * fps)))
    frames = len(shift)
    best, size = np.zeros_like(shift), np.zeros(frames)
    for offset in range(-half, half + 1):
        source = np.clip(np.arange(frames) + offset, 0, frames - 1)
        candidate = shift[source] * (1.0 - abs(offset) / (half + 1))
        norm = np.linalg.norm(candidate, axis=-1)
        larger = norm > size
        best[larger], size[larger] = candidate[larger], norm[larger]
    return best


def _root_correction(feet: np.ndarray, targets: np.ndarray, weights: np.ndarray, fps: float) -> np.ndarray:
    """(T, 3) shift of the whole body: the weighted mean of the planted feet's distance from
    their anchors, linearly interpolated over frames with no planted foot, then smoothed
    over `ROOT_SMOOTHING_SECONDS` (the predicted feet jitter: the body must not take that
    on; the legs take up what is left)."""
    from rie_cli.smoothing import smooth_poses

    total = weights.sum(axis=1)  # (T,)
    known = total > 0
    if not known.any():
        return np.zeros((len(feet), 3))
    shift = (weights[..., None] * (targets - feet)).sum(axis=1)[known] / total[known, None]
    frames = np.arange(len(feet))
    shift = np.stack([np.interp(frames, frames[known], shift[:, axis]) for axis in range(3)], axis=1)
    window = max(3, int(round(ROOT_SMOOTHING_SECONDS * fps)) | 1)
    return smooth_poses(shift, "savgol", window=window, order=2)

