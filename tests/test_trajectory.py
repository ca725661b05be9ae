"""Trajectory models: the camera-space root, its loss, flips, checkpoints and training."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.data.windows import WindowSampler
from rie_cli.errors import RieError
from rie_cli.inference import predict_many
from rie_cli.model import ModelConfig, build_model
from rie_cli.model.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from rie_cli.skeleton import H36M_17
from rie_cli.training.steps import trajectory_loss

runner = CliRunner()
DATA = ["--keypoints", "gt", "--batch-size", "64", "--subset", "0.05", "--actions", "walk"]
SMALL = ["--filter-widths", "3,3", "--channels", "32"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trajectory_model(seed=0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = dict(arch="videopose3d", target="trajectory", filter_widths=(3, 3), channels=32)
    config.update(kw)
    return build_model(ModelConfig(**config)).eval()


@pytest.fixture(scope="module")
def trajectory_run(demo_h5, tmp_path_factory):
    """`rie train --target trajectory` for one tiny epoch."""
    directory = tmp_path_factory.mktemp("traj") / "run"
    result = runner.invoke(app, ["train", "--target", "trajectory", "--data", str(demo_h5), *DATA, *SMALL,
                                 "--epochs", "1", "--checkpoint-dir", str(directory)])
    assert result.exit_code == 0, result.stderr
    return directory, result


def test_weighted_loss_hand_made_case():
    # Two windows: the first 0.3 m off at depth 2 m, the second 0.4 m off at depth 4 m.
    target = torch.tensor([[0.0, 0.0, 2.0], [1.0, -1.0, 4.0]]).view(2, 1, 1, 3)
    pred = target + torch.tensor([[0.0, 0.3, 0.0], [0.0, 0.0, 0.4]]).view(2, 1, 1, 3)
    loss, error = trajectory_loss(pred, target)
    # VideoPose3D's weighted_mpjpe: mean of (1 / depth) x distance = (0.3/2 + 0.4/4) / 2.
    assert loss.item() == pytest.approx((0.15 + 0.1) / 2)
    assert error.item() == pytest.approx(0.35)  # the unweighted mean the logs report
    # The nearer person's error counts twice as much per metre as the farther one's.
    pred.requires_grad_(True)
    trajectory_loss(pred, target)[0].backward()
    assert pred.grad[0].norm().item() == pytest.approx(2 * pred.grad[1].norm().item())


def test_flip_augmentation_negates_the_root_x():
    rng = np.random.default_rng(0)
    kp = [rng.normal(size=(20, 17, 2)).astype(np.float32)]
    root = [rng.normal(size=(20, 1, 3)).astype(np.float32) + np.float32([0, 0, 5])]
    sampler = WindowSampler(kp, root, 9, 40, skeleton=H36M_17, augment=True)
    assert sampler.num_windows == 40
    x, y = sampler.gather(np.arange(40))
    assert y.shape == (40, 1, 1, 3)
    np.testing.assert_array_equal(y[20:, 0, 0, 0], -y[:20, 0, 0, 0])
    np.testing.assert_array_equal(y[20:, 0, 0, 1:], y[:20, 0, 0, 1:])
    # The 2D input is mirrored as for poses: x negated and left/right swapped.
    np.testing.assert_array_equal(x[20:, :, H36M_17.flip_permutation(), 0], -x[:20, ..., 0])


def test_flip_tta_of_a_trajectory_model():
    """With flip TTA the prediction of a mirrored sequence is the mirrored prediction."""
    model = trajectory_model()
    kp = np.random.default_rng(1).normal(size=(15, 17, 2)).astype(np.float32) * 0.3
    mirrored = kp[:, H36M_17.flip_permutation()] * np.float32([-1, 1])
    plain = predict_many(model, [kp], skeleton=H36M_17)[0]
    flipped = predict_many(model, [mirrored], skeleton=H36M_17)[0]
    assert plain.shape == (15, 1, 3)
    np.testing.assert_allclose(flipped[..., 0], -plain[..., 0], atol=1e-5)
    np.testing.assert_allclose(flipped[..., 1:], plain[..., 1:], atol=1e-5)
    # The folded evaluation form predicts what the model itself does.
    eager = predict_many(model, [kp], skeleton=H36M_17, fold=False)[0]
    np.testing.assert_allclose(plain, eager, atol=1e-5)


def test_model_config_target():
    model = trajectory_model()
    out = model(torch.zeros(3, 9, 17, 2))
    assert out.shape == (3, 1, 1, 3)
    assert ModelConfig.from_dict({"arch": "videopose3d"}).target == "pose"  # files from before targets
    with pytest.raises(RieError, match="VideoPose3D architecture"):
        ModelConfig(arch="rie", target="trajectory")
    with pytest.raises(RieError, match="unknown model target"):
        ModelConfig(arch="videopose3d", target="root")


def test_wrong_kind_of_checkpoint_is_one_line_both_ways(tmp_path, small_checkpoint):
    traj = tmp_path / "traj.pt"
    save_checkpoint(traj, checkpoint_payload(trajectory_model(), stage=1))
    assert load_checkpoint(traj, target="trajectory").config.target == "trajectory"
    with pytest.raises(RieError, match="traj.pt is a trajectory model .* a pose model is needed"):
        load_checkpoint(traj)
    with pytest.raises(RieError, match="small.pt is a pose model, but a trajectory model is needed"):
        load_checkpoint(small_checkpoint, target="trajectory")
    assert load_checkpoint(traj, target=None).config.target == "trajectory"


def test_train_trajectory_writes_a_trajectory_checkpoint(trajectory_run):
    directory, result = trajectory_run
    loaded = load_checkpoint(directory / "last.pt", target="trajectory")
    assert loaded.config.arch == "videopose3d" and loaded.config.output_joints == 1
    assert loaded.stage == 1
    rows = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and 0 < rows[0]["val_mpjpe"] < 20000  # a root error in mm
    assert (directory / "curves.png").stat().st_size > 0
    assert "trajectory model: 1/1 epochs" in result.stderr
    assert "validation root error (mm)" in result.stderr


def test_train_trajectory_resumes(trajectory_run, demo_h5):
    directory, _ = trajectory_run
    result = runner.invoke(app, ["train", "--resume", str(directory / "last.pt"), "--epochs", "2"])
    assert result.exit_code == 0, result.stderr
    assert load_checkpoint(directory / "last.pt", target="trajectory").epoch == 2


@pytest.mark.parametrize("args, message", [
    (["--target", "trajectory", "--stage", "2"], "one training stage"),
    (["--target", "trajectory", "--arch", "rie"], "VideoPose3D network"),
    (["--target", "root"], "--target must be pose or trajectory"),
    ([], "--stage is required"),
])
def test_train_target_errors(demo_h5, tmp_path, args, message):
    result = runner.invoke(app, ["train", "--data", str(demo_h5), *DATA, *args, "--checkpoint-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pose_stage_refuses_a_trajectory_init(trajectory_run, demo_h5, tmp_path):
    directory, _ = trajectory_run
    result = runner.invoke(app, ["train", "--stage", "2", "--data", str(demo_h5), *DATA,
                                 "--init", str(directory / "last.pt"), "--checkpoint-dir", str(tmp_path)])
    assert result.exit_code == 1 and "is a trajectory model" in result.stderr


def test_pose_plus_trajectory_is_the_absolute_pose_on_ground_truth(demo_h5):
    """Ground-truth pose + ground-truth trajectory: the true camera-space joints, zero error."""
    from rie_cli.cameras import world_to_camera
    from rie_cli.data.dataset import PoseDataset
    from rie_cli.evaluation import evaluate_predictions
    from rie_cli.trajectory import absolute_poses

    dataset = PoseDataset(demo_h5)
    sequences = dataset.sequences(["BN2-normal"], "gt")
    for seq in sequences[:3]:
        camera_space = world_to_camera(dataset.world_positions(seq.subject, seq.action), seq.camera)
        np.testing.assert_allclose(absolute_poses(seq.positions_3d, seq.trajectory), camera_space, atol=1e-5)
    result = evaluate_predictions(sequences, [s.positions_3d for s in sequences], by_subject=True,
                                  trajectories=[s.trajectory for s in sequences])
    doc = result.to_json()
    for scores in [doc["average"], *doc["actions"].values(), doc["by_subject"]["BN2-normal"]["average"]]:
        assert scores["root_error"] == pytest.approx(0, abs=1e-9)
        assert scores["abs_mpjpe"] == pytest.approx(0, abs=1e-3)
    # A root 0.1 m off along x in every frame: root error 100 mm and, with exact poses, abs MPJPE too.
    shifted = [s.trajectory + np.float32([0.1, 0, 0]) for s in sequences]
    doc = evaluate_predictions(sequences, [s.positions_3d for s in sequences], trajectories=shifted).to_json()
    assert doc["average"]["root_error"] == pytest.approx(100, abs=1e-3)
    assert doc["average"]["abs_mpjpe"] == pytest.approx(100, abs=1e-2)
    assert "root_error" not in evaluate_predictions(sequences, [s.positions_3d for s in sequences]).to_json()["average"]


def test_evaluate_with_trajectory(trajectory_run, demo_h5, small_checkpoint, tmp_path):
    directory, _ = trajectory_run
    traj = directory / "last.pt"
    out, table = tmp_path / "r.json", tmp_path / "r.csv"
    result = runner.invoke(app, ["evaluate", "-c", str(small_checkpoint), "--trajectory", str(traj),
                                 "-d", str(demo_h5), "-k", "gt", "-a", "walk", "--by-subject",
                                 "--json", str(out), "--csv", str(table)])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["trajectory"] == str(traj) and doc["trajectory_model"]["target"] == "trajectory"
    groups = [doc["average"], *doc["actions"].values(), *doc["by_subject"]["BN2-normal"]["actions"].values()]
    for scores in groups:
        assert 0 < scores["root_error"] < 1e5 and 0 < scores["abs_mpjpe"] < 1e5
    header = " ".join(result.stderr.split())  # the table wraps its headers in a narrow terminal
    assert "root" in header and "abs" in header
    assert table.read_text().splitlines()[0].endswith("mpjve,root_error,abs_mpjpe,w_mpjpe100,wa_mpjpe100,rte,"
                                                      "jitter,accel_error,foot_sliding,bone_cv,penetration,"
                                                      "floating,frames")
    assert "world motion" in result.stderr and doc["average"]["foot_sliding"] > 0


def test_evaluate_refuses_the_wrong_kind_of_model(trajectory_run, demo_h5, small_checkpoint):
    traj = trajectory_run[0] / "last.pt"
    for args, message in ((["-c", str(traj)], "is a trajectory model"),
                          (["-c", str(small_checkpoint), "--trajectory", str(small_checkpoint)], "is a pose model")):
        result = runner.invoke(app, ["evaluate", *args, "-d", str(demo_h5), "-k", "gt"])
        assert result.exit_code == 1 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_world_transform_round_trip(demo_h5):
    """Camera space -> world -> camera space is the identity; ground truth lands on the file's world poses."""
    from rie_cli.cameras import world_to_camera
    from rie_cli.data.dataset import PoseDataset
    from rie_cli.trajectory import absolute_poses, to_world

    dataset = PoseDataset(demo_h5)
    for seq in dataset.sequences(["BN2-normal"], "gt", actions=["walk 001.1"]):
        absolute = absolute_poses(seq.positions_3d, seq.trajectory)
        world = to_world(absolute, seq.camera)
        np.testing.assert_allclose(world, dataset.world_positions(seq.subject, seq.action), atol=1e-5)
        np.testing.assert_allclose(world_to_camera(world, seq.camera), absolute, atol=1e-5)


