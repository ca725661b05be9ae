"""Parity with the authors' code: their checkpoints load with no flags and give their numbers.

Every `ckpt_*.bin` in the golden folder is loaded once (module-scoped fixture) and its
outputs are compared with the arrays the authors' model produced (golden README).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rie_cli.inference import predict_many, predict_sequence
from rie_cli.windowing import mirror
from rie_cli.model import count_parameters
from rie_cli.model.checkpoint import load_checkpoint
from rie_cli.skeleton import H36M_17

ATOL = 1e-5
REPO = Path(__file__).resolve().parents[1]
_GOLDEN = Path(os.environ.get("RIE_SHARED_DIR", REPO.parent / "shared")) / "golden"
# Collected from the folder so that a new golden file is tested without editing this
# list; where the folder is absent one placeholder name lets `golden_dir` skip cleanly.
NAMES = sorted(p.name[len("ckpt_") : -len(".bin")] for p in _GOLDEN.glob("ckpt_*.bin")) or ["absent"]


@pytest.fixture(scope="module", params=NAMES)
def golden(request, golden_dir):
    name = request.param
    loaded = load_checkpoint(golden_dir / f"ckpt_{name}.bin")  # no architecture flags
    config = json.loads((golden_dir / f"config_{name}.json").read_text())
    with np.load(golden_dir / f"io_{name}.npz") as io:
        arrays = {k: io[k] for k in io.files}
    yield name, loaded, config, arrays
    del loaded


def run(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_architecture_is_inferred_from_shapes(golden):
    _, loaded, config, _ = golden
    ctor = config["constructor"]
    assert loaded.origin == "authors-rie"
    assert loaded.stage == (1 if ctor["stage"] == 1 else 3)
    assert loaded.config.filter_widths == tuple(ctor["filter_widths"])
    assert loaded.config.channels == ctor["channels"]
    assert loaded.config.latent == ctor["latten_features"]
    assert loaded.config.fusion == (ctor["stage"] != 1)
    assert loaded.config.num_joints == ctor["num_joints_in"] == 17
    assert loaded.missing_keys == [] and loaded.unexpected_keys == []
    assert any("inferred from tensor shapes" in m for m in loaded.messages)
    assert loaded.epoch == 80
    assert isinstance(loaded.raw["random_state"], np.random.RandomState)
    assert len(loaded.raw["optimizer"]["state"]) == config["checkpoint"]["optimizer_state_entries"]
    assert not loaded.model.training


def test_parameter_count_matches(golden):
    _, loaded, config, _ = golden
    assert count_parameters(loaded.model) == config["num_parameters"]
    assert len(loaded.model.state_dict()) == config["num_state_dict_entries"]
    assert loaded.model.receptive_field() == config["receptive_field"]


def test_single_window_outputs(golden):
    _, loaded, _, io = golden
    perm = torch.as_tensor(H36M_17.flip_permutation())
    out_rf = run(loaded.model, io["x_rf"])
    out_rf_flip = run(loaded.model, io["x_rf_flip"])
    np.testing.assert_allclose(out_rf, io["out_rf"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out_rf_flip, io["out_rf_flip"], atol=ATOL, rtol=0)
    # Our mirroring of the input reproduces the authors' flipped windows exactly.
    np.testing.assert_array_equal(mirror(io["x_rf"], perm), io["x_rf_flip"])
    tta = (out_rf + mirror(out_rf_flip, perm)) / 2
    np.testing.assert_allclose(tta, io["out_rf_tta"], atol=ATOL, rtol=0)


def test_sliding_window_outputs(golden):
    _, loaded, config, io = golden
    rf = config["receptive_field"]
    x_long = io["x_long"]  # (B, T, J, 2)
    count = io["out_win"].shape[1]
    windows = np.stack([x_long[:, t : t + rf] for t in range(count)], axis=1)  # (B, W, R, J, 2)
    flat = windows.reshape(-1, rf, 17, 2)
    perm = torch.as_tensor(H36M_17.flip_permutation())
    flipped = mirror(flat, perm)
    out = run(loaded.model, np.concatenate([flat, flipped]))[:, 0]  # (2 B W, J, 3)
    plain, mirrored = out[: len(flat)], out[len(flat) :]
    shape = io["out_win"].shape
    np.testing.assert_allclose(plain.reshape(shape), io["out_win"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(mirrored.reshape(shape), io["out_win_flip"], atol=ATOL, rtol=0)
    tta = (plain + mirror(mirrored, perm)) / 2
    np.testing.assert_allclose(tta.reshape(shape), io["out_win_tta"], atol=ATOL, rtol=0)


def test_sequence_outputs(golden):
    _, loaded, _, io = golden
    plain = np.stack(predict_many(loaded.model, list(io["x_long"]), skeleton=H36M_17, tta=False))
    np.testing.assert_allclose(plain, io["seq_out"], atol=ATOL, rtol=0)
    # A small batch splits every sequence over several passes: same numbers.
    tta = np.stack([predict_sequence(loaded.model, seq, skeleton=H36M_17, tta=True, batch_size=200)
                    for seq in io["x_long"]])
    np.testing.assert_allclose(tta, io["seq_out_tta"], atol=ATOL, rtol=0)
