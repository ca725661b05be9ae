"""Every example in every `--help` text runs, on the shipped demo data.

The examples are read from the commands' help texts (so a renamed option or a wrong
action name in an example fails here), run in a fresh folder holding the files they
name (small models standing in for trained ones; the demo data), with a few options
appended that only bound the work (fewer epochs, frames or actions). Examples that need
data this repository does not ship (Human3.6M) or several processes (torchrun) are
parsed with Click, not run.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import typer.main
from typer.testing import CliRunner

from conftest import SHARED
from rie_cli.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# Examples holding one of these are parsed, not run: why.
NOT_HERE = {
    "data/h36m": "needs Human3.6M's .npz files",
    "/data/H36M": "needs Human3.6M's CDF files",
    "h36m.h5": "needs a prepared Human3.6M file",
    "torchrun": "needs several processes (tests/test_train_resume.py runs data-parallel training)",
}
# BVH folders of the examples, from the shared BVH files (parsed only where ../shared is absent).
BVH_FOLDERS = {"mocap": {"S1/walk.bvh": "02_01.bvh", "S9/run.bvh": "dataset-2_run_normal_001.bvh"},
               "cmu": {"walk.bvh": "02_01.bvh"}}
# Options appended to bound the work; they change how much is done, not what.
FEW = ["--epochs", "1", "--subset", "0.05", "--actions", "walk 001.1", "--batch-size", "64"]
BOUNDS = {
    "evaluate": ["--actions", "walk 001.1"],
    "export predictions": ["--actions", "walk 001.1"],
    "render": ["--limit", "3", "--size", "1"],
}


def _command(name: str):
    command = typer.main.get_command(app)
    for part in name.split():
        command = command.commands[part]
    return command


def examples(name: str) -> list[str]:
    """The example lines of `rie NAME --help`, trailing '(comment)' removed."""
    lines = [line.strip() for line in (_command(name).help or "").splitlines()]
    return [re.sub(r"\s{2,}\(.*\)$", "", line) for line in lines if line.startswith(("rie ", "torchrun "))]


def _bounded(name: str, args: list[str]) -> list[str]:
    if "--video" in args and name == "predict":
        return ["--max-frames", "6"]  # a tenth of a second of the real clip linked as clip.mp4
    if name != "train":
        return BOUNDS.get(name, [])
    if "--init" in args or "--resume" in args:
        return FEW  # the architecture comes from the checkpoint
    small = ["--channels", "16"] if "trajectory" in args else ["--channels", "16", "--latent", "16",
                                                               "--fc-width", "32"]
    return FEW + small


# --- the files the examples name ----------------------------------------------------------

def _demo_pixels(frames: int = 24) -> np.ndarray:
    """(frames, 17, 2) real Human3.6M-17 pixel keypoints: a demo walk, camera 0."""
    with np.load(REPO / "data" / "bnmocap-demo" / "data_2d_bnmocap_gt.npz", allow_pickle=True) as f:
        positions = f["positions_2d"].item()
    return np.asarray(positions["BN2-normal"]["walk 001.1"][0][:frames], dtype=np.float32)


# Human3.6M-17 joint -> OpenPose COCO-18 slot (eyes and ears near the head joint).
_COCO18_FROM_H36M = [9, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6, 10, 10, 10, 10]


def _write_openpose(folder: Path, pixels: np.ndarray) -> None:
    folder.mkdir()
    for t, frame in enumerate(pixels):
        points = frame[_COCO18_FROM_H36M] + np.array([[0, 0]] * 14 + [[-6, -4], [6, -4], [-12, 0], [12, 0]])
        flat = np.concatenate([points, np.full((18, 1), 0.9)], axis=1).ravel().tolist()
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat}]}
        (folder / f"clip_{t:06d}_keypoints.json").write_text(json.dumps(doc))


def _write_vp3d_custom(path: Path, pixels: np.ndarray) -> None:
    metadata = {"layout_name": "h36m", "num_joints": 17,
                "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
                "video_metadata": {"clip1": {"w": 1000, "h": 1002}}}
    np.savez_compressed(path, positions_2d={"clip1": {"custom": [pixels]}}, metadata=metadata)


@pytest.fixture(scope="module")
def inputs(demo_h5, small_checkpoint, tmp_path_factory) -> Path:
    """Every input file an example names, built once."""
    from rie_cli.export import export_predictions
    from rie_cli.model import ModelConfig, build_model
    from rie_cli.model.checkpoint import checkpoint_payload, save_checkpoint
    from rie_cli.predict import KeypointInput, ModelOptions, OutputOptions, PredictOptions, predict_keypoints

    folder = tmp_path_factory.mktemp("example_inputs")
    torch.manual_seed(0)
    trajectory = build_model(ModelConfig(arch="videopose3d", target="trajectory", filter_widths=(3, 3),
                                         channels=16)).eval()
    save_checkpoint(folder / "traj.pt", checkpoint_payload(trajectory, stage=1))
    pixels = _demo_pixels()
    np.save(folder / "clip.npy", pixels)
    _write_openpose(folder / "openpose_json", pixels)
    _write_vp3d_custom(folder / "data_2d_custom_myvideos.npz", pixels)
    export_predictions(small_checkpoint, demo_h5, "gt", folder / "pred.npz", actions=["walk 001.1"])
    predict_keypoints(PredictOptions(KeypointInput(folder / "clip.npy", width=1000, height=1002),
                                     ModelOptions(small_checkpoint), OutputOptions(folder / "clip_3d.npz")))
    return folder


def _workspace(tmp_path: Path, inputs: Path, demo_h5: Path, small_checkpoint: Path, written=()) -> None:
    """The example's folder: the demo data and stand-ins for what it reads (not what it writes)."""
    links = {
        "demo.h5": demo_h5, "ckpt.bin": small_checkpoint, "runs/s3/best.pt": small_checkpoint,
        "runs/traj/best.pt": inputs / "traj.pt", "data/bnmocap-demo": REPO / "data" / "bnmocap-demo",
        "novel_cameras.json": REPO / "data" / "bnmocap-demo" / "cameras_bnmocap.json",
        **{p.name: p for p in inputs.iterdir()},
    }
    lab_clip = SHARED / "data" / "video" / "lab_single_cam01.mp4"
    if lab_clip.is_file():
        links["clip.mp4"] = lab_clip  # rie predict --video's examples
    bvh_files = SHARED / "data" / "bvh"
    if bvh_files.is_dir():
        links["cameras.json"] = SHARED / "data" / "cameras.json"
        for folder, files in BVH_FOLDERS.items():
            links.update({f"{folder}/{name}": bvh_files / source for name, source in files.items()})
    for name, target in links.items():
        if name in written:
            continue
        link = tmp_path / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)


