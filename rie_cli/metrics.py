"""Pose errors, one number per frame: MPJPE (P1), P-MPJPE (P2), N-MPJPE, MPJVE.

Every function takes a prediction and a target of shape (N, J, 3) in the same units,
NumPy arrays or torch tensors (both the same kind), and returns the per-frame errors
(N,) of that kind: the mean over joints of the Euclidean distance after the alignment
the metric allows. MPJVE compares velocities, so it returns one error per pair of
consecutive frames: (N - 1,). Averaging over frames is the protocol's job
(`rie_cli.evaluation`); keeping frames separate lets it weight them exactly.

The torch versions of `mpjpe`, `n_mpjpe` and `mpjve` are differentiable; `p_mpjpe`
goes through an SVD and is meant for evaluation only.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"]


def _check(pred, target) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected (N, J, 3) poses, got {tuple(pred.shape)}")
    if isinstance(pred, torch.Tensor) != isinstance(target, torch.Tensor):
        raise TypeError("prediction and target must both be NumPy arrays or both torch tensors")


def _joint_distance(a, b):
    """(N, J, 3) x 2 -> (N, J) Euclidean distances."""
    if isinstance(a, torch.Tensor):
        return torch.linalg.vector_norm(a - b, dim=-1)
    return np.linalg.norm(a - b, axis=-1)


def mpjpe(pred, target):
    """Protocol 1: mean per-joint position error of each frame, no alignment."""
    _check(pred, target)
    return _joint_distance(pred, target).mean(-1)


def n_mpjpe(pred, target):
    """MPJPE after scaling each predicted frame by the least-squares optimal factor."""
    _check(pred, target)
    # s = <pred, target> / <pred, pred> over the frame's joints and coordinates. A frame
    # predicted as all zeros is the same whatever the scale: its error is the target's
    # size (scale 0), not 0 / 0.
    if isinstance(pred, torch.Tensor):
        dot = (pred * target).sum(dim=(-2, -1), keepdim=True)  # (N, 1, 1)
        sq = (pred * pred).sum(dim=(-2, -1), keepdim=True)
        scale = torch.where(sq > 0, dot / torch.where(sq > 0, sq, torch.ones_like(sq)), torch.zeros_like(sq))
    else:
        dot = (pred * target).sum(axis=(-2, -1), keepdims=True)
        sq = (pred * pred).sum(axis=(-2, -1), keepdims=True)
        scale = np.where(sq > 0, dot / np.where(sq > 0, sq, 1), 0)
    return mpjpe(pred * scale, target)


def mpjve(pred, target):
    """Mean per-joint velocity error: MPJPE of the first differences over frames, (N - 1,)."""
    _check(pred, target)
    return _joint_distance(pred[1:] - pred[:-1], target[1:] - target[:-1]).mean(-1)


def p_mpjpe(pred, target):
    """Protocol 2: MPJPE after a per-frame similarity alignment (rotation, scale, translation).

    The rotation is a proper one: where the best orthogonal fit would be a reflection
    (det < 0), the last singular direction is flipped, as docs/method.md §5 prescribes.
    Computed in float64 whatever the input precision. A frame holding NaN or infinite
    values has a NaN error (an SVD of it would not converge).
    """
    _check(pred, target)
    if isinstance(pred, torch.Tensor):
        aligned = _procrustes_align(pred.detach().cpu().double().numpy(), target.detach().cpu().double().numpy())
        errors = _joint_distance(aligned, target.detach().cpu().double().numpy()).mean(-1)
        return torch.from_numpy(errors).to(device=pred.device, dtype=pred.dtype)
    pred64 = np.asarray(pred, dtype=np.float64)
    target64 = np.asarray(target, dtype=np.float64)
    errors = _joint_distance(_procrustes_align(pred64, target64), target64).mean(-1)
    return errors.astype(np.result_type(pred.dtype, np.float32), copy=False)


def _procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The similarity transform of each frame of `pred` that best fits `target`, applied: (N, J, 3).

    Frames that are not finite come back as NaN.
    """
    finite = np.isfinite(pred).all(axis=(1, 2)) & np.isfinite(target).all(axis=(1, 2))  # (N,)
    if not finite.all():
        aligned = np.full_like(pred, np.nan)
        aligned[finite] = _procrustes_align(pred[finite], target[finite])
        return aligned
    mu_pred = pred.mean(axis=1, keepdims=True)  # (N, 1, 3)
    mu_target = target.mean(axis=1, keepdims=True)
    p0 = pred - mu_pred  # (N, J, 3)
    t0 = target - mu_target
    norm_p = np.sqrt((p0**2).sum(axis=(1, 2), keepdims=True))  # (N, 1, 1)
    norm_t = np.sqrt((t0**2).sum(axis=(1, 2), keepdims=True))
    # A frame collapsed to one point has no orientation: keep it as it is (scale 0 below).
    norm_p = np.where(norm_p > 0, norm_p, 1.0)
    norm_t = np.where(norm_t > 0, norm_t, 1.0)
    p0 = p0 / norm_p
    t0 = t0 / norm_t

    # Kabsch: rotate the prediction by R = V U^T where U S V^T = svd(p0^T t0), acting on row vectors.
    u, s, vt = np.linalg.svd(np.swapaxes(p0, 1, 2) @ t0)  # (N, 3, 3), (N, 3), (N, 3, 3)
    d = np.sign(np.linalg.det(u @ vt))  # (N,) -1 where the best fit is a reflection
    d = np.where(d == 0, 1.0, d)
    # Flip the weakest singular direction instead of reflecting: R = U diag(1, 1, d) V^T.
    flip = np.ones_like(s)
    flip[:, -1] = d
    rotation = (u * flip[:, None, :]) @ vt  # (N, 3, 3)
    scale = (s * flip).sum(axis=1)[:, None, None] * norm_t / norm_p  # (N, 1, 1)
    return scale * (p0 * norm_p) @ rotation + mu_target
