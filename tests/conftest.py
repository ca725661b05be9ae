"""Shared fixtures: where ../shared is, and skipping cleanly where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (CI always has it; a user's clone may not).
SHARED = Path(os.environ.get("RIE_SHARED_DIR", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data, absent in this clone)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return _need(SHARED / "golden")


@pytest.fixture(scope="session")
def bnmocap_dir() -> Path:
    return _need(SHARED / "data" / "bnmocap")


@pytest.fixture(scope="session")
def video_dir() -> Path:
    """The real clips of ../shared/data/video (see its README)."""
    return _need(SHARED / "data" / "video")


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return REPO / "data" / "bnmocap-demo"


@pytest.fixture(scope="session")
def bnmocap_h5(bnmocap_dir, tmp_path_factory) -> Path:
    """The whole shared bnmocap dataset prepared once per test session (gt + noisy 2D)."""
    from rie_cli.cameras import load_cameras_file
    from rie_cli.data.prepare import prepare_vp3d

    out = tmp_path_factory.mktemp("bnmocap") / "bnmocap.h5"
    prepare_vp3d(
        name="bnmocap",
        data_dir=bnmocap_dir,
        out=out,
        cameras=load_cameras_file(bnmocap_dir / "cameras_bnmocap.json"),
        train_subjects=["BN2-active", "BN2-feminine"],
        test_subjects=["BN2-normal"],
    )
    return out


@pytest.fixture(scope="session")
def demo_h5(demo_dir, tmp_path_factory) -> Path:
    """The shipped demo subset (data/bnmocap-demo) prepared once per test session."""
    from rie_cli.cameras import load_cameras_file
    from rie_cli.data.prepare import prepare_vp3d

    out = tmp_path_factory.mktemp("demo") / "demo.h5"
    prepare_vp3d(
        name="bnmocap",
        data_dir=demo_dir,
        out=out,
        cameras=load_cameras_file(demo_dir / "cameras_bnmocap.json"),
        train_subjects=["BN2-active", "BN2-feminine"],
        test_subjects=["BN2-normal"],
    )
    return out


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A small random stage-3 RIE model (receptive field 9) saved as this project's checkpoint."""
    from helpers import save_small_checkpoint

    return save_small_checkpoint(tmp_path_factory.mktemp("small_ckpt") / "small.pt", channels=16, latent=16,
                                 fc_width=32)
