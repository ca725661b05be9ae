"""Per-frame prediction of whole sequences: every frame from its own window.

The model sees windows of exactly one receptive field `R` and predicts one pose per
window (its centre frame, or its last frame in causal mode). To predict a sequence of
`T` frames, frame `t` gets the window `[t - pad, t + pad]` (causal: `[t - 2 pad, t]`,
VideoPose3D's `causal_shift = pad`), with the sequence edge-padded (first and last
frames repeated) so that border frames have full windows, the way the authors
evaluate; windows and the mirror are `rie_cli.windowing`'s. Optionally each window
also goes through mirrored (flip test-time augmentation) and the mirrored
prediction, mirrored back, is averaged in.

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

How it runs fast (`predict_many`): the model runs in its folded evaluation form
(`rie_cli.model.folding`: BatchNorm folded into the layer before it, every strided
convolution one matrix multiplication on channels-last activations, reused buffers),
sequences are processed in chunks of about `CHUNK_FRAMES` frames (memory bounded
however many sequences there are), the per-frame encodings of a chunk are computed
once and each batch of windows is gathered from them with one indexing call per
body part. Models the folded form does not know run as they are (same results,
slower), with one `SlowPathWarning` per reason saying so.
"""

from __future__ import annotations

import warnings
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from rie_cli.errors import RieError
from rie_cli.devices import PRECISIONS, resolve_device, resolve_precision
from rie_cli.skeleton import Skeleton
from rie_cli.windowing import mirror, window_indices

# Frames of input held at once: whole sequences are grouped into chunks of about this
# many frames (a longer sequence forms a chunk of its own). Per chunk, the per-frame
# features of the plain and mirrored copies take ~0.8 KB per frame for Human3.6M.
CHUNK_FRAMES = 65536


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
    and put in eval mode. `precision`: "fp32", "bf16" or "fp16" (see `predict_many`).
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
    fold: bool = True,
) -> list[np.ndarray]:
    """`predict_sequence` for many sequences at once: one (T_i, J, 3) float32 array per input
    ((T_i, 1, 3), the camera-space root, for a trajectory model).

    Windows of different sequences share forward passes, so short sequences still fill
    the batches; each window is still edge-padded within its own sequence. `precision`
    "bf16" / "fp16" runs weights and activations in that type (matrix products still
    accumulate in float32). `fold=False` runs the model as it is instead of its folded
    form (same outputs up to float32 rounding; slower).
    """
    arrays = [_check_keypoints(k, skeleton) for k in sequences_2d]
    if not arrays:
        return []
    model_joints = getattr(getattr(model, "config", None), "num_joints", skeleton.num_joints)
    if model_joints != skeleton.num_joints:
        raise RieError(f"the model predicts {model_joints} joints, the skeleton '{skeleton.name}' has "
                       f"{skeleton.num_joints}")
    if batch_size < 1:
        raise RieError(f"batch size must be positive, got {batch_size}")
    form = evaluation_form(model, precision, device, fold=fold)
    plan = _WindowPlan.for_model(model, skeleton, resolve_device(device), tta=tta, batch_size=batch_size)
    outputs: list[np.ndarray] = []
    try:
        for chunk in _chunks([len(a) for a in arrays], CHUNK_FRAMES):
            outputs.extend(_predict_chunk(form, [arrays[i] for i in chunk], plan, progress))
    finally:
        form.release()
    return outputs


