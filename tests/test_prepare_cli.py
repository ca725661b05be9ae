"""`rie prepare-data` on the command line: a good run, and every bad input giving one
error line, exit code 1, and an existing output left untouched."""

from __future__ import annotations

import json
import shutil
from importlib import resources

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.data.h5format import action_path
from test_prepare import make_h36m_like, random_poses, write_pose_cdf

runner = CliRunner()
SENTINEL = b"an earlier output that must survive"


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    """A valid generated Human3.6M-layout directory (data_3d_h36m.npz, data_2d_h36m_gt.npz)."""
    path = tmp_path_factory.mktemp("h36m_good")
    make_h36m_like(path, seed=11)
    return path


@pytest.fixture
def work(tmp_path, good_dir):
    """A fresh copy of the good data to break, and an existing output to protect."""
    data = tmp_path / "data"
    shutil.copytree(good_dir, data)
    out = tmp_path / "out" / "prepared.h5"
    out.parent.mkdir()
    out.write_bytes(SENTINEL)
    return data, out


def run(*args):
    return runner.invoke(app, ["prepare-data", *map(str, args)])


def load(path):
    with np.load(path, allow_pickle=True) as f:
        return {k: f[k].item() if f[k].dtype == object else f[k] for k in f.files}


def save(path, **arrays):
    np.savez(path, **arrays)


def assert_one_line_failure(result, out, expected: str):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert out.read_bytes() == SENTINEL  # untouched
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


def test_cli_converts_and_prints_summary(tmp_path, good_dir):
    out = tmp_path / "h36m.h5"
    result = run("h36m", "--data-dir", good_dir, "--out", out, "--keypoints", "gt")
    assert result.exit_code == 0, result.output
    for text in ("S1", "S9", "test", "195", "gt", "total"):
        assert text in result.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "rie-poses"
    # A second run needs --force, and with it succeeds.
    assert run("h36m", "--data-dir", good_dir, "--out", out).exit_code == 1
    assert run("h36m", "--data-dir", good_dir, "--out", out, "--force").exit_code == 0


def _drop_key(data, name, key):
    arrays = load(data / name)
    del arrays[key]
    save(data / name, **arrays)


def _edit_3d(data, edit):
    arrays = load(data / "data_3d_h36m.npz")
    edit(arrays["positions_3d"])
    save(data / "data_3d_h36m.npz", **arrays)


def _edit_2d(data, edit):
    arrays = load(data / "data_2d_h36m_gt.npz")
    edit(arrays["positions_2d"])
    save(data / "data_2d_h36m_gt.npz", **arrays)


def _set_2d_view(data, value_fn):
    def edit(p2d):
        views = list(p2d["S5"]["Photo"])
        views[2] = value_fn(views[2])
        p2d["S5"]["Photo"] = views
    _edit_2d(data, edit)


def _truncate(data):
    path = data / "data_2d_h36m_gt.npz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _corrupt_middle(data):
    path = data / "data_3d_h36m.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 200] = bytes(200)  # the zip directory survives, the data does not
    path.write_bytes(bytes(raw))


def _all_16_joints(p3d):
    for actions in p3d.values():
        for action in actions:
            actions[action] = actions[action][:, :16]


def _nan_3d(p3d):
    p3d["S1"]["Walking 1"] = p3d["S1"]["Walking 1"].copy()
    p3d["S1"]["Walking 1"][7, 3, 1] = np.nan


def _with_inf(view):
    view = view.copy()
    view[4, 0, 0] = np.inf
    return view


