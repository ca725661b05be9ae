"""World-motion metrics: how a placed, moving body compares with the truth, as animators see it.

    sums = sequence_sums(pred_world, true_world, fps=50, skeleton=H36M_17)   # one sequence
    total = WorldSums(); total.add(sums); total.means()["foot_sliding"]       # mm

Poses are absolute, (T, J, 3) metres, z up (world coordinates of a prepared file, or a
levelled floor frame). The definitions follow the evaluation code published with WHAM
(Shin et al., CVPR 2024) and GVHMR (Shen et al., SIGGRAPH Asia 2024), written anew here;
docs/evaluate.md, "World motion", gives each formula with its units:

- `w_mpjpe100` / `wa_mpjpe100` (mm): the sequence cut into chunks of 100 frames; in each,
  a similarity transform (rotation, translation, scale; Umeyama) is fitted taking the
  prediction's joints onto the truth's, on the chunk's first two frames (W) or on the
  whole chunk (WA); then the mean joint distance per frame.
- `rte` (%): root translation error: the predicted root path is rigidly aligned
  (rotation and translation, no scale) to the true one over the whole sequence; the
  mean distance per frame divided by the true path's length. Undefined for a root that
  travels less than `MIN_RTE_PATH`.
- `jitter` (10 m/s³): the norm of the third difference of every predicted joint times
  fps³, averaged over joints and frames, divided by 10 (the published unit).
- `accel_error` (m/s²): the norm of the difference of the second differences of the
  predicted and true root-relative joints times fps², averaged (WHAM measures it on
  pelvis-aligned joints).
- `foot_sliding` (mm): the displacement per frame of each predicted foot joint on the
  frames where the true foot moves less than 1 cm per frame at 30 fps, i.e. 0.3 m/s;
  the threshold is scaled to the data's frame rate (`contact_step`): 6 mm per frame at
  50 fps. Displacements are per frame at the data's rate.
- `bone_cv` (%): per bone, the standard deviation of its predicted length over the
  sequence divided by its mean, averaged over bones.
- `penetration` / `floating` (mm): each foot joint's floor level is its true height
  while in contact (the median); `penetration` is how far the lower of the predicted
  feet is below its level, per frame (0 when above); `floating` how far a predicted
  foot is above its level on the frames its true foot is in contact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rie_cli.skeleton import Skeleton

WORLD_METRICS = ("w_mpjpe100", "wa_mpjpe100", "rte", "jitter", "accel_error", "foot_sliding", "bone_cv",
                 "penetration", "floating")
UNITS = {"w_mpjpe100": "mm", "wa_mpjpe100": "mm", "rte": "%", "jitter": "10 m/s^3", "accel_error": "m/s^2",
         "foot_sliding": "mm", "bone_cv": "%", "penetration": "mm", "floating": "mm"}
CHUNK = 100  # frames per W-/WA-MPJPE chunk
CONTACT_SPEED = 0.3  # m/s: "less than 1 cm per frame at 30 fps", the published contact threshold
MIN_RTE_PATH = 0.5  # metres: a root that travels less has no meaningful RTE (a ratio to ~0)
UP = 2  # world z
_MM = 1000.0


def contact_step(fps: float) -> float:
    """Metres per frame under which a foot counts as planted at `fps` (1 cm at 30 fps)."""
    return CONTACT_SPEED / float(fps)


def similarity_fit(source: np.ndarray, target: np.ndarray, scale: bool = True):
    """(s, R, t) minimising |s R source + t - target|² over points (N, 3) (Umeyama 1991).

    With `scale` False, s = 1 (a rigid fit). R is a proper rotation (no reflection).
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(b.T @ a / len(a))  # covariance target x source
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0
    rotation = u @ np.diag(d) @ vt
    variance = (a ** 2).sum() / len(a)
    s = float((sigma * d).sum() / variance) if scale and variance > 0 else 1.0
    return s, rotation, mu_t - s * rotation @ mu_s


def _apply(fit, points: np.ndarray) -> np.ndarray:
    s, rotation, t = fit
    return s * points @ rotation.T + t


def aligned_chunk_errors(pred: np.ndarray, true: np.ndarray, *, first_two: bool) -> np.ndarray:
    """Per-frame MPJPE (T,) in metres after a similarity fit per 100-frame chunk,
    fitted on the chunk's first two frames (`first_two`) or on all of it."""
    errors = []
    for start in range(0, len(pred), CHUNK):
        p, q = pred[start:start + CHUNK], true[start:start + CHUNK]
        fitted = p[:2] if first_two else p
        fit = similarity_fit(fitted.reshape(-1, 3), (q[:2] if first_two else q).reshape(-1, 3))
        errors.append(np.linalg.norm(_apply(fit, p) - q, axis=-1).mean(axis=-1))
    return np.concatenate(errors)


