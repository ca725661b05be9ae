"""Training windows seen through virtual cameras (`rie train --virtual-cameras`).

`VirtualCameraSampler` is a `DeviceWindowSampler` that also holds every training
sequence's 3D in world coordinates, padded and concatenated exactly like its 2D, so
that a window's 3D is gathered with the same indices. Each batch, on the training
device and without a loop over windows:

1. the windows' world 3D (B, R, J, 3) is gathered;
2. one camera per window is drawn (`virtual_cameras.sample_cameras`), aimed at the
   root of the window's reference frame, far enough for the whole window to fit;
3. the window is projected through it (pixels, then the camera's own normalised
   screen coordinates), with optional detector-like jitter;
4. the target follows the camera: the reference frame's root-relative pose in the
   new camera's space, or for a trajectory model its camera-space root;
5. a share (`CameraDistribution.share`) of the windows takes these, the rest keep the
   dataset's 2D and targets; the flip augmentation then applies to both alike.

The camera draws come from a torch generator on the device seeded with (seed, epoch,
shard), so an epoch's cameras depend only on those: a resumed run, or the same
epoch iterated twice, sees the same cameras.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from rie_cli.cameras import camera_to_world
from rie_cli.data.dataset import WorldSequence
from rie_cli.data.virtual_cameras import CameraDistribution, VirtualCameras, detector_noise, sample_cameras
from rie_cli.data.windows import DeviceWindowSampler, WindowSampler, _padded_windows
from rie_cli.errors import RieError
from rie_cli.windowing import mirror, shifted_padding


class VirtualCameraSampler(DeviceWindowSampler):
    """DeviceWindowSampler whose windows are (a share of them) re-projected through random cameras.

    `world_3d`: one (N, J, 3) world-frame sequence (metres, z up) per 2D sequence,
    frame for frame. `inputs_2d` may be None (3D-only data): every window then gets a
    virtual camera whatever `distribution.share` says. `target`: "pose" (root-relative
    (N, J, 3) targets) or "trajectory" (camera-space roots (N, 1, 3)).
    """

    def __init__(self, inputs_2d, targets_3d, receptive_field, batch_size, *, world_3d, distribution,
                 target="pose", device="cpu", **kwargs):
        if not world_3d:
            raise RieError("no sequences to draw windows from (empty selection)")
        if target not in ("pose", "trajectory"):
            raise RieError(f"unknown training target '{target}'")
        if inputs_2d is None:
            # The real 2D is never shown (every window is virtual); the sampler's 2D
            # layout is what the world windows are indexed by, so the x, y of the 3D stand in.
            inputs_2d = [np.asarray(w)[..., :2] for w in world_3d]
            targets_3d = [np.asarray(w)[..., :1, :] if target == "trajectory" else np.asarray(w) for w in world_3d]
            distribution = _all_virtual(distribution)
        if len(world_3d) != len(inputs_2d) or any(len(w) != len(x) for w, x in zip(world_3d, inputs_2d)):
            raise RieError("world 3D and 2D inputs differ in sequences or frames")
        WindowSampler.__init__(self, inputs_2d, targets_3d, receptive_field, batch_size, **kwargs)
        before, after = shifted_padding(receptive_field, kwargs.get("causal_shift", 0))
        self._world = _padded_windows(world_3d, receptive_field, before, after)[0]  # (P, J, 3)
        self.reference_frame = before  # the window's frame whose pose is the target
        self.distribution = distribution
        self.target = target
        self._move_to(device)

    def _move_to(self, device) -> None:
        super()._move_to(device)
        self._world = torch.as_tensor(self._world).to(self.device)
        self._generator = torch.Generator(device=self.device)

    def _seed_epoch(self) -> None:
        key = f"virtual-cameras:{self.seed}:{self.epoch}:{self.shard_index}".encode()
        self._generator.manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1)

    def __iter__(self):
        self._seed_epoch()  # the epoch's cameras, whenever it is iterated
        yield from super().__iter__()

    def gather(self, window_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Window ids (B,) on the device -> 2D (B, R, J, 2), targets (B, 1, J or 1, 3)."""
        flipped = window_ids >= self.num_frames
        base = window_ids - flipped.long() * self.num_frames
        rows = self._starts[base][:, None] + self._offsets  # (B, R)
        x = self._inputs[rows]
        y = self._targets[base][:, None]
        x_virtual, y_virtual, _ = self.project(self._world[rows])
        use = torch.rand(len(base), generator=self._generator, device=self.device) < self.distribution.share
        x = torch.where(use[:, None, None, None], x_virtual, x)
        y = torch.where(use[:, None, None, None], y_virtual, y)
        if self.augment:
            x = torch.where(flipped[:, None, None, None], mirror(x, self._flip_perm), x)
            y = torch.where(flipped[:, None, None, None], mirror(y, self._target_flip_perm), y)
        return x, y

    def project(self, world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, VirtualCameras]:
        """World windows (B, R, J, 3) -> normalised 2D (B, R, J, 2) in fresh cameras, the
        targets in those cameras ((B, 1, J, 3) root-relative, or (B, 1, 1, 3) roots), and the cameras."""
        root = world[:, self.reference_frame, 0]  # (B, 3)
        extent = torch.linalg.vector_norm(world - root[:, None, None], dim=-1).flatten(1).amax(1)  # (B,)
        cameras = sample_cameras(self.distribution, root, extent, self._generator)
        cam = cameras.to_camera_space(world)  # (B, R, J, 3)
        pixels = cameras.to_pixels(cam)
        if self.distribution.noise > 0:
            pixels = detector_noise(pixels, 2 * extent * cameras.focal / cam[:, self.reference_frame, 0, 2],
                                    self.distribution.noise, self._generator)
        reference = cam[:, self.reference_frame]  # (B, J, 3)
        if self.target == "trajectory":
            y = reference[:, None, :1]
        else:
            y = (reference - reference[:, :1])[:, None]
        return cameras.normalize(pixels).to(self._inputs.dtype), y.to(self._inputs.dtype), cameras