BAD_INPUTS = {
    "missing 3D file": (lambda d: (d / "data_3d_h36m.npz").unlink(), "file not found"),
    "missing 2D source": (lambda d: None, "2D keypoints file not found"),  # --keypoints cpn below
    "no 2D files": (lambda d: (d / "data_2d_h36m_gt.npz").unlink(), "no 2D keypoints files"),
    "no positions_3d": (lambda d: save(d / "data_3d_h36m.npz", other=np.zeros(3)), "has no 'positions_3d'"),
    "no positions_2d": (lambda d: _drop_key(d, "data_2d_h36m_gt.npz", "positions_2d"), "has no 'positions_2d'"),
    "no metadata": (lambda d: _drop_key(d, "data_2d_h36m_gt.npz", "metadata"), "has no 'metadata'"),
    "subject missing from 2D": (lambda d: _edit_2d(d, lambda p: p.pop("S5")), "subject S5 is missing"),
    "action missing from 2D": (lambda d: _edit_2d(d, lambda p: p["S9"].pop("Photo")), "action 'Photo' of subject S9"),
    "wrong 3D joints": (lambda d: _edit_3d(d, lambda p: p["S1"].update({"Photo": p["S1"]["Photo"][:, :16]})),
                        "mixes joint counts"),
    "16 joints for h36m": (lambda d: _edit_3d(d, _all_16_joints), "has 16 joints; h36m needs 17"),
    "wrong 2D joints": (lambda d: _set_2d_view(d, lambda v: v[:, :15]), "wrong joint count"),
    "NaN in 3D": (lambda d: _edit_3d(d, _nan_3d), "NaN/inf"),
    "inf in 2D": (lambda d: _set_2d_view(d, _with_inf), "NaN/inf"),
    "2D shorter than 3D": (lambda d: _set_2d_view(d, lambda v: v[:20]), "shorter than the 3D"),
    "truncated npz": (_truncate, "unreadable or truncated"),
    "corrupted npz": (_corrupt_middle, "unreadable or truncated"),
    "garbage npz": (lambda d: (d / "data_3d_h36m.npz").write_bytes(b"PK\x03\x04garbage" * 10), "cannot read"),
    "not a dictionary": (lambda d: save(d / "data_3d_h36m.npz", positions_3d=np.zeros((3, 17, 3))),
                         "not a subject -> action dictionary"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_1(case, work):
    data, out = work
    break_it, expected = BAD_INPUTS[case]
    break_it(data)
    extra = ["--keypoints", "cpn_ft_h36m_dbb"] if case == "missing 2D source" else []
    result = run("h36m", "--data-dir", data, "--out", out, "--force", *extra)
    assert_one_line_failure(result, out, expected)


def test_existing_output_needs_force(work):
    data, out = work
    assert_one_line_failure(run("h36m", "--data-dir", data, "--out", out), out, "use --force")


@pytest.mark.parametrize("args, expected", [
    (["toy", "--data-dir", "{data}"], "no built-in cameras"),
    (["h36m"], "--data-dir is required"),
    (["h36m", "--data-dir", "{data}/nowhere"], "data directory not found"),
    (["h36m", "--data-dir", "{data}", "--test-subjects", "S9,S7"], "'S7' is not in the data"),
    (["h36m", "--data-dir", "{data}", "--train-subjects", "S1,S9"], "in both"),
    (["h36m", "--data-dir", "{data}", "--cameras", "{data}/missing.json"], "cameras file not found"),
    (["humaneva", "--from-cdf", "{data}"], "use it with dataset h36m"),
])
def test_bad_options_are_one_line_and_exit_1(args, expected, work):
    data, out = work
    args = [a.format(data=data) for a in args]
    assert_one_line_failure(run(*args, "--out", out, "--force"), out, expected)


def test_custom_dataset_requires_test_subjects(work):
    data, out = work
    for name in ("data_3d_h36m.npz", "data_2d_h36m_gt.npz"):
        (data / name).rename(data / name.replace("h36m", "mine"))
    doc = json.loads(resources.files("rie_cli").joinpath("resources/cameras.json").read_text())
    cameras = data / "cameras_mine.json"
    cameras.write_text(json.dumps({"mine": doc["h36m"]}))
    base = ["mine", "--data-dir", data, "--cameras", cameras, "--out", out, "--force"]
    assert_one_line_failure(run(*base), out, "give --test-subjects")
    result = run(*base, "--test-subjects", "S9")
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["train_subjects"]) == ["S1", "S5"]
        assert json.loads(f.attrs["test_subjects"]) == ["S9"]


def test_cdf_option_errors(work, tmp_path):
    data, out = work
    assert_one_line_failure(run("h36m", "--from-cdf", tmp_path / "none", "--out", out, "--force"), out,
                            "CDF directory not found")
    assert_one_line_failure(run("h36m", "--from-cdf", data, "--out", out, "--force"), out,
                            "no Human3.6M CDF files")


def test_help_mentions_every_option():
    result = runner.invoke(app, ["prepare-data", "--help"])
    assert result.exit_code == 0
    for option in ("--data-dir", "--from-cdf", "--keypoints", "--cameras", "--train-subjects",
                   "--test-subjects", "--force", "--out"):
        assert option in result.output


def test_cli_from_cdf(tmp_path):
    pytest.importorskip("cdflib")
    rng = np.random.default_rng(12)
    for subject in ("S1", "S11"):
        path = tmp_path / "cdf" / subject / "MyPoseFeatures" / "D3_Positions" / "Walking 1.cdf"
        write_pose_cdf(path, random_poses(rng, 20, 32) * 1000.0)
    out = tmp_path / "cdf.h5"
    result = run("h36m", "--from-cdf", tmp_path / "cdf", "--out", out)
    assert result.exit_code == 0, result.output
    assert "S11" in result.stderr and "40" in result.stderr
    with h5py.File(out, "r") as f:
        assert f[action_path("S11", "Walking 1")]["keypoints_2d/gt"].shape == (4, 20, 17, 2)
