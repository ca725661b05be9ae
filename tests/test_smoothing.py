"""Temporal smoothing filters: what each must preserve, what each must remove."""

from __future__ import annotations

import numpy as np
import pytest

from rie_cli.errors import RieError
from rie_cli.smoothing import describe, smooth_poses


def _noisy_walk(frames=300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 50
    clean = np.stack([np.sin(2 * np.pi * 0.7 * t + k) for k in range(17 * 3)], -1).reshape(frames, 17, 3) * 0.1  # about 0.5 m/s
    return clean, clean + rng.normal(0, 0.01, clean.shape)


@pytest.mark.parametrize("window,order", [(9, 2), (9, 3), (15, 4), (5, 0)])
def test_savgol_preserves_polynomials_of_its_order_everywhere(window, order):
    t = np.linspace(-1, 2, 40)
    rng = np.random.default_rng(order)
    coeffs = rng.normal(size=(order + 1, 17, 3))
    poly = sum(c * t[:, None, None] ** k for k, c in enumerate(coeffs))  # (T, 17, 3)
    out = smooth_poses(poly, "savgol", window=window, order=order)
    np.testing.assert_allclose(out, poly, atol=1e-9)  # edges included


def test_savgol_matches_direct_least_squares_in_the_middle():
    x = np.random.default_rng(1).normal(size=(30, 2))
    out = smooth_poses(x, "savgol", window=7, order=2)
    frame = 12
    pos = np.arange(-3, 4)
    for c in range(2):
        fit = np.polyfit(pos, x[frame - 3:frame + 4, c], 2)
        assert out[frame, c] == pytest.approx(np.polyval(fit, 0))
    # at the start: the first window's polynomial evaluated at frame 1
    fit = np.polyfit(np.arange(7), x[:7, 0], 2)
    assert out[1, 0] == pytest.approx(np.polyval(fit, 1))


def test_filters_reduce_noise_and_keep_shape_and_dtype():
    clean, noisy = _noisy_walk()
    noisy32 = noisy.astype(np.float32)
    for method in ("savgol", "oneeuro"):
        out = smooth_poses(noisy32, method)
        assert out.shape == noisy.shape and out.dtype == np.float32
        jitter_before = np.abs(np.diff(noisy, 2, axis=0)).mean()
        jitter_after = np.abs(np.diff(out, 2, axis=0)).mean()
        assert jitter_after < 0.7 * jitter_before, method
        assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean(), method


def test_trajectory_shape_and_short_sequences():
    traj = np.cumsum(np.random.default_rng(2).normal(size=(5, 3)), axis=0)
    out = smooth_poses(traj, "savgol", window=9, order=2)  # window shrinks to 5
    assert out.shape == (5, 3)
    np.testing.assert_allclose(smooth_poses(traj[:2], "savgol"), traj[:2])  # window 1: unchanged
    np.testing.assert_allclose(smooth_poses(traj[:1], "oneeuro"), traj[:1])
    np.testing.assert_allclose(smooth_poses(traj, "none"), traj)


def test_one_euro_constant_and_ramp():
    const = np.full((100, 17, 3), 0.7)
    np.testing.assert_allclose(smooth_poses(const, "oneeuro"), const)
    ramp = np.linspace(0, 2, 200)[:, None, None] * np.ones((1, 17, 3))  # 0.5 m/s at 50 fps
    out = smooth_poses(ramp, "oneeuro", beta=0.0)
    lag = (ramp - out)[100:].mean()
    assert 0 < lag < 0.2  # a causal low-pass lags a ramp by a constant amount ...
    fast = smooth_poses(ramp, "oneeuro", beta=5.0)
    assert (ramp - fast)[100:].mean() < lag / 2  # ... which speed-dependent cutoff shrinks
    assert np.all(np.diff(out[:, 0, 0]) >= 0)  # and never overshoots backwards


def test_one_euro_is_causal():
    _, noisy = _noisy_walk(100)
    changed = noisy.copy()
    changed[60:] += 1.0
    np.testing.assert_array_equal(smooth_poses(noisy, "oneeuro")[:60], smooth_poses(changed, "oneeuro")[:60])


def test_bad_parameters_are_rie_errors():
    x = np.zeros((20, 17, 3))
    with pytest.raises(RieError, match="unknown smoothing"):
        smooth_poses(x, "kalman")
    with pytest.raises(RieError, match="no parameter"):
        smooth_poses(x, "savgol", beta=1.0)
    with pytest.raises(RieError, match="odd"):
        smooth_poses(x, "savgol", window=8)
    with pytest.raises(RieError, match="order"):
        smooth_poses(x, "savgol", window=5, order=5)
    with pytest.raises(RieError, match="positive"):
        smooth_poses(x, "oneeuro", fps=0)


def test_describe():
    assert describe("none") == "none"
    assert describe("savgol", window=11) == "savgol (window 11, order 2)"


def test_smoothing_object_takes_the_data_frame_rate():
    from rie_cli.smoothing import Smoothing

    _, noisy = _noisy_walk(120)
    filt = Smoothing("oneeuro", {"beta": 5.0, "min_cutoff": None})
    np.testing.assert_allclose(filt.apply(noisy, fps=25), smooth_poses(noisy, "oneeuro", beta=5.0, fps=25))
    assert "fps 25" in filt.describe(25)
    assert not Smoothing().active and Smoothing("savgol").active
    with pytest.raises(RieError, match="no parameter"):
        Smoothing("savgol", {"beta": 1.0})
