"""The protocol's bookkeeping on hand-made sequences whose errors are known in advance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rie_cli.cameras import builtin_cameras
from rie_cli.data.dataset import Sequence
from rie_cli.errors import RieError
from rie_cli.evaluation import EvaluationResult, evaluate_predictions

RNG = np.random.default_rng(7)
CAMERA = builtin_cameras("h36m").for_subject("S9")[0]


def sequence(subject, action, frames, camera_index=0):
    pose = RNG.normal(scale=0.3, size=(frames, 17, 3)).astype(np.float32)
    pose -= pose[:, :1]  # root-relative, joint 0 = 0
    return Sequence(subject, action, camera_index, CAMERA, np.zeros((frames, 17, 2), np.float32), pose,
                    np.zeros((frames, 3), np.float32))


def shifted(seq, millimetres):
    """A prediction every joint of which is `millimetres` off along z: MPJPE = that, P2 = 0."""
    return seq.positions_3d + np.array([0, 0, millimetres / 1000], dtype=np.float32)


def test_frame_weighted_within_a_class_and_plain_mean_over_classes():
    walk_a = sequence("S9", "Walking 1", 10)
    walk_b = sequence("S11", "Walking", 30, camera_index=2)
    sit = sequence("S9", "Sitting 2", 20)
    result = evaluate_predictions([walk_a, walk_b, sit], [shifted(walk_a, 1), shifted(walk_b, 3), shifted(sit, 5)])

    assert list(result.actions) == ["Walking", "Sitting"]
    walking = result.actions["Walking"]
    # (10 frames x 1 mm + 30 frames x 3 mm) / 40 frames, not the mean of the two sequences (2 mm).
    assert walking.mpjpe == pytest.approx(2.5, abs=1e-4)
    assert walking.frames == 40
    assert result.actions["Sitting"].mpjpe == pytest.approx(5.0, abs=1e-4)
    # Action-wise average: each class counts once, whatever its number of frames.
    assert result.average.mpjpe == pytest.approx((2.5 + 5.0) / 2, abs=1e-4)
    assert result.average.frames == 60
    # A pure translation: nothing left after alignment, no velocity error.
    for scores in (walking, result.actions["Sitting"], result.average):
        assert scores.p_mpjpe == pytest.approx(0, abs=1e-3)
        assert scores.mpjve == pytest.approx(0, abs=1e-3)


def test_scale_and_velocity_errors():
    seq = sequence("S9", "Phoning", 11)
    result = evaluate_predictions([seq], [2 * seq.positions_3d])
    mean_norm = np.linalg.norm(seq.positions_3d, axis=-1).mean() * 1000
    assert result.actions["Phoning"].mpjpe == pytest.approx(mean_norm, rel=1e-5)
    assert result.actions["Phoning"].n_mpjpe == pytest.approx(0, abs=1e-3)
    assert result.actions["Phoning"].p_mpjpe == pytest.approx(0, abs=1e-3)

    # Alternating +-2 mm offsets: every consecutive pair differs by 4 mm.
    signs = np.where(np.arange(11) % 2 == 0, 1.0, -1.0).astype(np.float32)
    pred = seq.positions_3d + signs[:, None, None] * np.array([0, 0, 0.002], dtype=np.float32)
    scores = evaluate_predictions([seq], [pred]).actions["Phoning"]
    assert scores.mpjpe == pytest.approx(2.0, abs=1e-4)
    assert scores.mpjve == pytest.approx(4.0, abs=1e-4)


def test_velocity_pairs_are_counted_per_class_not_across_sequences():
    # Two sequences with different constant offsets: the jump between them is not a velocity.
    a, b = sequence("S9", "Eating 1", 5), sequence("S9", "Eating 2", 7)
    scores = evaluate_predictions([a, b], [shifted(a, 1), shifted(b, 9)]).actions["Eating"]
    assert scores.mpjve == pytest.approx(0, abs=1e-4)
    assert scores.mpjpe == pytest.approx((5 * 1 + 7 * 9) / 12, abs=1e-4)


def test_single_frame_class_has_no_velocity_error():
    one = sequence("S9", "Posing", 1)
    result = evaluate_predictions([one], [shifted(one, 2)])
    assert math.isnan(result.actions["Posing"].mpjve)
    assert result.to_json()["actions"]["Posing"]["mpjve"] is None


def test_ground_truth_root_is_zeroed_and_prediction_root_kept():
    seq = sequence("S9", "Walking", 4)
    seq.positions_3d[:, 0] = 0.5  # a target whose root was not zeroed
    pred = seq.positions_3d.copy()
    pred[:, 0] = 0.0
    assert evaluate_predictions([seq], [pred]).actions["Walking"].mpjpe == pytest.approx(0, abs=1e-6)
    # The prediction's root is used as predicted: 17 mm off on the root alone = 1 mm MPJPE.
    pred[:, 0, 2] = 0.017
    assert evaluate_predictions([seq], [pred]).actions["Walking"].mpjpe == pytest.approx(1.0, abs=1e-4)


def test_by_subject_results():
    s9 = sequence("S9", "Walking 1", 10)
    s11a = sequence("S11", "Walking 1", 10)
    s11b = sequence("S11", "Sitting", 10)
    result = evaluate_predictions([s9, s11a, s11b], [shifted(s9, 2), shifted(s11a, 4), shifted(s11b, 6)],
                                  by_subject=True)
    assert result.actions["Walking"].mpjpe == pytest.approx(3.0, abs=1e-4)
    assert set(result.by_subject) == {"S9", "S11"}
    assert result.by_subject["S11"]["Walking"].mpjpe == pytest.approx(4.0, abs=1e-4)
    assert result.subject_average("S11").mpjpe == pytest.approx(5.0, abs=1e-4)
    assert result.subject_average("S9").mpjpe == pytest.approx(2.0, abs=1e-4)

    data = result.to_json()
    json.dumps(data)  # serialisable as it is
    assert data["by_subject"]["S11"]["average"]["mpjpe"] == pytest.approx(5.0, abs=1e-4)
    rows = result.rows()
    assert [(r["subject"], r["action"]) for r in rows] == [
        ("all", "Walking"), ("all", "Sitting"), ("all", "average"),
        ("S9", "Walking"), ("S9", "average"),
        ("S11", "Walking"), ("S11", "Sitting"), ("S11", "average"),
    ]
    lines = result.to_csv().splitlines()
    assert lines[0] == "subject,action,mpjpe,p_mpjpe,n_mpjpe,mpjve,frames"
    assert len(lines) == 1 + len(rows) and lines[3].startswith("all,average,")
    assert float(lines[3].split(",")[2]) == pytest.approx(result.average.mpjpe)


def test_json_schema_keys():
    seq = sequence("S9", "Walking", 5)
    data = evaluate_predictions([seq], [shifted(seq, 1)]).to_json()
    assert set(data["actions"]["Walking"]) == {"mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "frames"}
    assert set(data["average"]) == {"mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "frames"}
    for key in ("checkpoint", "keypoints", "tta", "units"):
        assert key in data
    assert "by_subject" not in data


def test_mismatched_inputs_are_refused():
    seq = sequence("S9", "Walking", 5)
    with pytest.raises(ValueError):
        evaluate_predictions([seq], [])
    with pytest.raises(ValueError):
        evaluate_predictions([seq], [seq.positions_3d[:4]])
    with pytest.raises(RieError):
        evaluate_predictions([], [])
    assert isinstance(evaluate_predictions([seq], [seq.positions_3d]), EvaluationResult)


def test_a_nan_class_is_not_dropped_from_the_average():
    # An all-zero prediction used to make N-MPJPE NaN for its class, which then left the
    # average silently; only MPJVE (undefined for single frames) is averaged where defined.
    walk, sit = sequence("S9", "Walking", 5), sequence("S9", "Sitting", 5)
    result = evaluate_predictions([walk, sit], [shifted(walk, 0), np.zeros_like(sit.positions_3d)])
    zero = result.actions["Sitting"]
    size = np.linalg.norm(sit.positions_3d, axis=-1).mean() * 1000  # mm
    assert zero.n_mpjpe == pytest.approx(size, rel=1e-5)
    assert result.average.n_mpjpe == pytest.approx((result.actions["Walking"].n_mpjpe + size) / 2, rel=1e-5)
    one = sequence("S9", "Posing", 1)
    with_single = evaluate_predictions([walk, one], [shifted(walk, 3), shifted(one, 3)])
    assert with_single.average.mpjve == pytest.approx(with_single.actions["Walking"].mpjve)


def test_non_finite_predictions_are_refused_with_the_cause():
    seq = sequence("S9", "Walking", 6, camera_index=2)
    pred = seq.positions_3d.copy()
    pred[3:5] = np.nan
    with pytest.raises(RieError, match=r"S9 / Walking camera 2 is NaN or infinite in 2 of 6 frames.*diverged"):
        evaluate_predictions([seq], [pred])
