"""`rie train --virtual-cameras` end to end on a slice of the demo data: pose and trajectory
models, the distribution stored with the run, resume, and the option errors."""

import pytest
import torch
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.data.virtual_cameras import CameraDistribution
from rie_cli.data.virtual_windows import VirtualCameraSampler, world_sequences
from rie_cli.model.checkpoint import read_checkpoint
from rie_cli.training.options import TrainOptions, resolve_options

runner = CliRunner()
DATA = ["--keypoints", "gt", "--batch-size", "64", "--subset", "0.05", "--actions", "walk"]
ARCH = ["--filter-widths", "3,3", "--channels", "32", "--latent", "16", "--fc-width", "64"]
VCAM = ["--virtual-cameras", "--vcam-elevation", "0,45", "--vcam-image-sizes", "1080x1920,1920x1080",
        "--vcam-noise", "0.01", "--vcam-share", "0.5"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(*args):
    return runner.invoke(app, ["train", *map(str, args)])


@pytest.mark.parametrize("kind", ["pose", "trajectory"])
def test_train_with_virtual_cameras(demo_h5, tmp_path, kind):
    target = ["--stage", 1] if kind == "pose" else ["--target", "trajectory"]
    run = tmp_path / kind
    result = _train(*target, "--data", demo_h5, *DATA, *ARCH, "--epochs", 1, "--checkpoint-dir", run, *VCAM)
    assert result.exit_code == 0, result.stderr
    assert "virtual cameras for 50% of the windows" in " ".join(result.stderr.split())
    stored = read_checkpoint(run / "last.pt")["options"]["virtual_cameras"]
    assert CameraDistribution.from_dict(stored) == CameraDistribution(
        elevation=(0.0, 45.0), image_sizes=((1080, 1920), (1920, 1080)), noise=0.01, share=0.5)
    # Resuming continues with the stored distribution; another one is another run.
    resumed = _train(*target, "--resume", run / "last.pt", "--epochs", 2)
    assert resumed.exit_code == 0, resumed.stderr
    changed = _train(*target, "--resume", run / "last.pt", "--epochs", 3, "--virtual-cameras",
                     "--vcam-elevation", "0,30")
    assert changed.exit_code == 1 and "virtual-cameras" in changed.stderr


def test_training_sequences_in_the_world_are_the_files(demo_h5):
    """world_sequences puts the camera-space training poses back where the file has them."""
    from rie_cli.data.dataset import PoseDataset

    data = PoseDataset(demo_h5)
    seqs = data.sequences(["BN2-active"], "gt", actions=["walk"])[:3]
    for seq, world in zip(seqs, world_sequences(seqs)):
        expected = data.world_positions(seq.subject, seq.action)
        assert torch.allclose(torch.from_numpy(world), torch.from_numpy(expected), atol=1e-5)
    sampler = VirtualCameraSampler([s.keypoints_2d for s in seqs], [s.positions_3d for s in seqs], 9, 16,
                                   world_3d=world_sequences(seqs), skeleton=data.skeleton,
                                   distribution=CameraDistribution())
    x, y, _ = next(iter(sampler))
    assert x.shape[1:] == (9, 17, 2) and torch.isfinite(x).all() and (y[:, 0, 0] == 0).all()


@pytest.mark.parametrize("extra, message", [
    (["--vcam-elevation", "0,30"], "--vcam-elevation set the virtual cameras: add --virtual-cameras"),
    (["--virtual-cameras", "--vcam-elevation", "30"], "--vcam-elevation takes LOW,HIGH"),
    (["--virtual-cameras", "--vcam-image-sizes", "1920by1080"], "--vcam-image-sizes takes sizes like"),
    (["--virtual-cameras", "--vcam-distance", "9,3"], "--vcam-distance: need"),
    (["--virtual-cameras", "--vcam-share", "0"], "--vcam-share 0"),
])
def test_option_errors_are_one_line(demo_h5, tmp_path, extra, message):
    result = _train("--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--checkpoint-dir", tmp_path / "r", *extra)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_options_fill_the_distribution(tmp_path):
    o = resolve_options(TrainOptions(stage=1, data=tmp_path / "d.h5", virtual_cameras={"roll": 5.0}))
    assert o.virtual_cameras == CameraDistribution(roll=5.0).to_dict()
    assert "virtual_cameras" in o.identity()
    plain = resolve_options(TrainOptions(stage=1, data=tmp_path / "d.h5"))
    assert "virtual_cameras" not in plain.identity()  # runs from before the option keep their identity
