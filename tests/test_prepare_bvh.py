"""`rie prepare-data bvh`: the BVH reader against an independent one (bvhio), the joint
maps, units and axes, resampling, the refusals, and the command line end to end."""

from __future__ import annotations

import importlib.util
import json
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.data import bvh_joints
from rie_cli.data.bvh_reader import forward_kinematics, local_transforms, read_bvh, resample
from rie_cli.data.dataset import PoseDataset
from rie_cli.data.prepare_bvh import BvhOptions, prepare_bvh
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17

runner = CliRunner()
BVH_FILES = ("02_01.bvh", "131_01.bvh", "dataset-2_raise-up-both-hands_normal_001.bvh",
             "dataset-2_run_normal_001.bvh", "dataset-2_walk_normal_001.bvh",
             "dataset-2_wave-left-hand_normal_001.bvh")
# Bones that are rigid in every source skeleton: thighs, shins, upper arms, forearms,
# nose-head (both fixed in the head's frame). Not the pelvis-hip ones: CMU's hip
# joints turn (02_01's hip width varies by 4 mm).
RIGID_BONES = (2, 3, 5, 6, 10, 12, 13, 15, 16)
Y_UP = bvh_joints.TO_WORLD["y"]


@pytest.fixture(scope="module")
def bvh_dir(shared_dir):
    path = shared_dir / "data" / "bvh"
    if not path.is_dir():
        pytest.skip(f"needs {path}")
    return path


@pytest.fixture(scope="module")
def prepared_30(bvh_dir, tmp_path_factory):
    """Every shared BVH file at 30 fps (the Bandai Namco files' own rate; CMU's 120 fps
    frames 0, 4, 8, ... land on it exactly), 3D only."""
    out = tmp_path_factory.mktemp("bvh") / "all30.h5"
    summary = prepare_bvh(bvh_dir, out, BvhOptions(fps=30), test_subjects=["bvh"])
    return out, summary


def test_every_shared_file_reads_with_its_documented_map(prepared_30):
    out, summary = prepared_30
    data = PoseDataset(out)
    assert data.skeleton.name == H36M_17.name and data.fps == 30 and data.keypoint_sources == []
    assert sorted(data.actions("bvh")) == sorted(name[:-4] for name in BVH_FILES)
    with h5py.File(out) as f:
        source = json.loads(f.attrs["source"])
    assert source["joint_maps"] == {
        "02_01.bvh": "cmu-motionbuilder", "131_01.bvh": "cmu-3dsmax",
        **{name: "bandai-namco" for name in BVH_FILES[2:]}}
    assert source["units"]["02_01.bvh"] == "cmu" and source["units"][BVH_FILES[2]] == "cm"
    assert set(source["up"].values()) == {"y"} and source["fps"]["131_01.bvh"] == 120
    for action in data.actions("bvh"):
        world = data.world_positions("bvh", action)
        assert np.isfinite(world).all()
        height = world[:, 10, 2].max() - world[:, [3, 6], 2].min()
        assert 1.2 < height < 2.0, (action, height)  # metres, z up, an adult from ankles to the top of the head
        assert abs(world[..., 2].min()) < 0.15  # the floor: the ankles just above z = 0


