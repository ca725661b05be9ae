"""Batches of receptive-field windows for training (and ordered sweeps for checks).

Every frame t of every sequence defines one window: the `R` input frames centred on
t (or ending at t in causal mode), with the sequence edge-padded so that border
frames have full windows, and the 3D target of frame t. With flip augmentation each
window appears a second time mirrored (x negated, left/right joints swapped, in 2D
and 3D), as in the authors' generator. Targets may also be the camera-space root alone,
(N, 1, 3) per sequence, for trajectory models: mirrored, its x is negated.

Nothing is materialised per window: all padded sequences are concatenated once
(O(frames)), a window is just the start index of its slice, and a batch is gathered
with one fancy-indexing call, `padded[start[:, None] + arange(R)]`. (All windows of
Human3.6M at R = 243 would be ~33 GB.)

The order of an epoch depends only on (seed, epoch), so a resumed run sees exactly
the batches the interrupted one would have, and shards of a distributed run split
one shared permutation without overlap.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton


def flip_poses(x: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Mirror poses (..., J, D): x coordinate negated, left and right joints swapped."""
    out = x[..., skeleton.flip_permutation(), :].copy()
    out[..., 0] *= -1
    return out


class WindowSampler:
    def __init__(
        self,
        inputs_2d: list[np.ndarray],
        targets_3d: list[np.ndarray] | None,
        receptive_field: int,
        batch_size: int,
        *,
        skeleton: Skeleton,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 4321,
        causal_shift: int = 0,
        num_shards: int = 1,
        shard_index: int = 0,
        drop_last: bool = False,
    ):
        if receptive_field < 1 or receptive_field % 2 == 0:
            raise RieError(f"receptive field must be a positive odd number, got {receptive_field}")
        if not inputs_2d:
            raise RieError("no sequences to draw windows from (empty selection)")
        if targets_3d is not None and len(targets_3d) != len(inputs_2d):
            raise RieError("2D inputs and 3D targets hold different numbers of sequences")
        if not 0 <= shard_index < num_shards:
            raise RieError(f"shard {shard_index} out of range for {num_shards} shards")
        pad = (receptive_field - 1) // 2
        if not 0 <= causal_shift <= pad:
            raise RieError(f"causal shift must be within [0, {pad}], got {causal_shift}")

        self.receptive_field = receptive_field
        self.batch_size = batch_size
        self.skeleton = skeleton
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.drop_last = drop_last
        self.epoch = 0

        # Causal windows end at their frame: pad 2*pad before and nothing after
        # (VideoPose3D's causal_shift = pad); centred windows pad `pad` on each side.
        before, after = pad + causal_shift, pad - causal_shift
        lengths = np.array([len(x) for x in inputs_2d])
        padded = [np.pad(x, ((before, after), (0, 0), (0, 0)), mode="edge") for x in inputs_2d]
        self._inputs = np.ascontiguousarray(np.concatenate(padded), dtype=np.float32)  # (sum N+R-1, J, 2)
        padded_offsets = np.concatenate([[0], np.cumsum(lengths + receptive_field - 1)[:-1]])
        frame_offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # Window w (one per frame, over all sequences) starts at _starts[w] in _inputs.
        seq_of_window = np.repeat(np.arange(len(lengths)), lengths)
        frame_in_seq = np.arange(lengths.sum()) - frame_offsets[seq_of_window]
        self._starts = (padded_offsets[seq_of_window] + frame_in_seq).astype(np.int64)
        self._targets = None
        if targets_3d is not None:
            for x, y in zip(inputs_2d, targets_3d):
                if len(x) != len(y):
                    raise RieError(f"a sequence has {len(x)} 2D frames but {len(y)} 3D frames")
            self._targets = np.ascontiguousarray(np.concatenate(targets_3d), dtype=np.float32)  # (sum N, J, 3)
        self._offsets = np.arange(receptive_field, dtype=np.int64)
        self._flip_perm = skeleton.flip_permutation()
        # Targets are either every joint (poses) or the root alone, (N, 1, 3) camera-space
        # positions (trajectory models): a mirrored root only has its x negated.
        target_joints = None if self._targets is None else self._targets.shape[1]
        self._target_flip_perm = self._flip_perm if target_joints != 1 else np.zeros(1, dtype=np.int64)
        self.num_frames = int(lengths.sum())

    @property
    def num_windows(self) -> int:
        """Windows in one epoch over all shards (mirrored copies counted)."""
        return self.num_frames * (2 if self.augment else 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard_batches(self) -> list[np.ndarray]:
        ids = np.arange(self.num_windows, dtype=np.int64)
        if self.shuffle:
            ids = np.random.default_rng([self.seed, self.epoch]).permutation(ids)
        shard = ids[self.shard_index :: self.num_shards]
        if self.drop_last:
            n = len(shard) // self.batch_size
            return [shard[i * self.batch_size : (i + 1) * self.batch_size] for i in range(n)]
        # Every shard gets the same number of batches (DistributedDataParallel needs the
        # ranks to take equal numbers of steps), sizes as even as possible and <= batch_size.
        per_shard = -(-self.num_windows // self.num_shards)
        n_batches = max(1, -(-per_shard // self.batch_size))
        return [b for b in np.array_split(shard, n_batches) if len(b)]

    def __len__(self) -> int:
        return len(self._shard_batches())

    def gather(self, window_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The windows with these ids: 2D (B, R, J, 2) and 3D targets (B, 1, J or 1, 3) or None."""
        flipped = window_ids >= self.num_frames
        base = np.where(flipped, window_ids - self.num_frames, window_ids)
        x = self._inputs[self._starts[base][:, None] + self._offsets]  # (B, R, J, 2)
        y = None if self._targets is None else self._targets[base][:, None]  # (B, 1, J, 3)
        if flipped.any():
            x[flipped] = x[flipped][..., self._flip_perm, :] * np.array([-1, 1], dtype=np.float32)
            if y is not None:
                y[flipped] = y[flipped][..., self._target_flip_perm, :] * np.array([-1, 1, 1], dtype=np.float32)
        return x, y

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
        for ids in self._shard_batches():
            x, y = self.gather(ids)
            yield x, y, ids
