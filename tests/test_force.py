"""Nothing overwritten without --force: every command, every file it writes.

For each output: with an existing file and no --force, exit 1, one `error:` line that
names --force, the file byte for byte unchanged (and nothing computed: the refusal comes
first); with --force, the file is replaced by a valid new one and no temporary file is
left beside it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rie_cli.atomic import check_writable
from rie_cli.cli import app
from rie_cli.errors import RieError

runner = CliRunner()
OLD = b"an earlier result that must survive\n"
SEQ = ["-s", "BN2-normal", "-a", "walk 001.1"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _walk_keypoints(path, frames=10):
    """A small pixel-space H36M-17 clip for `rie predict`."""
    rng = np.random.default_rng(0)
    base = rng.uniform(300, 700, size=(1, 17, 2))
    steps = np.arange(frames)[:, None, None] * np.array([3.0, 0.5])
    np.save(path, (base + steps).astype(np.float32))
    return path


def _cases(demo_dir, demo_h5, ckpt, tmp):
    """(name, command without --force, the output it writes, check of a good output)."""
    kp = _walk_keypoints(tmp / "kp.npy")
    predict = ["predict", "-c", ckpt, "-k", kp, "--width", 1000, "--height", 1000]
    npz_ok = lambda p: np.load(p, allow_pickle=True).files  # noqa: E731
    return [
        ("prepare-data", ["prepare-data", "bnmocap", "--data-dir", demo_dir, "--cameras",
                          demo_dir / "cameras_bnmocap.json", "--test-subjects", "BN2-normal",
                          "--out", tmp / "data.h5"], tmp / "data.h5", lambda p: p.stat().st_size > 1000),
        ("export predictions", ["export", "predictions", "-c", ckpt, "-d", demo_h5, "-k", "gt", "-a", "walk 001",
                                "--out", tmp / "pred.npz"], tmp / "pred.npz", npz_ok),
        ("export model", ["export", "model", "-c", ckpt, "--format", "pt2", "--out", tmp / "model.pt2"],
         tmp / "model.pt2", lambda p: torch.export.load(p) is not None),
        ("render", ["render", "-c", ckpt, "-d", demo_h5, "-k", "gt", *SEQ, "--frame", 3, "--size", 1, "-o", tmp / "still.png"],
         tmp / "still.png", lambda p: p.read_bytes()[:4] == b"\x89PNG"),
        ("predict --out", [*predict, "--out", tmp / "poses.npz"], tmp / "poses.npz", npz_ok),
        ("predict --render", [*predict, "--out", tmp / "other.npz", "--render", tmp / "clip.gif"],
         tmp / "clip.gif", lambda p: p.read_bytes()[:3] == b"GIF"),
        ("evaluate --json", ["evaluate", "-c", ckpt, "-d", demo_h5, "-k", "gt", "-a", "walk 001",
                             "--json", tmp / "result.json"], tmp / "result.json",
         lambda p: "average" in json.loads(p.read_text())),
        ("evaluate --csv", ["evaluate", "-c", ckpt, "-d", demo_h5, "-k", "gt", "-a", "walk 001",
                            "--csv", tmp / "result.csv"], tmp / "result.csv",
         lambda p: p.read_text().startswith("subject,action")),
        ("predict --bvh", [*predict, "--out", tmp / "third.npz", "--bvh", tmp / "clip.bvh"], tmp / "clip.bvh",
         lambda p: p.read_text().startswith("HIERARCHY")),
        ("export bvh", ["export", "bvh", "-p", _poses_file(tmp / "poses3d.npz"), "--out", tmp / "motion.bvh"],
         tmp / "motion.bvh", lambda p: p.read_text().startswith("HIERARCHY")),
    ]


def _poses_file(path):
    """A `rie predict`-style file of 3D poses for `rie export bvh`."""
    rng = np.random.default_rng(1)
    np.savez(path, poses_3d=rng.normal(0, 0.3, size=(6, 17, 3)).astype(np.float32), fps=np.array(50.0))
    return path


NAMES = ["prepare-data", "export predictions", "export model", "render", "predict --out", "predict --render",
         "evaluate --json", "evaluate --csv", "predict --bvh", "export bvh"]


@pytest.mark.parametrize("name", NAMES)
def test_existing_output_needs_force(name, demo_dir, demo_h5, small_checkpoint, tmp_path):
    cases = {c[0]: c[1:] for c in _cases(demo_dir, demo_h5, small_checkpoint, tmp_path)}
    args, output, valid = cases[name]
    output.write_bytes(OLD)

    refused = _run(*args)
    assert refused.exit_code == 1, refused.output
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--force" in lines[0], refused.stderr
    assert str(output) in lines[0].replace("\n", "")
    assert "Traceback" not in refused.output
    assert output.read_bytes() == OLD

    replaced = _run(*args, "--force")
    assert replaced.exit_code == 0, replaced.output
    assert output.read_bytes() != OLD and valid(output)
    assert not [p.name for p in tmp_path.iterdir() if ".partial" in p.name]


def test_every_file_writing_command_is_covered():
    """A new command with an --out/--output/--json/--csv option must be added above."""
    import typer.main

    writers = set()
    click_app = typer.main.get_command(app)
    for name, command in click_app.commands.items():
        subcommands = getattr(command, "commands", {name: command})
        for sub, cmd in subcommands.items():
            full = name if sub == name else f"{name} {sub}"
            options = {o for p in cmd.params for o in p.opts}
            if options & {"--out", "--output", "--json", "--csv", "--render"}:
                writers.add(full)
                assert "--force" in options, f"`rie {full}` writes files but has no --force"
    covered = {n.split(" --")[0] for n in NAMES}
    assert writers <= covered, f"not tested here: {sorted(writers - covered)}"


def test_json_to_stdout_needs_no_force(demo_h5, small_checkpoint, tmp_path):
    result = _run("evaluate", "-c", small_checkpoint, "-d", demo_h5, "-k", "gt", "-a", "walk 001", "--json", "-")
    assert result.exit_code == 0, result.output
    assert "average" in json.loads(result.stdout)


def test_check_writable(tmp_path):
    target = tmp_path / "a.txt"
    assert check_writable(target, force=False) == target  # absent: fine
    target.write_text("x")
    with pytest.raises(RieError, match="use --force"):
        check_writable(target, force=False)
    assert check_writable(target, force=True) == target
    with pytest.raises(RieError, match="is a directory"):
        check_writable(tmp_path, force=True)


# --- training: the checkpoint directory as a whole -------------------------------------

TRAIN = ["--keypoints", "gt", "--batch-size", "64", "--subset", "0.05", "--actions", "walk",
         "--filter-widths", "3", "--channels", "16", "--latent", "16", "--fc-width", "32", "--no-eval"]


def test_train_directory_needs_resume_or_force(demo_h5, tmp_path):
    run_dir = tmp_path / "s1"
    first = _run("train", "--stage", 1, "--data", demo_h5, *TRAIN, "--epochs", 2, "--checkpoint-every", 1,
                 "--checkpoint-dir", run_dir)
    assert first.exit_code == 0, first.output
    assert (run_dir / "epoch_002.pt").exists()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    (run_dir / "notes.txt").write_text("mine")  # a user's own file in the directory

    for seed in ("4321", "7"):  # the same run, and another run
        refused = _run("train", "--stage", 1, "--data", demo_h5, *TRAIN, "--epochs", 1, "--seed", seed,
                       "--checkpoint-dir", run_dir)
        assert refused.exit_code == 1, refused.output
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "--force" in lines[0], refused.stderr
        assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "notes.txt"} == before

    # Resuming from an earlier checkpoint would leave epoch 2's files beside the new epochs.
    earlier = _run("train", "--stage", 1, "--resume", run_dir / "epoch_001.pt")
    assert earlier.exit_code == 1 and "holds epochs after 1 (epoch_002.pt, last.pt)" in earlier.stderr
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "notes.txt"} == before

    again = _run("train", "--stage", 1, "--data", demo_h5, *TRAIN, "--epochs", 1, "--seed", "7",
                 "--checkpoint-dir", run_dir, "--force")
    assert again.exit_code == 0, again.output
    assert "deleted the run" in again.stderr
    # The new run alone: one epoch, its seed, none of the old run's periodic files.
    names = {p.name for p in run_dir.iterdir()}
    assert "epoch_002.pt" not in names and "notes.txt" in names
    run = json.loads((run_dir / "run.json").read_text())
    assert run["identity"]["seed"] == 7
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 1
    assert len((run_dir / "log.csv").read_text().strip().splitlines()) == 2
