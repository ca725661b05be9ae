"""The cameras-file schema (rie_cli.cameras.check_cameras_entry): every missing or wrong
field is one `error:` line naming the file, the camera (and subject) and the field,
through both commands that read cameras files, before any other work; valid files,
HumanEva-style cameras without intrinsics included, still load."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import save_small_checkpoint
from rie_cli.cameras import builtin_cameras, check_cameras_entry, load_cameras_file
from rie_cli.cli import app
from rie_cli.errors import RieError
from test_api import _walk

runner = CliRunner()
DEMO = Path(__file__).resolve().parents[1] / "data" / "bnmocap-demo"
GOOD = json.loads((DEMO / "cameras_bnmocap.json").read_text())  # {"bnmocap": entry}, 4 cameras, 3 subjects
FIRST, SECOND, LAST = "54138969", "55011271", "60457274"  # ids of cameras 0, 1 and 3


def _set(path: list, value):
    """A change to the demo entry: set (or, with value None, delete) entry[path...]."""
    def change(entry):
        *parents, key = path
        for p in parents:
            entry = entry[p]
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    return change


def _extrinsics(subject: str, index: int, key: str, value=None):
    return _set(["extrinsics", subject, index, key], value)


# (change to the demo file's entry, what the error line says after "<file>: ")
CASES = {
    "focal_length missing": (_set(["intrinsics", 0, "focal_length"], None),
                             f"camera {FIRST}: 'focal_length' missing"),
    "center missing": (_set(["intrinsics", 1, "center"], None), f"camera {SECOND}: 'center' missing"),
    "radial_distortion missing": (_set(["intrinsics", 0, "radial_distortion"], None),
                                  f"camera {FIRST}: 'radial_distortion' missing"),
    "tangential_distortion missing": (_set(["intrinsics", 3, "tangential_distortion"], None),
                                      f"camera {LAST}: 'tangential_distortion' missing"),
    "res_w missing": (_set(["intrinsics", 1, "res_w"], None), f"camera {SECOND}: 'res_w' missing"),
    "res_h zero": (_set(["intrinsics", 0, "res_h"], 0), f"camera {FIRST}: 'res_h' must be a positive whole number"),
    "res_w fractional": (_set(["intrinsics", 0, "res_w"], 999.5), "'res_w' must be a positive whole number"),
    "id missing": (_set(["intrinsics", 1, "id"], None), "camera 1 (counting from 0): 'id' missing"),
    "focal_length short": (_set(["intrinsics", 0, "focal_length"], [1145.0]),
                           f"camera {FIRST}: 'focal_length' must be a list of 2 numbers, got [1145.0]"),
    "focal_length negative": (_set(["intrinsics", 0, "focal_length"], [-1.0, 1.0]),
                              "'focal_length' must be positive"),
    "center text": (_set(["intrinsics", 0, "center"], "middle"), "'center' must be a list of 2 numbers"),
    "radial_distortion NaN": (_set(["intrinsics", 0, "radial_distortion"], [float("nan"), 0.0, 0.0]),
                              f"camera {FIRST}: 'radial_distortion' must be finite"),
    "misspelt field": (_set(["intrinsics", 0, "focal_lenght"], [1.0, 1.0]),
                       f"camera {FIRST}: unknown field 'focal_lenght'"),
    "camera not an object": (_set(["intrinsics", 2], [1, 2]), "camera 2 (counting from 0) must be an object"),
    "orientation missing": (_extrinsics("BN2-normal", 3, "orientation"),
                            f"camera {LAST} of BN2-normal: 'orientation' missing"),
    "translation short": (_extrinsics("BN2-active", 0, "translation", [1.0, 2.0]),
                          f"camera {FIRST} of BN2-active: 'translation' must be a list of 3 numbers"),
    "orientation not unit": (_extrinsics("BN2-active", 1, "orientation", [1.0, 1.0, 0.0, 0.0]),
                             f"camera {SECOND} of BN2-active: 'orientation' must be a unit quaternion"),
    "one view left empty": (_set(["extrinsics", "BN2-feminine", 2], {}), "of BN2-feminine: 'orientation' missing"),
    "too few views": (_set(["extrinsics", "BN2-normal"], GOOD["bnmocap"]["extrinsics"]["BN2-normal"][:3]),
                      "subject BN2-normal has 3 extrinsics for 4 cameras"),
    "fps negative": (_set(["fps"], -50), "'fps' must be a positive number, got -50"),
    "intrinsics missing": (_set(["intrinsics"], None), "'intrinsics' missing"),
}


def _broken_file(tmp_path: Path, case: str) -> Path:
    change, _ = CASES[case]
    doc = copy.deepcopy(GOOD)
    change(doc["bnmocap"])
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(doc))  # NaN is written as the JSON extension json.loads reads back
    return path


@pytest.fixture(scope="module")
def predict_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict_inputs")
    np.save(folder / "kp.npy", _walk(20).astype(np.float32))  # pixels of a 1000 x 800 image
    return save_small_checkpoint(folder / "ckpt.bin"), folder / "kp.npy"


def _assert_one_line(result, expected: str, path: Path, out: Path) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: "), lines[0]  # the file first
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepare_data_names_camera_and_field(tmp_path, case):
    path, out = _broken_file(tmp_path, case), tmp_path / "out.h5"
    result = runner.invoke(app, ["prepare-data", "bnmocap", "--data-dir", str(DEMO), "--cameras", str(path),
                                 "--test-subjects", "BN2-normal", "--out", str(out)])
    _assert_one_line(result, CASES[case][1], path, out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_predict_names_camera_and_field(tmp_path, case, predict_inputs):
    checkpoint, keypoints = predict_inputs
    path, out = _broken_file(tmp_path, case), tmp_path / "out.npz"
    result = runner.invoke(app, ["predict", "-c", str(checkpoint), "-k", str(keypoints), "-o", str(out),
                                 "--cameras", str(path), "--camera", "0", "--camera-subject", "BN2-normal"])
    _assert_one_line(result, CASES[case][1], path, out)


def test_valid_files_still_load(tmp_path, predict_inputs):
    demo = load_cameras_file(DEMO / "cameras_bnmocap.json")
    assert sorted(demo.cameras) == ["BN2-active", "BN2-feminine", "BN2-normal"]
    assert all(c.has_intrinsics and c.has_extrinsics for c in demo.for_subject("BN2-normal"))
    for dataset in ("h36m", "humaneva"):  # the package's own file passes the same check
        assert builtin_cameras(dataset).intrinsics_only
    # rie predict with a valid file: the camera's image size and id reach the output.
    checkpoint, keypoints = predict_inputs
    out = tmp_path / "out.npz"
    result = runner.invoke(app, ["predict", "-c", str(checkpoint), "-k", str(keypoints), "-o", str(out),
                                 "--cameras", str(DEMO / "cameras_bnmocap.json"), "--camera", SECOND,
                                 "--camera-subject", "BN2-normal"])
    assert result.exit_code == 0, result.output
    with np.load(out) as written:
        size = (GOOD["bnmocap"]["intrinsics"][1]["res_w"], GOOD["bnmocap"]["intrinsics"][1]["res_h"])
        assert (int(written["width"]), int(written["height"]), str(written["camera"])) == (*size, SECOND)


def test_cameras_without_intrinsics_are_fine(tmp_path):
    """HumanEva-I's published cameras: image size and extrinsics, no intrinsics at all."""
    entry = copy.deepcopy(GOOD["bnmocap"])
    for camera in entry["intrinsics"]:
        for key in ("focal_length", "center", "radial_distortion", "tangential_distortion"):
            del camera[key]
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"mine": entry}))
    camera = load_cameras_file(path).for_subject("BN2-active")[0]
    assert camera.has_extrinsics and not camera.has_intrinsics
    # What the code writes back out (the prepared file's /cameras entry) passes the check too.
    for dataset in ("h36m", "humaneva"):
        cameras = builtin_cameras(dataset)
        check_cameras_entry({"fps": cameras.fps, "intrinsics": [c.to_dict() for c in cameras.intrinsics_only]},
                            "written")
    assert "radial_distortion" not in builtin_cameras("humaneva").intrinsics_only[0].to_dict()


def test_errors_name_the_dataset_where_the_file_holds_several(tmp_path):
    entry = copy.deepcopy(GOOD["bnmocap"])
    del entry["intrinsics"][0]["center"]
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"bnmocap": entry, "other": GOOD["bnmocap"]}))
    with pytest.raises(RieError, match="^" + re.escape(f"{path} (bnmocap): camera {FIRST}: 'center' missing")):
        load_cameras_file(path, "bnmocap")
    assert load_cameras_file(path, "other").name == "other"