OUTPUTS = {"-o", "--out", "--render", "--bvh", "--checkpoint-dir", "--json", "--csv", "--save-keypoints"}


def _written(name: str) -> set[str]:
    """What the examples of `name` write (not linked in, or they would refuse it)."""
    written = set()
    for line in examples(name):
        words = shlex.split(line)
        written |= {value for option, value in zip(words, words[1:]) if option in OUTPUTS}
    return written


COMMANDS = ["prepare-data", "train", "evaluate", "render", "export predictions", "export model", "export bvh",
            "predict"]


@pytest.fixture(autouse=True)
def one_thread():
    """Small models gain nothing from a second thread on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_command_with_examples_is_covered():
    root = typer.main.get_command(app)
    names = [n if not hasattr(c, "commands") else f"{n} {s}" for n, c in root.commands.items()
             for s in getattr(c, "commands", {n: c})]
    with_examples = {n for n in names if examples(n)}
    assert with_examples == set(COMMANDS), with_examples ^ set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_examples_run_on_the_demo_data(name, inputs, demo_h5, small_checkpoint, tmp_path, monkeypatch):
    written = _written(name)
    if name == "train":  # the stages' runs/ is theirs to write
        written |= {"runs/s3/best.pt", "runs/traj/best.pt"}
    _workspace(tmp_path, inputs, demo_h5, small_checkpoint, written)
    monkeypatch.chdir(tmp_path)
    for line in examples(name):
        words = shlex.split(line)
        if ">" in words:  # `--json - > result.json`: stdout is the JSON
            words = words[:words.index(">")]
        args = words[words.index("rie_cli") + 1:] if words[0] == "torchrun" else words[1:]
        reason = next((why for key, why in NOT_HERE.items() if key in line), None)
        if "--bvh-dir" in line and not (SHARED / "data" / "bvh").is_dir():
            reason = "needs ../shared/data/bvh"
        if "--video" in args and name == "predict" and not (tmp_path / "clip.mp4").exists():
            reason = "needs ../shared/data/video"
        if "--video" in args and name == "predict" and importlib.util.find_spec("mediapipe") is None:
            reason = "needs the optional 'video' extra (tests/test_predict_video.py checks its error)"
        if reason is not None:
            command = _command(name)
            command.make_context(f"rie {name}", args[len(name.split()):])  # the options parse
            continue
        result = runner.invoke(app, [*args, *_bounded(name, args)])
        if "--format onnx" in line and importlib.util.find_spec("onnx") is None:  # its one-line install error
            assert result.exit_code == 1 and "pip install" in result.stderr, result.output
            continue
        assert result.exit_code == 0, f"{line}\n{result.output}"
        if "--json -" in line:
            assert "average" in json.loads(result.stdout)
