"""Batches built on the training device: the same batches as the host sampler, as tensors."""

import numpy as np
import pytest
import torch

from rie_cli.data.windows import DeviceWindowSampler, WindowSampler, make_sampler, to_device
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17


def _sequences(lengths, seed=0):
    rng = np.random.default_rng(seed)
    x2d = [rng.normal(size=(n, 17, 2)).astype(np.float32) for n in lengths]
    y3d = [rng.normal(size=(n, 17, 3)).astype(np.float32) for n in lengths]
    return x2d, y3d


@pytest.mark.parametrize("kwargs", [
    dict(shuffle=True, augment=True, seed=7),
    dict(shuffle=True, augment=True, seed=7, num_shards=3, shard_index=1),
    dict(shuffle=False, augment=False, causal_shift=4),
    dict(shuffle=True, augment=True, seed=1, drop_last=True),
])
def test_same_seed_same_batches_as_the_host_sampler(kwargs):
    x2d, y3d = _sequences([50, 9, 31])
    host = WindowSampler(x2d, y3d, 9, 16, skeleton=H36M_17, **kwargs)
    device = DeviceWindowSampler(x2d, y3d, 9, 16, skeleton=H36M_17, device="cpu", **kwargs)
    for epoch in (0, 5):
        host.set_epoch(epoch)
        device.set_epoch(epoch)
        batches = list(device)
        assert len(batches) == len(host)
        for (hx, hy, hids), (dx, dy, dids) in zip(host, batches):
            assert isinstance(dx, torch.Tensor) and dx.device.type == "cpu" and dx.dtype == torch.float32
            np.testing.assert_array_equal(dids, hids)
            np.testing.assert_array_equal(dx.numpy(), hx)  # bit for bit, flips included
            np.testing.assert_array_equal(dy.numpy(), hy)


def test_flipped_windows_are_mirrored_on_the_device():
    x2d, y3d = _sequences([6])
    s = DeviceWindowSampler(x2d, y3d, 3, 100, skeleton=H36M_17, augment=True, device="cpu")
    x, y, ids = next(iter(s))
    np.testing.assert_array_equal(ids, np.arange(12))
    # Left hip (4) of a flipped window is the right hip (1) of the plain one, x negated.
    np.testing.assert_array_equal(x[6:, :, 4].numpy(), x[:6, :, 1].numpy() * np.array([-1, 1], np.float32))
    np.testing.assert_array_equal(y[6:, 0, 4].numpy(), y[:6, 0, 1].numpy() * np.array([-1, 1, 1], np.float32))


def test_without_targets():
    x2d, _ = _sequences([10])
    x, y, _ = next(iter(DeviceWindowSampler(x2d, None, 3, 4, skeleton=H36M_17, device="cpu")))
    assert x.shape == (4, 3, 17, 2) and y is None


def test_make_sampler_chooses_and_says_why():
    x2d, y3d = _sequences([20])
    sampler, why = make_sampler(x2d, y3d, 3, 8, skeleton=H36M_17, device=torch.device("cpu"))
    assert isinstance(sampler, DeviceWindowSampler) and why.startswith("batches built on cpu")
    sampler, why = make_sampler(x2d, y3d, 3, 8, skeleton=H36M_17, device="cpu", storage="host")
    assert type(sampler) is WindowSampler and "host" in why
    with pytest.raises(RieError, match="auto, device or host"):
        make_sampler(x2d, y3d, 3, 8, skeleton=H36M_17, storage="disk")
    # Host batches are copied to the device by the trainer; device batches pass through.
    x, _, _ = next(iter(sampler))
    assert isinstance(to_device(x, torch.device("cpu")), torch.Tensor)
    t = torch.zeros(2)
    assert to_device(t, torch.device("cpu")) is t and to_device(None, torch.device("cpu")) is None


def test_trajectory_targets_mirror_their_x_only():
    x2d, y3d = _sequences([12])
    roots = [y[:, :1] for y in y3d]  # (N, 1, 3): a trajectory model's targets
    host = WindowSampler(x2d, roots, 3, 8, skeleton=H36M_17, shuffle=True, augment=True)
    device = DeviceWindowSampler(x2d, roots, 3, 8, skeleton=H36M_17, shuffle=True, augment=True, device="cpu")
    for (_, hy, _), (_, dy, _) in zip(host, device):
        assert dy.shape[2] == 1
        np.testing.assert_array_equal(dy.numpy(), hy)


def test_window_stride_takes_another_share_of_full_rate_windows_each_epoch():
    x2d, y3d = _sequences([10, 7])
    kw = dict(skeleton=H36M_17, shuffle=True, augment=False, seed=2, window_stride=3)
    host = WindowSampler(x2d, y3d, 5, 4, **kw)
    device = DeviceWindowSampler(x2d, y3d, 5, 4, device="cpu", **kw)
    seen = []
    for epoch in range(3):
        host.set_epoch(epoch)
        device.set_epoch(epoch)
        ys = [hy for _, hy, _ in host]
        for (hx, hy, _), (dx, dy, _) in zip(host, device):
            np.testing.assert_array_equal(dx.numpy(), hx)
            np.testing.assert_array_equal(dy.numpy(), hy)
        targets = np.concatenate(ys)[:, 0]
        # This epoch's targets: the frames whose index in their sequence is epoch mod 3.
        expected = [y[t] for y in y3d for t in range(len(y)) if t % 3 == epoch]
        assert host.num_windows == len(expected) == len(targets)
        assert sorted(map(bytes, targets)) == sorted(map(bytes, expected))
        seen.extend(map(bytes, targets))
        # Windows stay at the full frame rate: consecutive input frames of the sequence.
        x, _, _ = next(iter(WindowSampler(x2d, y3d, 5, 100, skeleton=H36M_17, window_stride=3)))
        np.testing.assert_array_equal(x[1], x2d[0][1:6])  # frame 3's window: frames 1..5
    assert sorted(seen) == sorted(bytes(y[t]) for y in y3d for t in range(len(y)))  # all frames over 3 epochs
    with pytest.raises(RieError, match="window stride"):
        WindowSampler(x2d, y3d, 5, 4, skeleton=H36M_17, window_stride=0)
