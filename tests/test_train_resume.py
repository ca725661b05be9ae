"""A run killed with SIGKILL and resumed ends with the same weights as an uninterrupted
one; a 2-process torchrun (gloo) covers every window exactly once; a second run into a
directory another run holds is refused. Real subprocesses."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rie_cli.data.dataset import PoseDataset
from rie_cli.model.checkpoint import load_checkpoint, read_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--keypoints", "gt", "--batch-size", "64", "--subset", "0.05", "--actions", "walk",
         "--filter-widths", "3,3", "--channels", "32", "--latent", "32", "--fc-width", "64"]
TIMING = ("epoch_time_s", "train_time_s", "frames_per_s", "batch_prep_share")


def _env(**extra):
    # One thread: the same arithmetic in every process, so results can be compared bit for bit.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _rie(*args):
    return [sys.executable, "-m", "rie_cli", "train", *map(str, args)]


def _assert_same_state(a: dict, b: dict, where: str):
    assert a.keys() == b.keys(), where
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{where}: {key}"
        elif isinstance(a[key], dict):
            _assert_same_state(a[key], b[key], f"{where}.{key}")
        else:
            assert a[key] == b[key], f"{where}: {key}"


def test_sigkill_and_resume_gives_identical_weights(demo_h5, tmp_path):
    epochs = 4
    args = ["--stage", 1, "--data", demo_h5, *SMALL, "--epochs", epochs, "--checkpoint-every", 1]
    whole = subprocess.run(_rie(*args, "--checkpoint-dir", tmp_path / "whole"), env=_env(), cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_rie(*args, "--checkpoint-dir", killed_dir), env=_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (killed_dir / "epoch_002.pt").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stopped_at = read_checkpoint(killed_dir / "last.pt")["epoch"]
    assert 2 <= stopped_at < epochs

    resumed = subprocess.run(_rie("--stage", 1, "--resume", killed_dir / "last.pt"), env=_env(), cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing after epoch {stopped_at}" in resumed.stderr

    a = read_checkpoint(tmp_path / "whole" / "last.pt")
    b = read_checkpoint(killed_dir / "last.pt")
    assert a["epoch"] == b["epoch"] == epochs
    _assert_same_state(a["model"], b["model"], "model")
    _assert_same_state(a["optimizer"]["state"], b["optimizer"]["state"], "optimizer")
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert (a["lr"], a["bn_momentum"], a["best_val"]) == (b["lr"], b["bn_momentum"], b["best_val"])
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    assert len((killed_dir / "log.csv").read_text().splitlines()) == epochs + 1


def test_two_process_torchrun_covers_every_window_once(demo_h5, tmp_path):
    directory = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "rie_cli", "train", "--stage", "1", "--data", str(demo_h5), *SMALL, "--epochs", "1",
           "--device", "cpu", "--checkpoint-dir", str(directory)]
    done = subprocess.run(cmd, env=_env(RIE_TRAIN_RECORD_WINDOWS="1"), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    loaded = load_checkpoint(directory / "last.pt")
    payload = loaded.raw
    assert loaded.stage == 1 and payload["epoch"] == 1 and len(payload["rng"]) == 2
    assert np.isfinite(payload["history"][0]["val_mpjpe"])
    assert not torch.equal(payload["rng"][0]["torch"], payload["rng"][1]["torch"])  # own dropout per process

    rank0 = np.load(directory / "windows_rank0_epoch001.npy")
    rank1 = np.load(directory / "windows_rank1_epoch001.npy")
    sequences = PoseDataset(demo_h5).sequences(["BN2-active", "BN2-feminine"], "gt", ["walk"], subset=0.05)
    num_windows = 2 * sum(len(s) for s in sequences)  # every frame, and its mirrored copy
    assert len(rank0) and len(rank1) and abs(len(rank0) - len(rank1)) <= 1
    np.testing.assert_array_equal(np.sort(np.concatenate([rank0, rank1])), np.arange(num_windows))


def test_a_second_run_into_a_held_directory_is_refused_until_the_first_dies(demo_h5, tmp_path):
    directory = tmp_path / "held"
    args = ["--stage", 1, "--data", demo_h5, *SMALL, "--checkpoint-dir", directory]
    first = subprocess.Popen(_rie(*args, "--epochs", 500), env=_env(), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (directory / "last.pt").exists():
            assert first.poll() is None, "the first run ended early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        owner = (directory / "run.lock").read_text()
        assert f'"pid": {first.pid}' in owner
        # This passed the directory checks while the first run held the directory, deleted
        # the first one's files and ran to the end beside it.
        second = subprocess.run(_rie(*args, "--force", "--epochs", 1), env=_env(), cwd=REPO,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 1, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"in use by another `rie train` (pid {first.pid}" in lines[0], second.stderr
        assert first.poll() is None and (directory / "last.pt").exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (directory / "run.lock").exists()  # a killed run cannot delete it...
    stopped_at = read_checkpoint(directory / "last.pt")["epoch"]
    resumed = subprocess.run(_rie("--stage", 1, "--resume", directory / "last.pt", "--epochs", stopped_at + 1),
                             env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr  # ...but its lock died with it
    assert read_checkpoint(directory / "last.pt")["epoch"] == stopped_at + 1
    assert not (directory / "run.lock").exists()  # released on exit
