"""Batches of receptive-field windows for training (and ordered sweeps for checks).

Every frame t of every sequence defines one window: the `R` input frames centred on
t (or ending at t in causal mode), with the sequence edge-padded so that border
frames have full windows, and the 3D target of frame t. With flip augmentation each
window appears a second time mirrored (x negated, left/right joints swapped, in 2D
and 3D), as in the authors' generator. Targets may also be the camera-space root alone,
(N, 1, 3) per sequence, for trajectory models: mirrored, its x is negated. Padding and
the mirror are `rie_cli.windowing`'s, the definition inference and the exported model use too.

Nothing is materialised per window: all padded sequences are concatenated once
(O(frames)), a window is just the start index of its slice, and a batch is gathered
with one fancy-indexing call, `padded[start[:, None] + arange(R)]`. (All windows of
Human3.6M at R = 243 would be ~33 GB.)

The order of an epoch depends only on (seed, epoch), so a resumed run sees exactly
the batches the interrupted one would have, and shards of a distributed run split
one shared permutation without overlap.

`DeviceWindowSampler` keeps the same arrays as tensors on the training device and
builds the same batches there (a GPU would otherwise wait for host gathering and a
copy every step); `make_sampler` chooses it whenever the data fits.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton
from rie_cli.windowing import mirror, pad_edges, shifted_padding


def _padded_windows(inputs_2d: list[np.ndarray], receptive_field: int, before: int,
                    after: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All sequences edge-padded and concatenated, and where each frame's window starts.

    Returns inputs (sum(N + R - 1), J, 2) float32; starts (sum N,) int64: window w (one
    per frame, over all sequences) is inputs[starts[w] : starts[w] + R]; and the index
    of each window's frame in its own sequence (sum N,).
    """
    lengths = np.array([len(x) for x in inputs_2d])
    padded = [pad_edges(np.asarray(x), before, after) for x in inputs_2d]
    inputs = np.ascontiguousarray(np.concatenate(padded), dtype=np.float32)
    padded_offsets = np.concatenate([[0], np.cumsum(lengths + receptive_field - 1)[:-1]])
    frame_offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    seq_of_window = np.repeat(np.arange(len(lengths)), lengths)
    frame_in_seq = np.arange(lengths.sum()) - frame_offsets[seq_of_window]
    starts = (padded_offsets[seq_of_window] + frame_in_seq).astype(np.int64)
    return inputs, starts, frame_in_seq


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
        window_stride: int = 1,
        min_batch: int = 1,
    ):
        if window_stride < 1:
            raise RieError(f"window stride must be at least 1, got {window_stride}")
        # Causal windows end at their frame: pad 2*pad before and nothing after
        # (VideoPose3D's causal_shift = pad); centred windows pad `pad` on each side.
        before, after = shifted_padding(receptive_field, causal_shift)
        if not inputs_2d:
            raise RieError("no sequences to draw windows from (empty selection)")
        if targets_3d is not None and len(targets_3d) != len(inputs_2d):
            raise RieError("2D inputs and 3D targets hold different numbers of sequences")
        if not 1 <= min_batch <= batch_size:
            raise RieError(f"batches of at most {batch_size} windows cannot hold the {min_batch} each needs")
        if not 0 <= shard_index < num_shards:
            raise RieError(f"shard {shard_index} out of range for {num_shards} shards")

        self.receptive_field = receptive_field
        self.batch_size = batch_size
        self.skeleton = skeleton
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.drop_last = drop_last
        self.window_stride = window_stride
        self.min_batch = min_batch
        self.epoch = 0

        self._inputs, self._starts, frame_in_seq = _padded_windows(inputs_2d, receptive_field, before, after)
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
        # Every frame's window and target; the epoch's windows are a selection of them.
        self._all_starts, self._all_targets, self._frame_in_seq = self._starts, self._targets, frame_in_seq
        self._check_smallest_epoch([len(x) for x in inputs_2d])
        self._select_phase()

    def _check_smallest_epoch(self, lengths: list[int]) -> None:
        """RieError unless every shard of every epoch gets at least `min_batch` windows.

        With a window stride N the epoch of phase N - 1 is the smallest: sequences of
        N - 1 frames or fewer have no frame there (a stride longer than every sequence
        leaves it empty).
        """
        last_phase = self.window_stride - 1
        frames = sum(-(-(n - last_phase) // self.window_stride) for n in lengths if n > last_phase)
        windows = frames * (2 if self.augment else 1)
        if windows // self.num_shards >= self.min_batch:
            return
        where = (f"with window stride {self.window_stride} (longest sequence {max(lengths)} frames) "
                 if self.window_stride > 1 else "")
        need = self.min_batch * self.num_shards
        raise RieError(f"an epoch {where}holds {windows} windows, fewer than the {need} needed "
                       f"({self.num_shards} process{'es' if self.num_shards > 1 else ''} x {self.min_batch} "
                       "per batch): use a smaller stride or more frames")

    def _select_phase(self) -> None:
        """The windows of this epoch: every frame's, or with `window_stride` N the frames whose
        index in their sequence is the epoch modulo N (another 1/N of them each epoch, all at
        the sequence's full frame rate)."""
        if self.window_stride == 1:
            self._starts, self._targets = self._all_starts, self._all_targets
        else:
            keep = np.flatnonzero(self._frame_in_seq % self.window_stride == self.epoch % self.window_stride)
            if isinstance(self._all_starts, torch.Tensor):
                keep = torch.from_numpy(keep).to(self._all_starts.device)
            self._starts = self._all_starts[keep]
            self._targets = None if self._all_targets is None else self._all_targets[keep]
        self.num_frames = int(len(self._starts))

    @property
    def num_windows(self) -> int:
        """Windows in one epoch over all shards (mirrored copies counted)."""
        return self.num_frames * (2 if self.augment else 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.window_stride > 1:
            self._select_phase()

    def _shard_batches(self) -> list[np.ndarray]:
        """This shard's batches of the epoch: as many on every shard (DistributedDataParallel
        needs the ranks to take equal numbers of steps), none empty, sizes as even as possible
        and within [min_batch, batch_size]."""
        ids = np.arange(self.num_windows, dtype=np.int64)
        if self.shuffle:
            ids = np.random.default_rng([self.seed, self.epoch]).permutation(ids)
        shard = ids[self.shard_index :: self.num_shards]
        shortest = self.num_windows // self.num_shards  # the shards hold `shortest` or one more
        if self.drop_last:
            n = shortest // self.batch_size
            return [shard[i * self.batch_size : (i + 1) * self.batch_size] for i in range(n)]
        per_shard = -(-self.num_windows // self.num_shards)
        n_batches = max(1, -(-per_shard // self.batch_size))
        if shortest < n_batches * self.min_batch:
            # A tiny epoch (or a batch of 1): split evenly, a shorter shard would be left a
            # batch short or with a batch below min_batch. Equal steps come first: every
            # shard keeps as many windows as fit n batches of min_batch..batch_size (the
            # windows left out are a random few of a shuffled epoch). The constructor made
            # sure that shortest >= min_batch.
            n_batches = shortest // self.min_batch
            shard = shard[: min(shortest, n_batches * self.batch_size)]
        return np.array_split(shard, n_batches)

    def __len__(self) -> int:
        return len(self._shard_batches())

    def shard_windows(self) -> int:
        """Windows this shard yields in the current epoch."""
        return sum(len(b) for b in self._shard_batches())

    def gather(self, window_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The windows with these ids: 2D (B, R, J, 2) and 3D targets (B, 1, J or 1, 3) or None."""
        flipped = window_ids >= self.num_frames
        base = np.where(flipped, window_ids - self.num_frames, window_ids)
        x = self._inputs[self._starts[base][:, None] + self._offsets]  # (B, R, J, 2)
        y = None if self._targets is None else self._targets[base][:, None]  # (B, 1, J, 3)
        if flipped.any():
            x[flipped] = mirror(x[flipped], self._flip_perm)
            if y is not None:
                y[flipped] = mirror(y[flipped], self._target_flip_perm)
        return x, y

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
        for ids in self._shard_batches():
            x, y = self.gather(ids)
            yield x, y, ids


class DeviceWindowSampler(WindowSampler):
    """WindowSampler whose batches are built where the model runs.

    The edge-padded sequences, the window starts and the targets live in tensors on
    `device` (copied there once); a batch is one indexing operation on the device and
    the flip is done there too, so a training step makes no host-to-device copy of
    its batch and runs no Python loop per window. The order of an epoch is the host
    sampler's own (the same NumPy generator seeded with (seed, epoch)), copied to the
    device once per epoch, so on the CPU it yields exactly WindowSampler's batches,
    as torch tensors. Yields (x (B, R, J, 2), y (B, 1, J, 3) or None, ids (B,) NumPy).
    """

    def __init__(self, *args, device="cpu", **kwargs):
        super().__init__(*args, **kwargs)
        self._move_to(device)

    @classmethod
    def from_host(cls, host: WindowSampler, device) -> "DeviceWindowSampler":
        """The device form of an existing host sampler (its arrays are moved, not rebuilt)."""
        sampler = cls.__new__(cls)
        sampler.__dict__.update(host.__dict__)
        sampler._move_to(device)
        return sampler

    def _move_to(self, device) -> None:
        self.device = torch.device(device)
        # On the CPU torch.from_numpy shares the arrays' memory: nothing is copied.
        self._inputs = torch.from_numpy(self._inputs).to(self.device)  # (P, J, 2)
        self._all_starts = torch.from_numpy(self._all_starts).to(self.device)  # (frames,)
        if self._all_targets is not None:
            self._all_targets = torch.from_numpy(self._all_targets).to(self.device)  # (frames, J, 3)
        self._select_phase()
        self._offsets = torch.from_numpy(self._offsets).to(self.device)  # (R,)
        self._flip_perm = torch.as_tensor(self._flip_perm, device=self.device)  # (J,)
        self._target_flip_perm = torch.as_tensor(self._target_flip_perm, device=self.device)  # (J,) or (1,)

    def gather(self, window_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Window ids (B,) on the device -> 2D (B, R, J, 2) and 3D targets (B, 1, J or 1, 3) or None."""
        flipped = window_ids >= self.num_frames  # (B,)
        base = window_ids - flipped.long() * self.num_frames
        x = self._inputs[self._starts[base][:, None] + self._offsets]  # (B, R, J, 2)
        y = None if self._targets is None else self._targets[base][:, None]  # (B, 1, J, 3)
        if self.augment:
            # torch.where instead of boolean indexing: no device-to-host sync on CUDA.
            x = torch.where(flipped[:, None, None, None], mirror(x, self._flip_perm), x)
            if y is not None:
                y = torch.where(flipped[:, None, None, None], mirror(y, self._target_flip_perm), y)
        return x, y

    def __iter__(self):
        batches = self._shard_batches()
        if not batches:
            return
        # One host-to-device copy per epoch: the shard's shuffled ids, sliced per batch.
        ids = torch.from_numpy(np.concatenate(batches)).to(self.device, non_blocking=True)
        first = 0
        for batch in batches:
            x, y = self.gather(ids[first : first + len(batch)])
            first += len(batch)
            yield x, y, batch


# Share of a GPU's free memory the training sequences may take on the device (the
# model, its activations and the optimizer need the rest). Human3.6M's training set
# is ~0.5 GB as float32.
DEVICE_DATA_SHARE = 0.25


def make_sampler(*args, device="cpu", storage: str = "auto", **kwargs) -> tuple[WindowSampler, str]:
    """A sampler whose batches are built on `device` when the data fits there, else on the host.

    `storage`: "auto", "device" or "host". Returns the sampler and one line saying
    which was chosen and why (for the training log). Host samplers yield NumPy
    batches that the caller copies to the device (`to_device`).
    """
    host = WindowSampler(*args, **kwargs)
    device = torch.device(device)
    size = host._inputs.nbytes + host._all_starts.nbytes + (0 if host._all_targets is None else host._all_targets.nbytes)
    if storage == "auto":
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            storage = "device" if size <= DEVICE_DATA_SHARE * free else "host"
            why = f"{size / 1e9:.2f} GB of sequences, {free / 1e9:.1f} GB free on {device}"
        else:
            storage, why = "device", f"{size / 1e9:.2f} GB of sequences"
    elif storage in ("device", "host"):
        why = f"{size / 1e9:.2f} GB of sequences, storage={storage} asked"
    else:
        raise RieError(f"batch storage must be auto, device or host, got '{storage}'")
    if storage == "host":
        return host, f"batches built on the host (NumPy) and copied to {device} per step ({why})"
    return DeviceWindowSampler.from_host(host, device), f"batches built on {device} ({why})"


def to_device(batch, device: torch.device) -> torch.Tensor | None:
    """A NumPy batch (host sampler) -> a tensor on `device`; tensors pass through.

    On CUDA the batch goes through pinned memory so that the copy is asynchronous.
    """
    if batch is None or isinstance(batch, torch.Tensor):
        return batch
    tensor = torch.from_numpy(batch)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
