"""World-motion metrics (rie_cli.world_metrics) on hand-made motion with known answers, and
in `evaluate_predictions` on real data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rie_cli import world_metrics as wm
from rie_cli.skeleton import H36M_17

FEET = [3, 6]  # Human3.6M-17 ankles


def standing(frames: int = 120) -> np.ndarray:
    """A still body (T, 17, 3), z up: a fixed random pose with its ankles at 0.08 m."""
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, (17, 3))
    pose[:, 2] = np.abs(pose[:, 2]) + 0.5
    pose[FEET, 2] = 0.08
    return np.repeat(pose[None], frames, axis=0)


def rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_similarity_aligned_errors_vanish_for_a_similar_copy():
    true = standing() + np.linspace(0, 2, 120)[:, None, None] * np.array([1.0, 0, 0])
    pred = 1.3 * true @ rotation_z(0.7).T + np.array([4.0, -2.0, 1.0])
    sums = wm.sequence_sums(pred, true, fps=50, skeleton=H36M_17).means()
    assert sums["w_mpjpe100"] == pytest.approx(0, abs=1e-6)
    assert sums["wa_mpjpe100"] == pytest.approx(0, abs=1e-6)


def test_w_mpjpe_sees_drift_that_wa_mpjpe_forgives_less():
    """A prediction drifting 1 cm per frame: aligned on the first two frames the error
    grows along each 100-frame chunk; aligned on the whole chunk it is smaller."""
    true = standing(200)
    pred = true + np.arange(200)[:, None, None] * np.array([0.01, 0, 0])
    w = wm.aligned_chunk_errors(pred, true, first_two=True)
    wa = wm.aligned_chunk_errors(pred, true, first_two=False)
    assert w[99] > w[50] > w[2] and w[100] < w[99]  # the second chunk starts afresh
    assert wa.mean() < w.mean()


def test_rte_of_a_root_moving_twice_as_fast():
    """True root 1 cm per frame along x over 100 steps, predicted 2 cm: after the best
    rigid alignment the error at step k is |k - 50| cm; mean 25.25 cm over a 1 m path."""
    k = np.arange(101)[:, None]
    true_root = k * np.array([0.01, 0, 0])
    pred_root = 2 * true_root @ rotation_z(1.0).T + 3.0  # turned and moved: the alignment undoes that
    rte = wm.root_translation_errors(pred_root, true_root)
    assert rte.mean() * 100 == pytest.approx(2550 / 101, rel=1e-6)
    assert wm.root_translation_errors(pred_root[:20], true_root[:20]) is None  # 19 cm: too short


def test_jitter_and_acceleration_error_of_constant_acceleration_and_a_cubic():
    fps, t = 50.0, np.arange(100) / 50.0
    true = standing(100)
    accelerating = true + (0.5 * 3.0 * t ** 2)[:, None, None] * np.array([1.0, 0, 0])  # 3 m/s² root
    assert wm.jitter(accelerating, fps).max() == pytest.approx(0, abs=1e-6)
    # The whole body accelerates alike: root-relative, nothing changes.
    assert wm.acceleration_errors(accelerating, true, fps).max() == pytest.approx(0, abs=1e-6)
    # One hand (joint 13) accelerating at 3 m/s² against a still truth: error 3/17 m/s² per frame.
    hand = true.copy()
    hand[:, 13] += (0.5 * 3.0 * t ** 2)[:, None] * np.array([0, 1.0, 0])
    assert wm.acceleration_errors(hand, true, fps) == pytest.approx(np.full(98, 3.0 / 17), rel=1e-6)
    # x = c t³ for every joint: third derivative 6c everywhere; jitter reported in 10 m/s³.
    cubic = true + (2.0 * t ** 3)[:, None, None] * np.array([0, 0, 1.0])
    assert wm.jitter(cubic, fps) == pytest.approx(np.full(97, 12.0), rel=1e-6)
    assert wm.sequence_sums(cubic, true, fps=fps, skeleton=H36M_17).means()["jitter"] == pytest.approx(1.2)


def test_a_foot_that_slides_one_centimetre_per_frame():
    true = standing()
    pred = true.copy()
    pred[:, 3] += np.arange(120)[:, None] * np.array([0.01, 0, 0])  # the right ankle slides 1 cm / frame
    means = wm.sequence_sums(pred, true, fps=30, skeleton=H36M_17).means()
    assert means["foot_sliding"] == pytest.approx(5.0)  # mm: (10 + 0) / 2 over both planted feet
    both = true + np.arange(120)[:, None, None] * np.array([0.01, 0, 0])  # the whole body slides
    assert wm.sequence_sums(both, true, fps=30, skeleton=H36M_17).means()["foot_sliding"] == pytest.approx(10.0)


def test_contact_threshold_scales_with_the_frame_rate():
    assert wm.contact_step(30) == pytest.approx(0.01)
    assert wm.contact_step(50) == pytest.approx(0.006)
    # A true foot moving 8 mm per frame is planted at 30 fps (0.24 m/s) but not at 50 fps (0.4 m/s).
    true = standing()
    true[:, 3] += np.arange(120)[:, None] * np.array([0.008, 0, 0])
    pred = true + np.arange(120)[:, None, None] * np.array([0.0, 0.002, 0])
    at30 = wm.sequence_sums(pred, true, fps=30, skeleton=H36M_17)
    at50 = wm.sequence_sums(pred, true, fps=50, skeleton=H36M_17)
    assert at30.counts["foot_sliding"] == 2 * 119 and at50.counts["foot_sliding"] == 119


def test_bone_length_variation():
    true = standing(100)
    pred = true.copy()
    # The right shin (knee 2 -> ankle 3) 10 % longer and shorter on alternate frames.
    shin = pred[:, 3] - pred[:, 2]
    pred[:, 3] = pred[:, 2] + shin * (1 + 0.1 * (-1) ** np.arange(100))[:, None]
    means = wm.sequence_sums(pred, true, fps=50, skeleton=H36M_17).means()
    assert means["bone_cv"] == pytest.approx(10.0 / 16)  # % : one of 16 bones varies by 10 %


def test_penetration_and_floating():
    true = standing()
    sunk = true - np.array([0, 0, 0.02])
    means = wm.sequence_sums(sunk, true, fps=50, skeleton=H36M_17).means()
    assert means["penetration"] == pytest.approx(20.0) and means["floating"] == pytest.approx(0.0)
    lifted = true + np.array([0, 0, 0.03])
    means = wm.sequence_sums(lifted, true, fps=50, skeleton=H36M_17).means()
    assert means["penetration"] == pytest.approx(0.0) and means["floating"] == pytest.approx(30.0)


def test_average_skips_undefined_groups():
    groups = [dict.fromkeys(wm.WORLD_METRICS, 1.0), {**dict.fromkeys(wm.WORLD_METRICS, 3.0), "rte": math.nan}]
    out = wm.average(groups)
    assert out["jitter"] == 2.0 and out["rte"] == 1.0


def test_evaluate_predictions_reports_world_metrics(demo_h5):
    """Ground truth as the prediction: aligned errors, sliding, penetration and floating
    vanish; the report carries every world metric with its unit."""
    from rie_cli.data.dataset import PoseDataset
    from rie_cli.evaluation import evaluate_predictions

    dataset = PoseDataset(demo_h5)
    sequences = dataset.sequences(["BN2-normal"], "gt", actions=["walk", "raise"])
    result = evaluate_predictions(sequences, [s.positions_3d for s in sequences], by_subject=True,
                                  trajectories=[s.trajectory for s in sequences], fps=dataset.fps,
                                  skeleton=dataset.skeleton)
    doc = result.to_json()
    average = doc["average"]
    for name in ("w_mpjpe100", "wa_mpjpe100", "rte", "accel_error"):
        assert average[name] == pytest.approx(0, abs=1e-2), name
    # A planted true foot still moves a little (< 6 mm per frame) and around its median height.
    for name in ("foot_sliding", "penetration", "floating"):
        assert 0 <= average[name] < 1, name
    assert 0 < average["jitter"] < 20 and 0 < average["bone_cv"] < 1
    assert doc["actions"]["raise-up-both-hands"]["rte"] is None  # in place: undefined
    assert doc["actions"]["walk"]["rte"] is not None
    assert doc["world_units"]["jitter"] == "10 m/s^3"
    assert "foot_sliding" in result.to_csv().splitlines()[0]
    no_world = evaluate_predictions(sequences, [s.positions_3d for s in sequences],
                                    trajectories=[s.trajectory for s in sequences]).to_json()
    assert "jitter" not in no_world["average"] and "world_units" not in no_world