def root_translation_errors(pred_root: np.ndarray, true_root: np.ndarray) -> np.ndarray | None:
    """Per-frame RTE (T,) as a share of the true path length, or None for a root that
    travels less than `MIN_RTE_PATH`."""
    length = np.linalg.norm(np.diff(true_root, axis=0), axis=-1).sum()
    if length < MIN_RTE_PATH:
        return None
    fit = similarity_fit(pred_root, true_root, scale=False)
    return np.linalg.norm(_apply(fit, pred_root) - true_root, axis=-1) / length


def jitter(poses: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame jitter (T - 3,) in m/s³: mean over joints of |third difference| x fps³."""
    third = np.diff(poses, n=3, axis=0)
    return np.linalg.norm(third, axis=-1).mean(axis=-1) * fps ** 3


def acceleration_errors(pred: np.ndarray, true: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame acceleration error (T - 2,) in m/s² of the root-relative joints."""
    pred, true = pred - pred[:, :1], true - true[:, :1]
    difference = np.diff(pred, n=2, axis=0) - np.diff(true, n=2, axis=0)
    return np.linalg.norm(difference, axis=-1).mean(axis=-1) * fps ** 2


def foot_steps(poses: np.ndarray, feet: list[int]) -> np.ndarray:
    """Distance (T - 1, F) each foot joint moves from one frame to the next."""
    return np.linalg.norm(np.diff(poses[:, feet], axis=0), axis=-1)


def bone_variation(poses: np.ndarray, skeleton: Skeleton) -> float:
    """Mean over bones of std / mean of the bone's length over the frames (a share)."""
    parents = np.asarray(skeleton.parents)
    bones = np.flatnonzero(parents >= 0)
    lengths = np.linalg.norm(poses[:, bones] - poses[:, parents[bones]], axis=-1)  # (T, B)
    return float((lengths.std(axis=0) / np.maximum(lengths.mean(axis=0), 1e-9)).mean())


def floor_levels(true: np.ndarray, feet: list[int], planted: np.ndarray) -> np.ndarray:
    """(F,) each foot joint's height while its true foot is planted (median; lowest if never)."""
    heights = true[1:, feet, UP]  # aligned with the steps
    return np.array([np.median(heights[planted[:, f], f]) if planted[:, f].any() else true[:, foot, UP].min()
                     for f, foot in enumerate(feet)])


@dataclass
class WorldSums:
    """Running sums and counts of the per-frame values of each world metric."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(WORLD_METRICS, 0.0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WORLD_METRICS, 0))

    def put(self, name: str, values, scale: float = 1.0) -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        self.sums[name] += float(values.sum()) * scale
        self.counts[name] += len(values)

    def add(self, other: "WorldSums") -> None:
        for name in WORLD_METRICS:
            self.sums[name] += other.sums[name]
            self.counts[name] += other.counts[name]

    def means(self) -> dict[str, float]:
        """Each metric's mean in its unit (`UNITS`); NaN where no frame defines it."""
        return {name: self.sums[name] / self.counts[name] if self.counts[name] else math.nan
                for name in WORLD_METRICS}


def sequence_sums(pred: np.ndarray, true: np.ndarray, *, fps: float, skeleton: Skeleton) -> WorldSums:
    """The world metrics' sums over one sequence: predicted and true absolute joints
    (T, J, 3), metres, z up, at `fps` frames per second."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.ndim != 3:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} must both be (frames, joints, 3)")
    out = WorldSums()
    out.put("w_mpjpe100", aligned_chunk_errors(pred, true, first_two=True), _MM)
    out.put("wa_mpjpe100", aligned_chunk_errors(pred, true, first_two=False), _MM)
    rte = root_translation_errors(pred[:, 0], true[:, 0])
    if rte is not None:
        out.put("rte", rte, 100.0)
    out.put("jitter", jitter(pred, fps), 0.1)
    out.put("accel_error", acceleration_errors(pred, true, fps))
    out.put("bone_cv", [bone_variation(pred, skeleton) * 100.0] * len(pred))  # every frame weighs the same
    feet = list(skeleton.feet())  # the ends of the legs (Human3.6M-17: the ankles)
    if len(pred) > 1:
        planted = foot_steps(true, feet) < contact_step(fps)  # (T - 1, F)
        out.put("foot_sliding", foot_steps(pred, feet)[planted], _MM)
        levels = floor_levels(true, feet, planted)
        below = np.maximum(levels - pred[:, feet, UP], 0.0).max(axis=1)  # (T,) the deeper foot
        out.put("penetration", below, _MM)
        above = np.maximum(pred[1:, feet, UP] - levels, 0.0)  # (T - 1, F)
        out.put("floating", above[planted], _MM)
    return out


def average(groups: list[dict[str, float]]) -> dict[str, float]:
    """The plain mean over groups (action classes) of each metric, skipping groups where
    it is undefined (NaN: RTE of classes that stay in place)."""
    out = {}
    for name in WORLD_METRICS:
        values = [g[name] for g in groups if not math.isnan(g[name])]
        out[name] = float(np.mean(values)) if values else math.nan
    return out
