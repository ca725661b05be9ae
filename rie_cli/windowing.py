"""Windows of frames and the mirror: the one definition the sampler, inference and exports use.

The model sees windows of exactly one receptive field `R` (odd) and predicts one
frame of each: its centre, or, for a causal model, its last frame (VideoPose3D's
`causal_shift = pad`, pad = (R - 1) / 2). The window of target frame `t` reads the
source frames `t + offset` for the `R` offsets of `window_offsets`, and frames before
the start or past the end of the sequence read its first or last frame ("edge"
padding, as the authors' generators do). Both rules are written once here:

- `window_offsets` / `window_padding`: where a window lies relative to its frame;
- `clamp_to_sequence`: the edge rule (a source position clamped into [0, T - 1]),
  which `window_indices` (index gathering) and `pad_edges` (explicit padding) apply;
- `mirror`: x negated and left/right joints swapped (flip augmentation and flip
  test-time augmentation; the mirror of a mirror is the identity).

Every function takes NumPy arrays or torch tensors and returns the same kind. The
torch code is the definition; NumPy input goes through it by zero-copy conversion.
The torch path uses only operations `torch.export` traces with a dynamic sequence
length (the exported `SequenceLifter` in `rie_cli/export.py` calls it inside its graph).
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from rie_cli.errors import RieError

Array = Union[np.ndarray, torch.Tensor]


def causal_shift(receptive_field: int, causal: bool) -> int:
    """How far a window moves into the past from centred: pad for a causal model, else 0."""
    return (receptive_field - 1) // 2 if causal else 0


def shifted_padding(receptive_field: int, shift: int) -> tuple[int, int]:
    """Frames of edge padding (before, after) for windows moved `shift` frames into the past."""
    if receptive_field < 1 or receptive_field % 2 == 0:
        raise RieError(f"receptive field must be a positive odd number, got {receptive_field}")
    pad = (receptive_field - 1) // 2
    if not 0 <= shift <= pad:
        raise RieError(f"causal shift must be within [0, {pad}], got {shift}")
    return pad + shift, pad - shift


def window_padding(receptive_field: int, causal: bool) -> tuple[int, int]:
    """Frames of edge padding (before, after) so that every frame has a full window."""
    return shifted_padding(receptive_field, causal_shift(receptive_field, causal))


def window_offsets(receptive_field: int, causal: bool = False, *, shift: int | None = None) -> np.ndarray:
    """(R,) int64: source frame minus target frame at each window position (-before .. after)."""
    before, _ = shifted_padding(receptive_field, causal_shift(receptive_field, causal) if shift is None else shift)
    return np.arange(receptive_field, dtype=np.int64) - before


def clamp_to_sequence(positions: Array, num_frames) -> Array:
    """The edge rule: frame positions (..., K) clamped into [0, num_frames - 1].

    `num_frames` is an int or a tensor/array broadcasting against `positions[..., 0]`
    (one length per row, where rows belong to different sequences).
    """
    if isinstance(positions, np.ndarray):
        return _numpy(clamp_to_sequence, positions, num_frames)
    positions = positions.clamp(min=0)
    if isinstance(num_frames, (torch.Tensor, np.ndarray)):
        last = torch.as_tensor(num_frames, device=positions.device) - 1
        return torch.minimum(positions, last[..., None] if last.dim() else last)
    # A plain (possibly symbolic, under torch.export) int: compare against a filled tensor.
    return torch.minimum(positions, torch.full_like(positions, num_frames - 1))


def window_indices(frames: Array, num_frames, receptive_field: int, causal: bool = False,
                   first_frame=0, *, shift: int | None = None) -> Array:
    """(N,) target frames -> (N, R) source frame of every window position, edge padding included.

    `num_frames` (the sequence length) and `first_frame` (where the sequence starts, when
    several are stored end to end) are ints or per-frame arrays (N,). `shift` overrides
    the causal shift implied by `causal` (the sampler's `causal_shift`).
    """
    if isinstance(frames, np.ndarray):
        return _numpy(window_indices, frames, num_frames, receptive_field, causal, first_frame, shift=shift)
    offsets = torch.as_tensor(window_offsets(receptive_field, causal, shift=shift), device=frames.device)  # (R,)
    local = clamp_to_sequence(frames[:, None] + offsets[None, :], num_frames)  # (N, R)
    if isinstance(first_frame, (torch.Tensor, np.ndarray)):
        first = torch.as_tensor(first_frame, device=frames.device)
        return local + (first[..., None] if first.dim() else first)
    return local + first_frame


def pad_edges(sequence: Array, before: int, after: int) -> Array:
    """(T, ...) -> (before + T + after, ...): the first frame repeated `before` times, the last `after`."""
    if isinstance(sequence, np.ndarray):
        return _numpy(pad_edges, sequence, before, after)
    positions = torch.arange(-before, len(sequence) + after, device=sequence.device)  # (T + before + after,)
    return sequence[clamp_to_sequence(positions[:, None], len(sequence))[:, 0]]


def mirror(poses: Array, flip_permutation: Array) -> Array:
    """Poses (..., J, D) mirrored: x negated, left and right joints swapped (a new array)."""
    if isinstance(poses, np.ndarray):
        return _numpy(mirror, poses, flip_permutation)
    swapped = poses[..., torch.as_tensor(flip_permutation, device=poses.device), :]  # (..., J, D)
    return torch.cat((-swapped[..., :1], swapped[..., 1:]), dim=-1)


def _numpy(fn, array: np.ndarray, *args, **kwargs) -> np.ndarray:
    """Run the torch definition `fn` on a NumPy array (zero-copy where it can) and return NumPy."""
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory
        array = array.copy()
    args = tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args)
    return fn(torch.from_numpy(array), *args, **kwargs).numpy()
