"""rie_cli.windowing: the one definition of windows, edge padding and the mirror, in its
NumPy and torch forms, and its export-traceable torch form inside a `torch.export` graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17, HUMANEVA_15
from rie_cli.windowing import (
    causal_shift,
    clamp_to_sequence,
    mirror,
    pad_edges,
    shifted_padding,
    window_indices,
    window_offsets,
    window_padding,
)


def test_padding_and_offsets():
    assert window_padding(9, causal=False) == (4, 4)
    assert window_padding(9, causal=True) == (8, 0)  # VideoPose3D's causal_shift = pad
    assert causal_shift(9, True) == 4 and causal_shift(9, False) == 0
    assert shifted_padding(9, 2) == (6, 2)
    assert window_offsets(5).tolist() == [-2, -1, 0, 1, 2]
    assert window_offsets(5, causal=True).tolist() == [-4, -3, -2, -1, 0]
    assert window_offsets(5, shift=1).tolist() == [-3, -2, -1, 0, 1]
    with pytest.raises(RieError, match="positive odd"):
        window_padding(4, False)
    with pytest.raises(RieError, match="causal shift"):
        shifted_padding(5, 3)


def test_window_indices_are_edge_padding():
    frames = np.array([0, 4, 9])
    assert window_indices(frames, 10, 5).tolist() == [[0, 0, 0, 1, 2], [2, 3, 4, 5, 6], [7, 8, 9, 9, 9]]
    assert window_indices(frames, 10, 5, causal=True).tolist() == [[0] * 5, [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    # Sequences stored end to end: per-frame lengths and first rows keep windows inside their own.
    per_frame = window_indices(np.array([0, 2]), np.array([3, 4]), 5, first_frame=np.array([10, 20]))
    assert per_frame.tolist() == [[10, 10, 10, 11, 12], [20, 21, 22, 23, 23]]


@pytest.mark.parametrize("causal", [False, True])
def test_numpy_and_torch_forms_agree(causal):
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(7, 17, 2)).astype(np.float32)
    frames = np.arange(7)
    index_np = window_indices(frames, 7, 9, causal)
    index_t = window_indices(torch.from_numpy(frames), 7, 9, causal)
    assert isinstance(index_np, np.ndarray) and isinstance(index_t, torch.Tensor)
    np.testing.assert_array_equal(index_np, index_t.numpy())
    perm = H36M_17.flip_permutation()
    np.testing.assert_array_equal(mirror(seq, perm), mirror(torch.from_numpy(seq), torch.from_numpy(perm)).numpy())
    before, after = window_padding(9, causal)
    np.testing.assert_array_equal(pad_edges(seq, before, after), pad_edges(torch.from_numpy(seq), before, after).numpy())
    np.testing.assert_array_equal(clamp_to_sequence(np.array([[-3, 2, 9]]), 7), [[0, 2, 6]])


@pytest.mark.parametrize("causal", [False, True])
def test_gathering_equals_padding_then_slicing(causal):
    # The two uses of the edge rule (index gathering, explicit padding) give the same windows,
    # and padding equals np.pad's 'edge' mode.
    seq = np.random.default_rng(1).normal(size=(6, 15, 3)).astype(np.float32)
    before, after = window_padding(11, causal)
    padded = pad_edges(seq, before, after)
    np.testing.assert_array_equal(padded, np.pad(seq, ((before, after), (0, 0), (0, 0)), mode="edge"))
    gathered = seq[window_indices(np.arange(6), 6, 11, causal)]  # (T, R, J, 3)
    sliced = np.stack([padded[t : t + 11] for t in range(6)])
    np.testing.assert_array_equal(gathered, sliced)


def test_mirror_negates_x_and_swaps_sides():
    pose = np.random.default_rng(2).normal(size=(4, 15, 3)).astype(np.float32)
    perm = HUMANEVA_15.flip_permutation()
    flipped = mirror(pose, perm)
    left, right = HUMANEVA_15.joints_left[0], HUMANEVA_15.joints_right[0]
    np.testing.assert_array_equal(flipped[:, left], pose[:, right] * np.array([-1, 1, 1], np.float32))
    np.testing.assert_array_equal(mirror(flipped, perm), pose)
    assert not np.shares_memory(flipped, pose)
    read_only = pose.copy()
    read_only.flags.writeable = False
    np.testing.assert_array_equal(mirror(read_only, perm), flipped)


class _Windows(torch.nn.Module):
    """The export-traceable form: windows of every frame and their mirror, in one graph."""

    def __init__(self, receptive_field: int, causal: bool):
        super().__init__()
        self.receptive_field, self.causal = receptive_field, causal
        self.register_buffer("perm", torch.as_tensor(H36M_17.flip_permutation()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, J, 2) -> (2, T, R, J, 2)
        index = window_indices(torch.arange(x.shape[0]), x.shape[0], self.receptive_field, self.causal)
        windows = x[index]
        return torch.stack((windows, mirror(windows, self.perm)))


@pytest.mark.parametrize("causal", [False, True])
def test_exported_form_agrees_with_numpy(causal):
    from torch.export import Dim

    rf = 5
    module = _Windows(rf, causal)
    example = torch.zeros(8, 17, 2)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: Dim("frames", min=1, max=4096)},))
    for frames in (1, 3, 12):  # other lengths than the example's, shorter and longer than R
        x = np.random.default_rng(frames).normal(size=(frames, 17, 2)).astype(np.float32)
        got = program.module()(torch.from_numpy(x)).numpy()
        windows = x[window_indices(np.arange(frames), frames, rf, causal)]
        np.testing.assert_array_equal(got[0], windows)
        np.testing.assert_array_equal(got[1], mirror(windows, H36M_17.flip_permutation()))
