"""The metric functions against straightforward per-frame NumPy reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rie_cli import metrics

RNG = np.random.default_rng(20260124)


# --- reference implementations: one frame at a time, textbook formulas -------------------


def ref_mpjpe(pred, target):
    out = np.zeros(len(pred))
    for f in range(len(pred)):
        dists = [np.sqrt(sum((pred[f, j, c] - target[f, j, c]) ** 2 for c in range(3))) for j in range(pred.shape[1])]
        out[f] = np.mean(dists)
    return out


def ref_n_mpjpe(pred, target):
    out = np.zeros(len(pred))
    for f in range(len(pred)):
        scale = np.sum(pred[f] * target[f]) / np.sum(pred[f] * pred[f])
        out[f] = ref_mpjpe(scale * pred[f : f + 1], target[f : f + 1])[0]
    return out


def ref_mpjve(pred, target):
    out = np.zeros(len(pred) - 1)
    for f in range(1, len(pred)):
        out[f - 1] = ref_mpjpe((pred[f] - pred[f - 1])[None], (target[f] - target[f - 1])[None])[0]
    return out


def umeyama(source, target, allow_reflection=False):
    """Umeyama (1991) in column-vector form: c, R, t minimising sum |target - (c R source + t)|^2.

    source, target: (3, n). Returns the aligned source (3, n).
    """
    n = source.shape[1]
    mu_s = source.mean(axis=1, keepdims=True)
    mu_t = target.mean(axis=1, keepdims=True)
    s0, t0 = source - mu_s, target - mu_t
    sigma = t0 @ s0.T / n  # covariance of target and source
    u, d, vt = np.linalg.svd(sigma)
    fix = np.eye(3)
    if not allow_reflection and np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[2, 2] = -1
    rotation = u @ fix @ vt
    var_s = (s0**2).sum() / n
    c = np.trace(np.diag(d) @ fix) / var_s
    t = mu_t - c * rotation @ mu_s
    return c * rotation @ source + t


def ref_p_mpjpe(pred, target, allow_reflection=False):
    out = np.zeros(len(pred))
    for f in range(len(pred)):
        aligned = umeyama(pred[f].T, target[f].T, allow_reflection).T
        out[f] = ref_mpjpe(aligned[None], target[f : f + 1])[0]
    return out


def random_poses(frames=20, joints=17):
    target = RNG.normal(size=(frames, joints, 3))
    pred = target + 0.3 * RNG.normal(size=(frames, joints, 3))
    return pred, target


def random_rotation():
    q, r = np.linalg.qr(RNG.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


# --- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, ref",
    [(metrics.mpjpe, ref_mpjpe), (metrics.n_mpjpe, ref_n_mpjpe), (metrics.mpjve, ref_mpjve),
     (metrics.p_mpjpe, ref_p_mpjpe)],
)
def test_metric_matches_reference_on_random_poses(fn, ref):
    pred, target = random_poses()
    got = fn(pred, target)
    np.testing.assert_allclose(got, ref(pred, target), rtol=1e-9, atol=1e-12)
    assert got.shape == (len(pred) - (1 if fn is metrics.mpjve else 0),)


@pytest.mark.parametrize("fn", [metrics.mpjpe, metrics.n_mpjpe, metrics.mpjve, metrics.p_mpjpe])
def test_torch_inputs_give_the_numpy_numbers(fn):
    pred, target = random_poses(frames=8)
    expected = fn(pred, target)
    got = fn(torch.from_numpy(pred), torch.from_numpy(target))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def test_p_mpjpe_removes_a_similarity_transform():
    _, target = random_poses(frames=5)
    pred = np.stack([0.7 * target[f] @ random_rotation().T + RNG.normal(size=3) for f in range(5)])
    assert metrics.mpjpe(pred, target).min() > 0.1
    np.testing.assert_allclose(metrics.p_mpjpe(pred, target), 0, atol=1e-9)


def test_p_mpjpe_never_aligns_by_a_reflection():
    """A mirrored pose is fitted perfectly only by a reflection, which P2 must not use."""
    _, target = random_poses(frames=6)
    mirror = np.diag([-1.0, 1.0, 1.0])
    pred = np.stack([target[f] @ mirror @ random_rotation().T for f in range(6)])
    # With reflections allowed the fit would be exact...
    np.testing.assert_allclose(ref_p_mpjpe(pred, target, allow_reflection=True), 0, atol=1e-9)
    # ...without them it is not, and the error is the proper-rotation optimum.
    got = metrics.p_mpjpe(pred, target)
    assert got.min() > 0.05
    np.testing.assert_allclose(got, ref_p_mpjpe(pred, target), rtol=1e-9)


def test_p_mpjpe_alignment_is_the_least_squares_optimum():
    """Procrustes minimises the squared distances (not their mean): no nearby transform does better."""
    pred, target = random_poses(frames=1)
    aligned = umeyama(pred[0].T, target[0].T).T
    np.testing.assert_allclose(metrics.p_mpjpe(pred, target)[0], metrics.mpjpe(aligned[None], target)[0], rtol=1e-9)
    best = ((aligned - target[0]) ** 2).sum()
    for _ in range(50):
        # A small rotation about a random axis (orthonormalised), a small scale and shift.
        axis = RNG.normal(size=3) * 0.05
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        u, _, vt = np.linalg.svd(np.eye(3) + k + k @ k / 2)
        small = u @ vt
        centre = aligned.mean(axis=0)
        moved = (aligned - centre) @ small.T * (1 + 0.05 * RNG.normal()) + centre + 0.01 * RNG.normal(size=3)
        assert ((moved - target[0]) ** 2).sum() >= best - 1e-12


def test_n_mpjpe_removes_scale_only():
    _, target = random_poses(frames=4)
    np.testing.assert_allclose(metrics.n_mpjpe(1.7 * target, target), 0, atol=1e-12)
    rotated = target @ random_rotation().T
    assert metrics.n_mpjpe(rotated, target).min() > 0.1


def test_mpjve_ignores_a_constant_offset():
    pred, target = random_poses(frames=10)
    np.testing.assert_allclose(metrics.mpjve(target + np.array([0.1, -0.2, 0.3]), target), 0, atol=1e-12)
    assert metrics.mpjve(pred, target).min() > 0


def test_float32_input_keeps_float32_precision_class():
    pred, target = random_poses(frames=3)
    got = metrics.p_mpjpe(pred.astype(np.float32), target.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref_p_mpjpe(pred, target), rtol=1e-5)


def test_torch_mpjpe_is_differentiable():
    pred, target = random_poses(frames=3)
    p = torch.tensor(pred, requires_grad=True)
    metrics.mpjpe(p, torch.from_numpy(target)).mean().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


def test_shape_mismatch_is_refused():
    pred, target = random_poses(frames=3)
    with pytest.raises(ValueError):
        metrics.mpjpe(pred, target[:2])
    with pytest.raises(ValueError):
        metrics.p_mpjpe(pred[..., :2], target[..., :2])


def test_n_mpjpe_of_an_all_zero_frame_is_the_targets_size():
    # The best scale of a zero prediction is undefined (0 / 0): any scale leaves it zero,
    # so its error is the mean distance of the target's joints from the origin.
    target = RNG.normal(size=(3, 17, 3))
    pred = target * 0.9
    pred[1] = 0.0
    errors = metrics.n_mpjpe(pred, target)
    assert np.isfinite(errors).all()
    assert errors[1] == pytest.approx(np.linalg.norm(target[1], axis=-1).mean())
    np.testing.assert_allclose(errors[[0, 2]], 0, atol=1e-12)
    torch_errors = metrics.n_mpjpe(torch.from_numpy(pred), torch.from_numpy(target))
    np.testing.assert_allclose(torch_errors.numpy(), errors, rtol=1e-12)


def test_p_mpjpe_of_a_non_finite_frame_is_nan_not_a_crash():
    target = RNG.normal(size=(3, 17, 3))
    pred = target.copy()
    pred[1, 4] = np.nan
    pred[2, 0] = np.inf
    errors = metrics.p_mpjpe(pred, target)  # numpy's SVD raised "did not converge" here
    assert errors[0] == pytest.approx(0, abs=1e-9) and np.isnan(errors[1:]).all()
