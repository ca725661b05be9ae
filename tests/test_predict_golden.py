"""The key check of `rie predict`: lifting the ground-truth 2D of a real bnmocap sequence
(pixels, with its camera's resolution) with a golden checkpoint gives the poses that
`rie export predictions` gives for that sequence, and the poses of an independent run
of the model written out here: edge padding with np.pad, one strided forward pass per
window, flip augmentation by hand.

Two cases: gt256 (the authors' ground-truth model, receptive field 243) on a short
sequence, all of whose windows reach past its ends, and the stage-3 3,3,3 model
(receptive field 27) on a sequence long enough for windows inside it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rie_cli.cli import app

runner = CliRunner()
SUBJECT = "BN2-normal"
ACTIONS = ("run 005.3", "walk 010.4")  # 30 and 46 frames
TRAIN_SUBJECT, TRAIN_ACTION = "BN2-active", "run 001.3"
# VideoPose3D's Human3.6M symmetry lists, written out rather than taken from rie's skeleton.
LEFT, RIGHT = [4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]


@pytest.fixture(scope="module")
def one_sequence(bnmocap_dir, tmp_path_factory):
    """A prepared file holding only the test sequence (and one short training sequence)."""
    from rie_cli.cameras import load_cameras_file
    from rie_cli.data.prepare import prepare_vp3d

    folder = tmp_path_factory.mktemp("bnmocap_one")
    with np.load(bnmocap_dir / "data_3d_bnmocap.npz", allow_pickle=True) as f:
        poses_3d = f["positions_3d"].item()
    with np.load(bnmocap_dir / "data_2d_bnmocap_gt.npz", allow_pickle=True) as f:
        poses_2d, metadata = f["positions_2d"].item(), f["metadata"].item()
    keep = {SUBJECT: list(ACTIONS), TRAIN_SUBJECT: [TRAIN_ACTION]}
    np.savez_compressed(folder / "data_3d_bnmocap.npz",
                        positions_3d={s: {a: poses_3d[s][a] for a in acts} for s, acts in keep.items()})
    np.savez_compressed(folder / "data_2d_bnmocap_gt.npz", metadata=metadata,
                        positions_2d={s: {a: poses_2d[s][a] for a in acts} for s, acts in keep.items()})
    shutil.copy(bnmocap_dir / "cameras_bnmocap.json", folder / "cameras_bnmocap.json")
    out = folder / "one.h5"
    prepare_vp3d(name="bnmocap", data_dir=folder, out=out, cameras=load_cameras_file(folder / "cameras_bnmocap.json"),
                 train_subjects=[TRAIN_SUBJECT], test_subjects=[SUBJECT])
    # action -> per camera (N, 17, 2) pixels
    pixels = {a: [np.asarray(p, dtype=np.float32) for p in poses_2d[SUBJECT][a]] for a in ACTIONS}
    return out, pixels, json.loads((folder / "cameras_bnmocap.json").read_text())["bnmocap"]["intrinsics"]


def _lift_by_hand(model, keypoints: np.ndarray, chunk: int = 32) -> np.ndarray:
    """(T, 17, 2) normalised -> (T, 17, 3): every frame from its own edge-padded window,
    mirrored copy predicted too, mirrored back and averaged. Windows are cut one by one;
    the forward passes take `chunk` of them at a time only to save time."""
    pad = (model.receptive_field() - 1) // 2
    padded = np.pad(keypoints, ((pad, pad), (0, 0), (0, 0)), mode="edge")
    windows, mirrored = [], []
    for t in range(len(keypoints)):
        window = padded[t : t + 2 * pad + 1]  # (R, 17, 2), centred on frame t
        flipped = window.copy()
        flipped[..., 0] *= -1
        flipped[:, LEFT + RIGHT] = flipped[:, RIGHT + LEFT]
        windows.append(window)
        mirrored.append(flipped)
    with torch.no_grad():
        def run(batch):  # (N, R, 17, 2) -> (N, 17, 3)
            return np.concatenate([model(torch.from_numpy(np.stack(batch[i : i + chunk])))[:, 0].numpy()
                                   for i in range(0, len(batch), chunk)])

        direct, back = run(windows), run(mirrored)
    back[..., 0] *= -1
    back[:, LEFT + RIGHT] = back[:, RIGHT + LEFT]
    return (direct + back) / 2


@pytest.mark.parametrize("checkpoint_name, action, cameras", [
    ("ckpt_gt256.bin", "run 005.3", (0,)),  # a camera of 1000 x 1002 pixels
    ("ckpt_s3_arc333_lfd256.bin", "walk 010.4", (1,)),  # one of 1000 x 1000
])
def test_predict_equals_export_and_an_independent_run(golden_dir, one_sequence, tmp_path, checkpoint_name,
                                                       action, cameras):
    from rie_cli.model.checkpoint import load_checkpoint

    data, all_pixels, intrinsics = one_sequence
    pixels = all_pixels[action]
    checkpoint = golden_dir / checkpoint_name
    exported = tmp_path / "export.npz"
    result = runner.invoke(app, ["export", "predictions", "-c", str(checkpoint), "-d", str(data), "-k", "gt",
                                 "-a", action.split(" ")[0], "--out", str(exported)])
    assert result.exit_code == 0, result.stderr
    with np.load(exported, allow_pickle=True) as f:
        export_poses = f["predictions"].item()[SUBJECT][action]

    model = load_checkpoint(checkpoint).model
    for camera in cameras:
        width, height = intrinsics[camera]["res_w"], intrinsics[camera]["res_h"]
        np.save(tmp_path / f"cam{camera}.npy", pixels[camera])
        out = tmp_path / f"cam{camera}_3d.npz"
        result = runner.invoke(app, ["predict", "-c", str(checkpoint), "-k", str(tmp_path / f"cam{camera}.npy"),
                                     "-o", str(out), "--width", str(width), "--height", str(height), "-b", "64"])
        assert result.exit_code == 0, result.stderr
        with np.load(out) as f:
            poses, used = f["poses_3d"], f["keypoints_2d"]
            assert str(f["layout"]) == "h36m" and not f["filled_mask"].any()
        assert poses.shape == (len(pixels[camera]), 17, 3)
        np.testing.assert_array_equal(used, pixels[camera])  # the input as given: nothing filled or moved
        np.testing.assert_allclose(poses, export_poses[camera], atol=1e-5, rtol=0)

        normalised = pixels[camera] / width * 2 - np.array([1, height / width], dtype=np.float32)
        np.testing.assert_allclose(poses, _lift_by_hand(model, normalised), atol=1e-5, rtol=0)