def _all_virtual(distribution: CameraDistribution) -> CameraDistribution:
    from dataclasses import replace

    return distribution if distribution.share == 1.0 else replace(distribution, share=1.0)


def world_sequences(sequences) -> list[np.ndarray]:
    """The world-frame 3D (N, J, 3) of dataset `Sequence`s (root-relative camera-space poses
    plus their root, through the camera's extrinsics), frame for frame with their 2D;
    a `WorldSequence` (a file of 3D alone) gives its own."""
    out = []
    for seq in sequences:
        if isinstance(seq, WorldSequence):
            out.append(seq.world.astype(np.float32))
            continue
        if seq.positions_3d is None or seq.trajectory is None or not seq.camera.has_extrinsics:
            raise RieError(f"{seq.subject}/{seq.action} camera {seq.camera_index}: --virtual-cameras needs the "
                           "3D and the camera's extrinsics (to place the poses in the world)")
        absolute = seq.positions_3d + seq.trajectory[:, None, :]
        out.append(camera_to_world(absolute, seq.camera).astype(np.float32))
    return out


def virtual_sampler(sequences, inputs_2d, targets_3d, receptive_field, batch_size, *, distribution, target,
                    device="cpu", storage: str = "device", **kwargs) -> tuple[VirtualCameraSampler, str]:
    """`make_sampler`'s counterpart for `--virtual-cameras`: the training sampler of these
    dataset `sequences` (their 2D and targets as `make_sampler` takes them), and its log
    line. Always built on the training device: the projection runs there."""
    sampler = VirtualCameraSampler(inputs_2d, targets_3d, receptive_field, batch_size,
                                   world_3d=world_sequences(sequences), distribution=distribution, target=target,
                                   device=device, **kwargs)
    size = sum(t.nbytes for t in (sampler._inputs, sampler._world, sampler._all_targets))
    d = distribution
    return sampler, (f"batches built on {sampler.device} ({size / 1e9:.2f} GB of sequences); virtual cameras for "
                     f"{d.share:.0%} of the windows (elevation {d.elevation[0]:g} to {d.elevation[1]:g} deg, "
                     f"{d.distance[0]:g}-{d.distance[1]:g} m, {d.focal_length[0]:g}-{d.focal_length[1]:g} mm)")
