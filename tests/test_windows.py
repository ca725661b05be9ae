"""The window sampler: edge padding, flip, causal shift, shuffling, sharding."""

import numpy as np
import pytest

from rie_cli.data.windows import WindowSampler
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17
from rie_cli.windowing import mirror

PERM = H36M_17.flip_permutation()


def _sequences(lengths, seed=0):
    rng = np.random.default_rng(seed)
    x2d = [rng.normal(size=(n, 17, 2)).astype(np.float32) for n in lengths]
    y3d = [rng.normal(size=(n, 17, 3)).astype(np.float32) for n in lengths]
    return x2d, y3d


def _reference_window(seq, t, rf, causal_shift=0):
    pad = (rf - 1) // 2
    padded = np.pad(seq, ((pad + causal_shift, pad - causal_shift), (0, 0), (0, 0)), mode="edge")
    return padded[t : t + rf]


def test_windows_edge_padded_in_order():
    x2d, y3d = _sequences([5, 12])
    s = WindowSampler(x2d, y3d, 9, batch_size=4, skeleton=H36M_17)
    assert s.num_windows == 17
    xs, ys, ids = zip(*s)
    x, y, ids = np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)
    np.testing.assert_array_equal(ids, np.arange(17))
    assert x.shape == (17, 9, 17, 2) and y.shape == (17, 1, 17, 3)
    for w in range(17):
        seq, t = (0, w) if w < 5 else (1, w - 5)
        np.testing.assert_array_equal(x[w], _reference_window(x2d[seq], t, 9))
        np.testing.assert_array_equal(y[w, 0], y3d[seq][t])
    # The first window of the short sequence repeats frame 0 for its left half.
    np.testing.assert_array_equal(x[0, :4], np.repeat(x2d[0][:1], 4, axis=0))


def test_causal_shift_windows_end_at_their_frame():
    x2d, y3d = _sequences([7])
    s = WindowSampler(x2d, y3d, 5, batch_size=100, skeleton=H36M_17, causal_shift=2)
    x, y, _ = next(iter(s))
    for t in range(7):
        np.testing.assert_array_equal(x[t, -1], x2d[0][t])  # last input frame is frame t
        np.testing.assert_array_equal(x[t], _reference_window(x2d[0], t, 5, causal_shift=2))


def test_flip_augmentation_mirrors_2d_and_3d():
    x2d, y3d = _sequences([6])
    s = WindowSampler(x2d, y3d, 3, batch_size=100, skeleton=H36M_17, augment=True)
    assert s.num_windows == 12
    x, y, ids = next(iter(s))
    plain, flipped = x[:6], x[6:]
    np.testing.assert_allclose(flipped, mirror(plain, PERM))
    np.testing.assert_allclose(y[6:], mirror(y[:6], PERM))
    # Left hip (4) of the flipped window is the mirrored right hip (1).
    np.testing.assert_allclose(flipped[0, 1, 4], plain[0, 1, 1] * np.array([-1, 1]))
    np.testing.assert_allclose(mirror(mirror(plain, PERM), PERM), plain)


def test_shuffle_depends_only_on_seed_and_epoch():
    x2d, y3d = _sequences([50, 30])
    a = WindowSampler(x2d, y3d, 9, 16, skeleton=H36M_17, shuffle=True, seed=7, augment=True)
    b = WindowSampler(x2d, y3d, 9, 16, skeleton=H36M_17, shuffle=True, seed=7, augment=True)
    order = lambda s: np.concatenate([ids for _, _, ids in s])
    a.set_epoch(3)
    b.set_epoch(3)
    np.testing.assert_array_equal(order(a), order(b))
    assert sorted(order(a)) == list(range(160))
    b.set_epoch(4)
    assert not np.array_equal(order(a), order(b))
    c = WindowSampler(x2d, y3d, 9, 16, skeleton=H36M_17, shuffle=True, seed=8, augment=True)
    c.set_epoch(3)
    assert not np.array_equal(order(a), order(c))
    assert not np.array_equal(order(a), np.arange(160))


def test_shards_cover_every_window_once_with_equal_step_counts():
    x2d, y3d = _sequences([41, 22])
    shards = [WindowSampler(x2d, y3d, 5, 10, skeleton=H36M_17, shuffle=True, augment=True,
                            num_shards=3, shard_index=i) for i in range(3)]
    seen = np.concatenate([ids for s in shards for _, _, ids in s])
    assert sorted(seen) == list(range(126))
    assert len({len(s) for s in shards}) == 1
    assert all(len(ids) <= 10 for s in shards for _, _, ids in s)


@pytest.mark.parametrize("lengths, shards, batch, augment, min_batch", [
    ([3], 2, 1, False, 1),  # one window more on shard 0: an even split left shard 1 a batch short
    ([1], 2, 4, False, 1),  # too few windows for two shards
    ([5], 2, 2, False, 2),  # shards of 3 and 2 windows: a batch of one on shard 1
    ([7, 2], 3, 2, True, 2),
    ([11], 4, 3, False, 2),
    ([41, 22], 3, 10, True, 2),
])
def test_every_shard_takes_the_same_number_of_steps(lengths, shards, batch, augment, min_batch):
    # DistributedDataParallel hangs when one rank takes a step the others do not.
    x2d, y3d = _sequences(lengths)
    kw = dict(skeleton=H36M_17, shuffle=True, augment=augment, min_batch=min_batch)
    windows = sum(lengths) * (2 if augment else 1)
    if windows // shards < min_batch:
        with pytest.raises(RieError, match=f"holds {windows} windows"):
            WindowSampler(x2d, y3d, 3, batch, num_shards=shards, shard_index=0, **kw)
        return
    samplers = [WindowSampler(x2d, y3d, 3, batch, num_shards=shards, shard_index=i, **kw) for i in range(shards)]
    sizes = [[len(ids) for _, _, ids in s] for s in samplers]
    assert len({len(s) for s in sizes}) == 1, sizes
    assert all(min_batch <= n <= batch for s in sizes for n in s), sizes
    seen = np.concatenate([ids for s in samplers for _, _, ids in s])
    assert len(np.unique(seen)) == len(seen) and len(seen) > windows - shards * min_batch
    assert [s.shard_windows() for s in samplers] == [sum(n) for n in sizes]


def test_a_stride_longer_than_every_sequence_is_refused():
    x2d, y3d = _sequences([4, 6])
    WindowSampler(x2d, y3d, 3, 8, skeleton=H36M_17, window_stride=6)  # phase 5: frame 5 of the second
    with pytest.raises(RieError, match="window stride 7 .longest sequence 6 frames. holds 0 windows"):
        WindowSampler(x2d, y3d, 3, 8, skeleton=H36M_17, window_stride=7)


def test_drop_last_gives_full_batches():
    x2d, y3d = _sequences([25])
    s = WindowSampler(x2d, y3d, 3, 10, skeleton=H36M_17, drop_last=True)
    assert [len(ids) for _, _, ids in s] == [10, 10]


def test_bad_arguments():
    x2d, y3d = _sequences([5])
    with pytest.raises(RieError, match="odd"):
        WindowSampler(x2d, y3d, 4, 8, skeleton=H36M_17)
    with pytest.raises(RieError, match="empty"):
        WindowSampler([], None, 3, 8, skeleton=H36M_17)
    with pytest.raises(RieError, match="3D frames"):
        WindowSampler(x2d, [y3d[0][:3]], 3, 8, skeleton=H36M_17)