@pytest.mark.skipif(importlib.util.find_spec("bvhio") is None, reason="needs bvhio (the 'test' extra)")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", BVH_FILES)
def test_joint_positions_equal_bvhio_within_a_millimetre(bvh_dir, prepared_30, name):
    """bvhio's forward kinematics, taken through the documented map, units and axes by
    hand here, gives the prepared file's joints within 1 mm (root-relative: the
    placement is a shift)."""
    import bvhio

    out, _ = prepared_30
    prepared = PoseDataset(out).world_positions("bvh", name[:-4])
    root = bvhio.readAsHierarchy(str(bvh_dir / name))
    joints = {joint.Name: joint for joint, _, _ in root.layout()}
    joint_map, _ = bvh_joints.match_joint_map(tuple(joints))
    metres = bvh_joints.UNITS["cmu" if name[0].isdigit() else "cm"]
    step = 4 if name[0].isdigit() else 1  # 120 fps -> 30 fps
    for frame in (0, len(prepared) // 2, len(prepared) - 1):
        root.loadPose(frame * step)
        point = {n: np.array(list(j.PositionWorld)) * metres @ Y_UP.T for n, j in joints.items()}
        expected = np.stack([point[p.joint] if isinstance(p, bvh_joints.At)
                             else point[p.a] + p.weight * (point[p.b] - point[p.a])
                             for p in joint_map.points if not isinstance(p, bvh_joints.Fixed)])
        got = prepared[frame, [j for j, p in enumerate(joint_map.points) if not isinstance(p, bvh_joints.Fixed)]]
        error = np.abs((got - got[1]) - (expected - expected[1])).max()
        assert error < 1e-3, (name, frame, error)


def test_bandai_namco_map_reproduces_the_shared_bnmocap_data(bvh_dir, bnmocap_dir, tmp_path):
    """The same capture, prepared from BVH at 50 fps, is the bnmocap subject BN2-normal up to
    its placement (a turn about z and a shift): all 17 joints, spine to head included."""
    folder = tmp_path / "bn"
    folder.mkdir()
    shutil.copy(bvh_dir / BVH_FILES[2], folder / "raise.bvh")
    prepare_bvh(folder, tmp_path / "bn.h5", test_subjects=["bn"])
    ours = PoseDataset(tmp_path / "bn.h5").world_positions("bn", "raise")
    with np.load(bnmocap_dir / "data_3d_bnmocap.npz", allow_pickle=True) as f:
        theirs = f["positions_3d"].item()["BN2-normal"]["raise-up-both-hands 001"]
    assert ours.shape == theirs.shape
    a, b = ours.reshape(-1, 3), theirs.reshape(-1, 3)
    u, _, vt = np.linalg.svd((a - a.mean(0)).T @ (b - b.mean(0)))
    turn = (u @ vt).T
    aligned = (a - a.mean(0)) @ turn.T + b.mean(0)
    assert np.abs(aligned - b).max() < 1e-4  # 0.1 mm


def test_rigid_bones_keep_their_length_after_resampling(bvh_dir, tmp_path):
    prepare_bvh(bvh_dir, tmp_path / "all50.h5", BvhOptions(fps=50), test_subjects=["bvh"])
    data = PoseDataset(tmp_path / "all50.h5")
    parents = np.array(H36M_17.parents)
    for action in data.actions("bvh"):
        world = data.world_positions("bvh", action)
        lengths = np.linalg.norm(world[:, RIGID_BONES] - world[:, parents[list(RIGID_BONES)]], axis=-1)
        assert (lengths.max(0) - lengths.min(0)).max() < 1e-3, action


def _chain_bvh(path, angles, frame_time):
    """A two-joint chain: a root at the origin turning about Z, a 1-unit bone along x."""
    motion = "\n".join(f"0 0 0 {a:.6f} 0 0 0 0 0" for a in angles)
    path.write_text("HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation "
                    "Xrotation Yrotation\n JOINT B\n {\n  OFFSET 1 0 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n"
                    "  End Site\n  {\n   OFFSET 1 0 0\n  }\n }\n}\n"
                    f"MOTION\nFrames: {len(angles)}\nFrame Time: {frame_time}\n{motion}\n")
    return path


def test_resampling_turns_along_the_shortest_arc(tmp_path):
    clip = read_bvh(_chain_bvh(tmp_path / "c.bvh", np.linspace(0, 90, 11), 0.1))  # 10 fps, 1 s, 9 degrees a frame
    assert clip.fps == 10
    translations, rotations = resample(*local_transforms(clip), 10, 25)
    assert len(rotations) == 26  # every 1/25 s from 0 to 1 s
    positions, _ = forward_kinematics(clip.parents, translations, rotations)
    angles = np.degrees(np.arctan2(positions[:, 1, 1], positions[:, 1, 0]))
    np.testing.assert_allclose(angles, np.linspace(0, 90, 26), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(positions[:, 1], axis=-1), 1.0)
    # The other way round: from 350 to 10 degrees is 20 degrees, not 340.
    clip = read_bvh(_chain_bvh(tmp_path / "d.bvh", [350, 10], 1.0))
    positions, _ = forward_kinematics(clip.parents, *resample(*local_transforms(clip), 1, 2))
    assert np.degrees(np.arctan2(positions[1, 1, 1], positions[1, 1, 0])) == pytest.approx(0, abs=1e-9)
    # Frame times written with few digits: 0.0083333 s is 120 fps, and 343 frames become 143 at 50.
    assert read_bvh(_chain_bvh(tmp_path / "e.bvh", np.zeros(343), 0.0083333)).fps == 120
    assert len(resample(np.zeros((343, 1, 3)), np.tile(np.eye(3), (343, 1, 1, 1)), 120, 50)[0]) == 143


def test_unmappable_files_are_refused_one_line_each(bvh_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(bvh_dir / "02_01.bvh", folder / "good.bvh")
    text = (bvh_dir / "02_01.bvh").read_text()
    (folder / "no_feet.bvh").write_text(text.replace("LeftFoot", "LFoot").replace("RightFoot", "RFoot"))
    _chain_bvh(folder / "chain.bvh", [0, 1], 0.1)
    (folder / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0\n")
    out = tmp_path / "out.h5"
    with pytest.raises(RieError) as refused:
        prepare_bvh(folder, out, test_subjects=["mixed"])
    lines = str(refused.value).splitlines()
    assert lines[0].startswith("cannot map 3 of 4 BVH files")
    assert len(lines) == 4 and not out.exists()
    no_feet = next(line for line in lines if line.startswith("no_feet.bvh: "))
    assert "cmu-motionbuilder" in no_feet and "LeftFoot" in no_feet and "RightFoot" in no_feet
    assert any(line.startswith("chain.bvh: no joint map fits") for line in lines)
    assert any("broken.bvh" in line and "OFFSET" in line for line in lines)
    summary = prepare_bvh(folder, out, BvhOptions(skip_unmapped=True), test_subjects=["mixed"])
    assert PoseDataset(out).actions("mixed") == ["good"]
    assert sum(note.startswith("skipped ") for note in summary.notes) == 3


def test_rie_written_bvh_reads_back_in_metres_and_z_up(tmp_path):
    """Files of rie's own BVH writer (any units, either up axis) read back as the poses
    written: the reader and the writer share their axis conventions."""
    from rie_cli.bvh import poses_to_motion, write_bvh
    from test_bvh import synthetic_motion

    poses = synthetic_motion(H36M_17, frames=40, seed=3)  # camera space (y down), metres
    world = poses @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T + [0, 0, 1]  # z up
    for units, up in (("m", "z"), ("cm", "y")):
        folder = tmp_path / f"{units}{up}"
        folder.mkdir()
        write_bvh(folder / "clip.bvh", poses_to_motion(world, H36M_17, space="world"), fps=25, units=units, up=up)
        summary = prepare_bvh(folder, tmp_path / f"{units}{up}.h5", BvhOptions(fps=25, units=units),
                              test_subjects=[folder.name])
        assert "rie (1 file)" in summary.notes[0] and f"{units} (1 file)" in summary.notes[1]
        back = PoseDataset(tmp_path / f"{units}{up}.h5").world_positions(folder.name, "clip")
        np.testing.assert_allclose(back - back[:, :1], world - world[:, :1], atol=1e-4)


def test_cli_prepares_with_cameras_then_evaluates(bvh_dir, shared_dir, small_checkpoint, tmp_path):
    folder = tmp_path / "cmu"
    folder.mkdir()
    shutil.copy(bvh_dir / "02_01.bvh", folder / "walk 1.bvh")
    out = tmp_path / "cmu.h5"
    cameras = shared_dir / "data" / "cameras.json"
    base = ["prepare-data", "bvh", "--bvh-dir", str(folder), "--test-subjects", "cmu", "--out", str(out)]
    result = runner.invoke(app, base + ["--cameras", str(cameras)])
    assert result.exit_code == 1 and "cannot tell which" in result.output and not out.exists()
    result = runner.invoke(app, base + ["--cameras", str(cameras), "--cameras-entry", "h36m"])
    assert result.exit_code == 1 and "--camera-subject" in result.output
    result = runner.invoke(app, base + ["--cameras", str(cameras), "--cameras-entry", "h36m", "--camera-subject", "S1"])
    assert result.exit_code == 0, result.output
    assert "cmu-motionbuilder" in result.output and "subject S1's placement" in " ".join(result.output.split())
    data = PoseDataset(out)
    assert data.keypoint_sources == ["gt"] and data.fps == 50 and data.subjects() == ["cmu"]
    sequences = data.sequences(["cmu"], "gt")
    assert len(sequences) == 4 and all(np.abs(s.keypoints_2d).max() < 1.5 for s in sequences)  # in view
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(small_checkpoint), "--data", str(out),
                                 "--keypoints", "gt", "--json", str(report)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text())
    assert list(metrics["actions"]) == ["walk"] and metrics["actions"]["walk"]["frames"] == 4 * len(sequences[0])
    assert 0 < metrics["actions"]["walk"]["mpjpe"] < 2000


def test_bad_options_are_one_line(tmp_path):
    for args, message in (
        (["--bvh-dir", str(tmp_path / "none")], "BVH directory not found"),
        (["--bvh-dir", str(tmp_path), "--units", "ft"], "--units must be"),
        (["--bvh-dir", str(tmp_path), "--fps", "0"], "--fps must be positive"),
        (["--bvh-dir", str(tmp_path)], "no .bvh files"),
        (["--data-dir", str(tmp_path)], "give --bvh-dir"),
    ):
        result = runner.invoke(app, ["prepare-data", "bvh", "--out", str(tmp_path / "o.h5")] + args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["prepare-data", "h36m", "--data-dir", str(tmp_path), "--fps", "30",
                                 "--out", str(tmp_path / "o.h5")])
    assert result.exit_code == 1 and "are for dataset bvh" in result.output


def test_three_d_only_file_trains_with_virtual_cameras(bvh_dir, tmp_path):
    """A BVH folder prepared without cameras (every subject a training subject) is what
    `rie train --virtual-cameras` learns from; without them, or with per-epoch
    evaluation, it is refused in one line."""
    import torch

    folder = tmp_path / "mocap" / "bn"
    folder.mkdir(parents=True)
    shutil.copy(bvh_dir / BVH_FILES[2], folder / "raise 1.bvh")
    data = tmp_path / "mocap.h5"
    summary = prepare_bvh(tmp_path / "mocap", data)
    assert [(s.subject, s.split) for s in summary.subjects] == [("bn", "train")]
    base = ["train", "--stage", "1", "--data", str(data), "--filter-widths", "3,3", "--channels", "32", "--latent",
            "32", "--fc-width", "64", "--epochs", "1", "--batch-size", "64", "--checkpoint-dir", str(tmp_path / "run")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for extra, message in ((["--no-eval"], "train on it with --virtual-cameras"),
                               (["--virtual-cameras"], "pass --no-eval"),
                               (["--virtual-cameras", "--no-eval", "--keypoints", "gt"], "leave --keypoints out")):
            result = runner.invoke(app, base + extra)
            assert result.exit_code == 1 and message in result.output, result.output
        result = runner.invoke(app, base + ["--virtual-cameras", "--no-eval"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "last.pt").exists()
