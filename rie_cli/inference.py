"""Per-frame prediction of whole sequences: every frame from its own window.

The model sees windows of exactly one receptive field `R` and predicts one pose per
window (its centre frame, or its last frame in causal mode). To predict a sequence of
`T` frames, frame `t` gets the window `[t - pad, t + pad]` (causal: `[t - 2 pad, t]`,
VideoPose3D's `causal_shift = pad`), with the sequence edge-padded (first and last
frames repeated) so that border frames have full windows, the way the authors
evaluate. Optionally each window also goes through mirrored (flip test-time
augmentation) and the mirrored prediction, mirrored back, is averaged in.

Why each window runs the whole network on its own: RIE's temporal encoding is
`p[t, j] - p[c, j]`, relative to the window's own reference frame `c`, and its global
encoder sees frame `c` alone. Two overlapping windows therefore feed different
numbers for the same frame `t` into their part encoders, so, unlike VideoPose3D's
model, the dilated convolution cannot slide once over the sequence and share
intermediate features between neighbouring windows. Only the first convolution is
linear in the input, so at most that layer could be shared (the per-window term is a
constant shift); after its BatchNorm and LeakyReLU every feature depends on `c`.
What can be batched is many windows per forward pass, which is what this does:
windows are gathered by index arithmetic (no Python loop per window) and plain and
mirrored windows go through the model in one batch. (VideoPose3D's model, having no
relative encoding, could share work through its dilated form; this path treats both
architectures alike, window by window.)
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch
from torch import nn

from rie_cli.errors import RieError
from rie_cli.model import resolve_device
from rie_cli.skeleton import Skeleton

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def window_padding(receptive_field: int, causal: bool) -> tuple[int, int]:
    """Frames of edge padding (before, after) so that every frame has a full window."""
    pad = (receptive_field - 1) // 2
    return (2 * pad, 0) if causal else (pad, pad)


def window_indices(frames: torch.Tensor, num_frames, receptive_field: int, causal: bool,
                   first_frame: torch.Tensor | int = 0) -> torch.Tensor:
    """(N,) target frames -> (N, R) source frame of every window position, edge padding included.

    Clamping each index into its sequence ([0, T - 1], shifted by `first_frame` where
    several sequences are stored end to end) is exactly 'edge' padding: positions
    before the start read the first frame, positions after the end the last one.
    `num_frames` and `first_frame` may be per-frame tensors (N,).
    """
    before, _ = window_padding(receptive_field, causal)
    offsets = torch.arange(receptive_field, device=frames.device) - before  # (R,)
    last = torch.as_tensor(num_frames, device=frames.device) - 1
    local = frames[:, None] + offsets[None, :]  # (N, R)
    local = torch.minimum(local.clamp_(min=0), last[..., None] if last.dim() else last)
    first = torch.as_tensor(first_frame, device=frames.device)
    return local + (first[..., None] if first.dim() else first)


def mirror_pose(keypoints: torch.Tensor, flip_permutation: torch.Tensor) -> torch.Tensor:
    """x -> -x and left/right joints swapped; (..., J, 2) or (..., J, 3)."""
    mirrored = keypoints[..., flip_permutation, :].clone()
    mirrored[..., 0] *= -1
    return mirrored


def predict_sequence(
    model: nn.Module,
    keypoints_2d: np.ndarray,
    *,
    skeleton: Skeleton,
    tta: bool = True,
    batch_size: int = 1024,
    device="cpu",
    precision: str = "fp32",
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(T, J, 2) normalised keypoints -> (T, J, 3) float32 poses, one window per frame.

    `batch_size` counts windows per forward pass, mirrored ones included (so with
    `tta` each pass predicts `batch_size // 2` frames). The model is moved to `device`
    and put in eval mode. `precision`: "fp32", or "bf16" / "fp16" under autocast.
    `on_batch(n)` is called after each pass with the number of frames it predicted
    (for progress bars).
    """
    return predict_many(model, [keypoints_2d], skeleton=skeleton, tta=tta, batch_size=batch_size,
                        device=device, precision=precision, progress=on_batch)[0]