def test_floor_from_the_feet(demo_h5):
    """Without extrinsics, a walk in camera space stands on the floor its feet show."""
    from rie_cli.data.dataset import PoseDataset
    from rie_cli.trajectory import absolute_poses, floor_frame

    dataset = PoseDataset(demo_h5)
    for seq in dataset.sequences(["BN2-normal"], "gt", actions=["walk 001.1"]):
        floor = floor_frame(absolute_poses(seq.positions_3d, seq.trajectory), dataset.skeleton)
        lower_foot = floor[:, [3, 6], 2].min(axis=1)  # (T,) Human3.6M-17 feet: 3 and 6
        assert lower_foot.min() == pytest.approx(0, abs=2e-3)
        assert lower_foot.std() < 0.03 and lower_foot.max() < 0.12  # the feet stay on the floor
        assert (floor[:, 10, 2] > 1.0).all()  # the head is up
        horizontal = floor[:, 0, :2].max(axis=0) - floor[:, 0, :2].min(axis=0)
        assert horizontal.max() > 0.5  # the root moves over the floor


def _walk_pixels(demo_h5, tmp_path):
    from rie_cli.data.dataset import PoseDataset

    pixels = PoseDataset(demo_h5).keypoints_pixels("BN2-normal", "walk 001.1", "gt")[0]  # camera 0, (T, 17, 2)
    np.save(tmp_path / "walk.npy", pixels)
    return tmp_path / "walk.npy"


