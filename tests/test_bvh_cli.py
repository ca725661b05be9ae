"""`rie export bvh`, `rie predict --bvh` and `--smooth` on the commands, end to end on
small real data (the demo subset) and a small random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bvh_reader import parse_bvh
from rie_cli.skeleton import H36M_17
from test_bvh import skeleton_points
from rie_cli.cli import app
from rie_cli.export import export_predictions
from rie_cli.predictions import read_dataset_predictions
from test_predict import _walk

runner = CliRunner()
ACTIONS = ["wave"]  # two short demo actions, four cameras each


@pytest.fixture(scope="module")
def predictions_npz(demo_h5, small_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("bvh_pred") / "pred.npz"
    export_predictions(small_checkpoint, demo_h5, "noisy", out, actions=ACTIONS)
    return out


def _one_sequence(path):
    nested, metadata = read_dataset_predictions(path)
    subject = sorted(nested)[0]
    action = sorted(nested[subject])[0]
    return subject, action, nested[subject][action][1], metadata


def test_export_bvh_from_an_export(predictions_npz, tmp_path):
    subject, action, poses, metadata = _one_sequence(predictions_npz)
    out = tmp_path / "seq.bvh"
    args = ["export", "bvh", "-p", str(predictions_npz), "--subject", subject, "--action", action, "--camera", "1",
            "--out", str(out), "--units", "cm"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "wrote" in result.stderr and "fixed root" in result.stderr
    bvh = parse_bvh(out)
    assert len(bvh.motion) == len(poses)
    assert bvh.frame_time == pytest.approx(1 / metadata["fps"])
    assert bvh.names[0] == "Hips" and len(bvh.names) == 17 + 6  # six helper joints (pelvis, thorax)
    # Every bone direction of the file against the prediction (the random model's poses
    # are far from rigid: the helper joints let the pelvis and thorax bones follow).
    points = skeleton_points(bvh, H36M_17) @ np.diag([1.0, -1.0, -1.0])  # file axes -> camera axes
    for child, parent in enumerate(H36M_17.parents):
        if parent < 0:
            continue
        u, v = points[:, child] - points[:, parent], (poses[:, child] - poses[:, parent]).astype(np.float64)
        sin = np.linalg.norm(np.cross(u, v), axis=-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        cos = np.sum(u * v, -1)
        assert (cos > 0).all() and np.degrees(np.arcsin(np.clip(sin, 0, 1))).max() < 0.01  # 6-decimal text

    again = runner.invoke(app, args)  # the output exists now
    assert again.exit_code == 1 and "--force" in again.stderr and again.stderr.count("\n") == 1
    assert runner.invoke(app, args + ["--force", "--smooth", "savgol"]).exit_code == 0


@pytest.mark.parametrize("extra,message", [
    ([], "several subjects: choose one with --subject"),
    (["--subject", "nobody"], "no subject 'nobody'"),
    (["--subject", "BN2-normal", "--action", "nothing"], "no action 'nothing'"),
    (["--subject", "BN2-normal", "--action", "wave-left-hand 001", "--camera", "7"], "no camera '7'"),
])
def test_export_bvh_sequence_choice_errors(predictions_npz, tmp_path, extra, message, demo_h5):
    nested, _ = read_dataset_predictions(predictions_npz)
    if len(nested) == 1 and not extra:  # the demo's test split has one subject: then ask about actions
        message = "several actions: choose one with --action"
    result = runner.invoke(app, ["export", "bvh", "-p", str(predictions_npz), "--out", str(tmp_path / "x.bvh"),
                                 *extra])
    assert result.exit_code == 1
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert not (tmp_path / "x.bvh").exists()


def test_export_bvh_file_without_poses(tmp_path):
    np.savez(tmp_path / "empty.npz", something=np.zeros(3))
    result = runner.invoke(app, ["export", "bvh", "-p", str(tmp_path / "empty.npz"), "--out", str(tmp_path / "x.bvh")])
    assert result.exit_code == 1 and "holds no poses" in result.stderr and result.stderr.count("\n") == 1
    result = runner.invoke(app, ["export", "bvh", "-p", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.bvh")])
    assert result.exit_code == 1 and "not found" in result.stderr
    result = runner.invoke(app, ["export", "bvh", "-p", str(tmp_path / "empty.npz"), "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 1 and ".bvh" in result.stderr


def test_export_bvh_uses_a_trajectory(tmp_path):
    """A `rie predict`-style file with a `trajectory` key: the root follows it."""
    rng = np.random.default_rng(0)
    frames = 30
    poses = np.tile(rng.normal(0, 0.2, (1, 17, 3)), (frames, 1, 1)).astype(np.float32)
    poses -= poses[:, :1]
    trajectory = np.stack([np.linspace(0, 1, frames), np.zeros(frames), np.full(frames, 5.0)], -1)
    np.savez(tmp_path / "t.npz", poses_3d=poses, trajectory=trajectory.astype(np.float32), fps=np.array(25.0),
             space=np.array("camera-relative"))
    result = runner.invoke(app, ["export", "bvh", "-p", str(tmp_path / "t.npz"), "--out", str(tmp_path / "t.bvh"),
                                 "--no-level"])  # camera axes kept: file x is camera x
    assert result.exit_code == 0, result.stderr
    assert "moving root" in result.stderr
    bvh = parse_bvh(tmp_path / "t.bvh")
    assert bvh.frame_time == pytest.approx(0.04)
    root = bvh.motion[:, :3]
    np.testing.assert_allclose(root[:, 0] - root[0, 0], trajectory[:, 0], atol=1e-5)  # camera x is file x
    np.testing.assert_allclose(root[:, 2], 0.0, atol=1e-5)  # constant depth: no forward motion


def test_export_bvh_placed_poses_are_not_moved_twice(tmp_path):
    """Poses already placed at their trajectory (space "camera"): the root follows the
    poses; the stored trajectory is not added a second time."""
    frames = 20
    rng = np.random.default_rng(1)
    rel = np.tile(rng.normal(0, 0.2, (1, 17, 3)), (frames, 1, 1))
    rel -= rel[:, :1]
    trajectory = np.stack([np.linspace(0, 2, frames), np.zeros(frames), np.full(frames, 5.0)], -1)
    np.savez(tmp_path / "p.npz", poses_3d=(rel + trajectory[:, None]).astype(np.float32),
             trajectory=trajectory.astype(np.float32), fps=np.array(50.0), space=np.array("camera"))
    result = runner.invoke(app, ["export", "bvh", "-p", str(tmp_path / "p.npz"), "--out", str(tmp_path / "p.bvh"),
                                 "--no-level"])
    assert result.exit_code == 0, result.stderr
    root = parse_bvh(tmp_path / "p.bvh").motion[:, :3]
    np.testing.assert_allclose(root[:, 0] - root[0, 0], trajectory[:, 0], atol=1e-5)


def test_predict_writes_bvh_and_smooths(small_checkpoint, tmp_path):
    np.save(tmp_path / "kp.npy", _walk(20).astype(np.float32))
    base = ["predict", "-c", str(small_checkpoint), "--keypoints", str(tmp_path / "kp.npy"), "--width", "1000",
            "--height", "800", "--fps", "30"]
    plain = runner.invoke(app, base + ["--out", str(tmp_path / "plain.npz")])
    assert plain.exit_code == 0, plain.stderr
    args = base + ["--out", str(tmp_path / "smooth.npz"), "--bvh", str(tmp_path / "clip.bvh"), "--smooth", "savgol",
                   "--smooth-window", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "clip.bvh" in result.stderr
    with np.load(tmp_path / "plain.npz") as f, np.load(tmp_path / "smooth.npz") as g:
        from rie_cli.smoothing import smooth_poses

        np.testing.assert_allclose(g["poses_3d"], smooth_poses(f["poses_3d"], "savgol", window=5), atol=1e-6)
        assert str(g["smoothing"]) == "savgol (window 5, order 2)"
    bvh = parse_bvh(tmp_path / "clip.bvh")
    assert len(bvh.motion) == 20 and bvh.frame_time == pytest.approx(1 / 30)
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.stderr
    assert runner.invoke(app, args + ["--force"]).exit_code == 0


@pytest.mark.parametrize("args,message", [
    (["--smooth", "kalman"], "--smooth must be one of"),
    (["--smooth", "oneeuro", "--smooth-window", "5"], "--smooth-window applies to --smooth savgol"),
    (["--smooth", "savgol", "--smooth-window", "4"], "odd"),
])
def test_smoothing_option_errors(demo_h5, small_checkpoint, args, message):
    result = runner.invoke(app, ["evaluate", "-c", str(small_checkpoint), "-d", str(demo_h5), "-k", "noisy", *args])
    assert result.exit_code == 1 and message in result.stderr and result.stderr.count("\n") == 1


def test_evaluate_smooth_lowers_mpjve_of_a_jittery_model(demo_h5, small_checkpoint):
    runs = {}
    for method in ("none", "savgol", "oneeuro"):
        result = runner.invoke(app, ["evaluate", "-c", str(small_checkpoint), "-d", str(demo_h5), "-k", "noisy",
                                     "-a", ACTIONS[0], "--json", "-", "--smooth", method])
        assert result.exit_code == 0, result.stderr
        runs[method] = json.loads(result.stdout)
    assert runs["none"]["smoothing"] == "none"
    assert runs["savgol"]["smoothing"].startswith("savgol (window 9")
    assert "fps 50" in runs["oneeuro"]["smoothing"]  # the data's frame rate
    for method in ("savgol", "oneeuro"):
        assert runs[method]["average"]["mpjve"] < runs["none"]["average"]["mpjve"]


def test_export_predictions_and_render_smooth(demo_h5, small_checkpoint, predictions_npz, tmp_path):
    out = tmp_path / "smooth.npz"
    result = runner.invoke(app, ["export", "predictions", "-c", str(small_checkpoint), "-d", str(demo_h5), "-k",
                                 "noisy", "-a", ACTIONS[0], "--out", str(out), "--smooth", "savgol"])
    assert result.exit_code == 0, result.stderr
    from rie_cli.smoothing import smooth_poses

    smoothed, metadata = read_dataset_predictions(out)
    plain, _ = read_dataset_predictions(predictions_npz)
    subject = sorted(smoothed)[0]
    action = sorted(smoothed[subject])[0]
    np.testing.assert_allclose(smoothed[subject][action][0], smooth_poses(plain[subject][action][0], "savgol"),
                               atol=1e-6)
    assert metadata["smoothing"].startswith("savgol")

    from rie_cli.render_dataset import plan_dataset_render
    from rie_cli.smoothing import Smoothing

    plans = [plan_dataset_render(demo_h5, subject, action, 0, "noisy", predictions=predictions_npz,
                                 smoothing=smoothing) for smoothing in (None, Smoothing("savgol"))]
    a, b = (p.poses_3d["Prediction"] for p in plans)
    assert a.shape == b.shape and not np.allclose(a, b)
    result = runner.invoke(app, ["render", "-d", str(demo_h5), "--subject", subject, "--action", action,
                                 "--predictions", str(predictions_npz), "-k", "noisy", "--frame", "3",
                                 "--out", str(tmp_path / "f.png"), "--smooth", "oneeuro", "--size", "2"])
    assert result.exit_code == 0, result.stderr