def predict_many(
    model: nn.Module,
    sequences_2d: list[np.ndarray],
    *,
    skeleton: Skeleton,
    tta: bool = True,
    batch_size: int = 1024,
    device="cpu",
    precision: str = "fp32",
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """`predict_sequence` for many sequences at once: one (T_i, J, 3) array per input.

    The sequences are laid end to end and their windows share forward passes, so
    short sequences still fill the batches; each window is still gathered from, and
    edge-padded within, its own sequence.
    """
    arrays = [_check_keypoints(k, skeleton) for k in sequences_2d]
    if not arrays:
        return []
    model_joints = getattr(getattr(model, "config", None), "num_joints", skeleton.num_joints)
    if model_joints != skeleton.num_joints:
        raise RieError(
            f"the model predicts {model_joints} joints, the skeleton '{skeleton.name}' has {skeleton.num_joints}"
        )
    if batch_size < 1:
        raise RieError(f"batch size must be positive, got {batch_size}")
    if precision not in PRECISIONS:
        raise RieError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    dev = resolve_device(device)
    model.to(dev).eval()
    receptive_field = model.receptive_field()
    causal = bool(getattr(getattr(model, "config", None), "causal", False))
    frames_per_pass = max(1, batch_size // 2) if tta else batch_size

    lengths = np.array([len(a) for a in arrays])
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    out = np.empty((total, skeleton.num_joints, 3), dtype=np.float32)
    autocast = (torch.autocast(device_type=dev.type, dtype=PRECISIONS[precision])
                if PRECISIONS[precision] is not None else nullcontext())
    with torch.inference_mode(), autocast:
        flat = torch.from_numpy(np.concatenate(arrays)).to(dev)  # (F, J, 2): all sequences end to end
        first_of = torch.from_numpy(np.repeat(starts, lengths)).to(dev)  # (F,) first frame of each frame's sequence
        length_of = torch.from_numpy(np.repeat(lengths, lengths)).to(dev)  # (F,) its sequence's length
        perm = torch.as_tensor(skeleton.flip_permutation(), device=dev)
        mirrored_flat = mirror_pose(flat, perm) if tta else None  # (F, J, 2)
        for start in range(0, total, frames_per_pass):
            frames = torch.arange(start, min(start + frames_per_pass, total), device=dev)  # (N,)
            first = first_of[frames]
            index = window_indices(frames - first, length_of[frames], receptive_field, causal, first)  # (N, R)
            windows = flat[index]  # (N, R, J, 2): each runs the whole network (module docstring)
            if tta:
                windows = torch.cat((windows, mirrored_flat[index]))  # (2N, R, J, 2)
            poses = model(windows)[:, 0].float()  # (N or 2N, J, 3)
            if tta:
                n = len(frames)
                poses = (poses[:n] + mirror_pose(poses[n:], perm)) / 2  # (N, J, 3)
            out[start : start + len(frames)] = poses.cpu().numpy()
            if progress is not None:
                progress(len(frames))
    return np.split(out, np.cumsum(lengths)[:-1])


def _check_keypoints(keypoints_2d, skeleton: Skeleton) -> np.ndarray:
    keypoints = np.asarray(keypoints_2d)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (skeleton.num_joints, 2):
        raise RieError(
            f"2D keypoints must have shape (frames, {skeleton.num_joints}, 2), got {tuple(keypoints.shape)}"
        )
    if keypoints.shape[0] == 0:
        raise RieError("the 2D keypoint sequence is empty")
    if not np.isfinite(keypoints).all():
        raise RieError("the 2D keypoints contain NaN or infinite values; fill the gaps first")
    return np.ascontiguousarray(keypoints, dtype=np.float32)