@dataclass(frozen=True)
class _WindowPlan:
    """How `predict_many` windows, mirrors and batches for one model."""

    device: torch.device
    receptive_field: int
    causal: bool
    tta: bool
    frames_per_pass: int  # frames predicted per forward pass (half the windows with tta)
    perm: torch.Tensor  # (J,) the flip's left/right swap of the input joints
    out_perm: torch.Tensor  # (J_out,) the same for the outputs
    out_joints: int

    @classmethod
    def for_model(cls, model: nn.Module, skeleton: Skeleton, dev: torch.device, *, tta: bool,
                  batch_size: int) -> "_WindowPlan":
        config = getattr(model, "config", None)
        perm = torch.as_tensor(skeleton.flip_permutation(), device=dev)
        # The outputs: every joint (mirrored back with the same permutation), or the root
        # alone for a trajectory model (mirrored back by negating x; it has no left/right).
        out_joints = getattr(config, "output_joints", skeleton.num_joints)
        out_perm = perm if out_joints == skeleton.num_joints else torch.zeros(1, dtype=torch.int64, device=dev)
        return cls(device=dev, receptive_field=model.receptive_field(), causal=bool(getattr(config, "causal", False)),
                   tta=tta, frames_per_pass=max(1, batch_size // 2) if tta else batch_size, perm=perm,
                   out_perm=out_perm, out_joints=out_joints)


def _predict_chunk(form, sequences: list[np.ndarray], plan: _WindowPlan,
                   progress: Callable[[int], None] | None) -> list[np.ndarray]:
    """One chunk of (T_i, J, 2) sequences -> one (T_i, J_out, 3) float32 array each."""
    dev = plan.device
    # The chunk's sequences end to end: (F, J, 2) rows. Per row: its frame within its
    # sequence, that sequence's length and first row (windows stay inside it).
    lengths = np.array([len(a) for a in sequences])
    first_row = np.repeat(np.cumsum(lengths) - lengths, lengths)  # (F,)
    local = torch.from_numpy(np.arange(lengths.sum()) - first_row).to(dev)  # (F,)
    num = torch.from_numpy(np.repeat(lengths, lengths)).to(dev)  # (F,)
    first_row = torch.from_numpy(first_row).to(dev)
    rows = torch.from_numpy(np.concatenate(sequences)).to(dev)  # (F, J, 2)
    if plan.tta:
        # The mirrored copy follows the plain one: a window's mirror is its rows + F.
        rows = torch.cat((rows, mirror(rows, plan.perm)))  # (2F, J, 2)
    features = form.frame_features(rows)
    result = np.empty((len(local), plan.out_joints, 3), dtype=np.float32)
    for first in range(0, len(local), plan.frames_per_pass):
        part = slice(first, first + plan.frames_per_pass)
        index = window_indices(local[part], num[part], plan.receptive_field, plan.causal, first_row[part])  # (N, R)
        n = len(index)
        if plan.tta:
            index = torch.cat((index, index + len(rows) // 2))  # (2N, R): plain, then mirrored
        poses = form.forward_windows(features, index)  # (N or 2N, J_out, 3) float32
        if plan.tta:
            poses = (poses[:n] + mirror(poses[n:], plan.out_perm)) / 2  # (N, J_out, 3)
        result[first : first + n] = poses.cpu().numpy()
        if progress is not None:
            progress(n)
    return np.split(result, np.cumsum(lengths)[:-1])


class _EagerForm:
    """The model as it is, behind the folded form's interface (for models it cannot fold)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, device: torch.device):
        self.model = model
        self.dtype = dtype
        self.device = device

    def frame_features(self, rows: torch.Tensor) -> torch.Tensor:
        return rows  # (P, J, 2): windows are gathered from the frames themselves

    def forward_windows(self, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        autocast = (torch.autocast(device_type=self.device.type, dtype=self.dtype)
                    if self.dtype != torch.float32 else nullcontext())
        with torch.inference_mode(), autocast:
            return self.model(rows[index])[:, 0].float()  # (B, R, J, 2) -> (B, J_out, 3)

    def release(self) -> None:
        pass


# model -> (weights key, folded form). Folding a 40M-parameter model takes a good part
# of a second, and `rie predict` or a test may call predict_sequence many times.
_FOLDED: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def evaluation_form(model: nn.Module, precision: str = "fp32", device="cpu", *, fold: bool = True):
    """The fastest form of `model` with its outputs: folded where possible, else the model itself.

    Folded: weights and activations in `precision` (a name of `rie_cli.devices.PRECISIONS`,
    or "auto"); eager (unfoldable models): autocast to it. Moves the model to `device` in
    eval mode. The folded form is cached per model and made again when a weight changes
    (a tensor's version counter moves on every in-place update, such as an optimizer
    step) or the model moves.
    """
    from rie_cli.model.folding import NotFoldable, fold_model

    dev = resolve_device(device)
    if precision == "auto":
        precision = resolve_precision(precision, dev)
    if precision not in PRECISIONS:
        raise RieError(f"precision must be one of auto, {', '.join(PRECISIONS)}, got '{precision}'")
    model.to(dev).eval()
    if not fold:
        return _EagerForm(model, PRECISIONS[precision], dev)
    key = (precision, str(dev), tuple((t.data_ptr(), t._version) for t in model.state_dict().values()))
    cached = _FOLDED.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        folded = fold_model(model, PRECISIONS[precision])
    except NotFoldable as exc:
        _warn_slow_path(str(exc))
        return _EagerForm(model, PRECISIONS[precision], dev)
    _FOLDED[model] = (key, folded)
    return folded


class SlowPathWarning(UserWarning):
    """Inference runs the model as it is, not its folded form: same outputs, several times slower."""


_WARNED: set[str] = set()


def _warn_slow_path(reason: str) -> None:
    """Say once per reason (per process) that the folded fast path was not taken, and why:
    a change to the model that the folded form does not follow must not go unnoticed."""
    if reason in _WARNED:
        return
    _WARNED.add(reason)
    warnings.warn(f"evaluation runs the model unfolded (slower, same results): {reason}", SlowPathWarning,
                  stacklevel=3)


def _chunks(lengths: list[int], max_frames: int) -> list[list[int]]:
    """Consecutive groups of sequence indices of at most `max_frames` frames (or one longer sequence)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    frames = 0
    for i, n in enumerate(lengths):
        if current and frames + n > max_frames:
            chunks.append(current)
            current, frames = [], 0
        current.append(i)
        frames += n
    if current:
        chunks.append(current)
    return chunks


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