def test_predict_render_export_with_trajectory(trajectory_run, demo_h5, demo_dir, small_checkpoint, tmp_path):
    """End to end: predict --trajectory (camera and world space), render and export with it."""
    from rie_cli.cameras import load_cameras_file, world_to_camera

    traj = str(trajectory_run[0] / "last.pt")
    kp = _walk_pixels(demo_h5, tmp_path)
    base = ["predict", "-c", str(small_checkpoint), "--trajectory", traj, "-k", str(kp)]
    result = runner.invoke(app, [*base, "--width", "1000", "--height", "1002", "--out", str(tmp_path / "cam.npz"),
                                 "--render", str(tmp_path / "cam.gif")])
    assert result.exit_code == 0, result.stderr
    with np.load(tmp_path / "cam.npz") as f:  # no extrinsics: upright on the floor the feet show
        assert str(f["space"]) == "floor" and f["trajectory"].shape == (148, 3)
        camera_poses = (f["poses_3d"] - f["floor_offset"]) @ f["floor_rotation"]  # the stored floor, undone
        np.testing.assert_allclose(camera_poses[:, 0], f["trajectory"], atol=1e-5)
        assert f["poses_3d"][:, [3, 6], 2].min() == pytest.approx(0, abs=1e-5)  # the lowest contact on z = 0
    assert (tmp_path / "cam.gif").stat().st_size > 0

    cameras = demo_dir / "cameras_bnmocap.json"
    result = runner.invoke(app, [*base, "--cameras", str(cameras), "--camera", "0", "--camera-subject", "BN2-normal",
                                 "--out", str(tmp_path / "world.npz")])
    assert result.exit_code == 0, result.stderr
    camera = load_cameras_file(cameras).for_subject("BN2-normal")[0]
    with np.load(tmp_path / "world.npz") as f:
        assert str(f["space"]) == "world" and int(f["width"]) == 1000  # the size comes from the camera
        np.testing.assert_allclose(world_to_camera(f["poses_3d"], camera), camera_poses, atol=1e-4)

    gif = tmp_path / "moving.gif"
    result = runner.invoke(app, ["render", "-c", str(small_checkpoint), "--trajectory", traj, "-d", str(demo_h5),
                                 "-k", "gt", "-s", "BN2-normal", "-a", "walk 001.1", "--limit", "4", "--size", "2", "-o", str(gif)])
    assert result.exit_code == 0, result.stderr
    assert gif.stat().st_size > 0

    out = tmp_path / "export.npz"
    result = runner.invoke(app, ["export", "predictions", "-c", str(small_checkpoint), "--trajectory", traj,
                                 "-d", str(demo_h5), "-k", "gt", "-a", "walk 001.1", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    with np.load(out, allow_pickle=True) as f:
        metadata = json.loads(str(f["metadata"]))
        poses = f["predictions"].item()["BN2-normal"]["walk 001.1"][0]
        root = f["trajectory"].item()["BN2-normal"]["walk 001.1"][0]
    assert metadata["space"] == "world" and metadata["root_relative"] is False
    np.testing.assert_allclose(world_to_camera(poses, camera)[:, 0], root, atol=1e-4)


def test_render_scene_fixed_view():
    """With a fixed view the 3D axes stay put over the clip; without, they follow the root."""
    from rie_cli.render import _Scene

    poses = np.zeros((3, 17, 3), np.float32)
    poses[:, :, 2] = np.linspace(0, 1.7, 17)
    poses[:, :, 0] += np.array([0.0, 2.0, 4.0])[:, None]  # walks 4 m along x
    kp = np.zeros((3, 17, 2), np.float32)
    for fixed, expect_moving in ((np.arange(3), False), (None, True)):
        scene = _Scene(kp, {"Prediction": poses}, H36M_17, 0, 2, None, (0.0, 0.0, 100.0, 100.0), fixed)
        limits = []
        for t in range(3):
            scene.show(t, None)
            limits.append(scene.axes_3d[0].get_xlim3d())
        scene.close()
        assert (limits[0] != limits[2]) == expect_moving
        if not expect_moving:
            assert limits[0][0] <= -0.0 and limits[0][1] >= 4.0  # the whole walk is in view


def test_render_reads_a_predict_file_placed_at_its_root(tmp_path, demo_h5):
    """`rie render --predictions` takes a camera-space `rie predict` file back to root-relative poses."""
    from rie_cli.predictions import read_sequence_poses as load_prediction

    rng = np.random.default_rng(0)
    poses = rng.normal(size=(5, 17, 3)).astype(np.float32)
    poses[:, 0] = 0
    root = rng.normal(size=(5, 3)).astype(np.float32)
    np.savez(tmp_path / "cam.npz", poses_3d=poses + root[:, None], trajectory=root, space=np.array("camera"))
    np.testing.assert_allclose(load_prediction(tmp_path / "cam.npz", "s", "a", 0), poses, atol=1e-6)
    np.savez(tmp_path / "world.npz", poses_3d=poses, trajectory=root, space=np.array("world"))
    with pytest.raises(RieError, match="world-space poses"):
        load_prediction(tmp_path / "world.npz", "s", "a", 0)


def test_feet_are_the_ends_of_the_legs():
    # HumanEva-15's head (head -> thorax -> pelvis) was taken for a foot: a leaf as close
    # to the root as an ankle.
    from rie_cli.skeleton import HUMANEVA_15
    from rie_cli.trajectory import _feet

    assert H36M_17.feet() == (3, 6) and _feet(H36M_17) == [3, 6]
    assert HUMANEVA_15.feet() == (10, 13) and _feet(HUMANEVA_15) == [10, 13]
    assert [HUMANEVA_15.joint_names[j] for j in HUMANEVA_15.feet()] == ["l_ankle", "r_ankle"]
