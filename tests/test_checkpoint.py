"""Checkpoints on small generated models: this project's format, the authors', VideoPose3D's,
and the files that must be refused."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
import torch

from helpers import small_model
from rie_cli.errors import RieError
from rie_cli.model.checkpoint import (
    checkpoint_payload,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def outputs(model, joints: int = 17) -> torch.Tensor:
    x = torch.linspace(-1, 1, 3 * model.receptive_field() * joints * 2).reshape(3, -1, joints, 2)
    with torch.inference_mode():
        return model(x.cpu())


def authors_style_file(path, state_dict: dict, **extra) -> None:
    """What the authors' run.py (and VideoPose3D's) write: a plain torch.save dict."""
    payload = {"epoch": 12, "lr": 0.00095, "random_state": np.random.RandomState(1234),
               "optimizer": {"state": {}, "param_groups": []}, "model_pos": state_dict}
    payload.update(extra)
    torch.save(payload, path)


def test_own_checkpoint_round_trip_with_weights_only(tmp_path):
    model = small_model(fusion=True, causal=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, amsgrad=True)
    model.train()
    model(torch.randn(4, 9, 17, 2)).sum().backward()
    optimizer.step()
    model.eval()
    path = tmp_path / "ckpt" / "stage_2_epoch_3.pt"
    payload = checkpoint_payload(
        model, stage=2, epoch=3, optimizer=optimizer.state_dict(),
        rng={"torch": torch.get_rng_state(), "numpy": np.random.default_rng(5).bit_generator.state},
        metrics={"mpjpe": [51.5, 48.25]},
    )
    save_checkpoint(path, payload)
    plain = torch.load(path, weights_only=True)  # no extra globals needed
    assert plain["format"] == "rie-checkpoint" and plain["stage"] == 2
    loaded = load_checkpoint(path)
    assert loaded.origin == "rie" and loaded.stage == 2 and loaded.epoch == 3
    assert loaded.config == model.config
    assert loaded.missing_keys == [] and loaded.unexpected_keys == []
    torch.testing.assert_close(outputs(loaded.model), outputs(model), rtol=0, atol=0)
    assert list(tmp_path.joinpath("ckpt").iterdir()) == [path]  # no temporary file left


def test_save_refuses_objects_weights_only_cannot_read_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"format": "rie-checkpoint", "note": "first"})
    with pytest.raises(TypeError, match=r"payload\['metrics'\]\['mpjpe'\] is a numpy"):
        save_checkpoint(path, {"metrics": {"mpjpe": np.float64(3.0)}})
    assert read_checkpoint(path)["note"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_compiled_model_prefix_is_removed(tmp_path):
    model = small_model()
    payload = checkpoint_payload(model, stage=1)
    payload["model"] = {f"_orig_mod.{k}": v for k, v in payload["model"].items()}
    save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert any("_orig_mod." in m for m in loaded.messages)
    torch.testing.assert_close(outputs(loaded.model), outputs(model), rtol=0, atol=0)


@pytest.mark.parametrize("skeleton, joints, widths", [("h36m17", 17, (3, 5, 3)), ("humaneva15", 15, (3, 3))])
@pytest.mark.parametrize("fusion", [False, True])
def test_authors_format_is_inferred(tmp_path, skeleton, joints, widths, fusion):
    model = small_model(skeleton=skeleton, num_joints=joints, filter_widths=widths, fusion=fusion, latent=24)
    path = tmp_path / "authors.bin"
    authors_style_file(path, model.state_dict())
    loaded = load_checkpoint(path)
    assert loaded.origin == "authors-rie"
    assert loaded.stage == (3 if fusion else 1)
    c = loaded.config
    assert (c.skeleton, c.num_joints, c.filter_widths, c.channels, c.latent, c.fusion, c.fc_width) == (
        skeleton, joints, widths, 32, 24, fusion, 64)
    assert any("causal mode is not stored" in m for m in loaded.messages)
    torch.testing.assert_close(outputs(loaded.model, joints), outputs(model, joints), rtol=0, atol=0)
    assert isinstance(loaded.raw["random_state"], np.random.RandomState)


@pytest.mark.parametrize("joints, skeleton", [(17, "h36m17"), (15, "humaneva15")])
def test_videopose3d_checkpoint_round_trip(tmp_path, joints, skeleton):
    model = small_model(arch="videopose3d", skeleton=skeleton, num_joints=joints, filter_widths=(3, 3, 3), channels=48)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    keys = list(model.state_dict())
    assert keys[:3] == ["expand_bn.weight", "expand_bn.bias", "expand_bn.running_mean"]
    assert {"expand_conv.weight", "layers_conv.3.weight", "layers_bn.3.running_var", "shrink.bias"} <= set(keys)
    assert model.state_dict()["shrink.weight"].shape == (3 * joints, 48, 1)
    path = tmp_path / "pretrained_vp3d.bin"
    # VideoPose3D's own checkpoint dict: epoch, lr, optimizer, model_pos (+ random_state, model_traj).
    authors_style_file(path, model.state_dict(), optimizer=optimizer.state_dict(), model_traj=None)
    loaded = load_checkpoint(path)
    assert loaded.origin == "videopose3d" and loaded.stage == 1
    assert loaded.config.arch == "videopose3d"
    assert (loaded.config.num_joints, loaded.config.filter_widths, loaded.config.channels) == (joints, (3, 3, 3), 48)
    torch.testing.assert_close(outputs(loaded.model, joints), outputs(model, joints), rtol=0, atol=0)


def test_missing_keys_are_refused_or_reported(tmp_path):
    model = small_model(fusion=True)
    state = model.state_dict()
    del state["FuseBlocks.2.fc_2.bias"]
    del state["Integration_LArm.bn_1.num_batches_tracked"]
    state["extra.weight"] = torch.zeros(2)
    authors_style_file(tmp_path / "partial.bin", state)
    with pytest.raises(RieError, match="lacks 1 weights the model needs, e.g. 'FuseBlocks.2.fc_2.bias'"):
        load_checkpoint(tmp_path / "partial.bin")
    loaded = load_checkpoint(tmp_path / "partial.bin", strict=False)
    assert loaded.missing_keys == ["FuseBlocks.2.fc_2.bias", "Integration_LArm.bn_1.num_batches_tracked"]
    assert loaded.unexpected_keys == ["extra.weight"]
    assert any(m.startswith("missing keys (2)") for m in loaded.messages)
    assert any(m.startswith("unexpected keys (1)") for m in loaded.messages)


def test_wrong_shapes_are_refused(tmp_path):
    model = small_model()
    payload = checkpoint_payload(model, stage=1)
    payload["config"]["channels"] = 64  # the config no longer matches the weights
    save_checkpoint(tmp_path / "bad.pt", payload)
    with pytest.raises(RieError, match=r"does not fit the model: '.*' has shape \[32.*expects \[64"):
        load_checkpoint(tmp_path / "bad.pt")
    state = model.state_dict()
    state["GlobalInfo.fc_1.weight"] = torch.zeros(64, 33)  # 33 inputs: not 2 per joint
    authors_style_file(tmp_path / "odd.bin", state)
    with pytest.raises(RieError, match="not 2 per joint"):
        load_checkpoint(tmp_path / "odd.bin")


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    with pytest.raises(RieError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.bin")
    (tmp_path / "notes.txt").write_text("hello, not a checkpoint\n")
    with pytest.raises(RieError, match="is not a .*PyTorch checkpoint"):
        load_checkpoint(tmp_path / "notes.txt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(RieError, match="holds a list, not a checkpoint dict"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "nomodel.pt")
    with pytest.raises(RieError, match="not a model checkpoint"):
        load_checkpoint(tmp_path / "nomodel.pt")
    torch.save({"model_pos": {"encoder.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(RieError, match="neither an RIE nor a VideoPose3D model"):
        load_checkpoint(tmp_path / "other.pt")


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "full.pt"
    save_checkpoint(path, checkpoint_payload(small_model(), stage=1))
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RieError, match="maybe truncated"):
        load_checkpoint(tmp_path / "cut.pt")


def test_unsafe_objects_need_the_explicit_opt_in(tmp_path):
    model = small_model(arch="videopose3d")
    path = tmp_path / "odd.bin"
    authors_style_file(path, model.state_dict(), note=fractions.Fraction(1, 3))
    with pytest.raises(RieError, match=r"safe loading refuses \(fractions.Fraction\)"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, allow_unsafe=True)
    assert loaded.raw["note"] == fractions.Fraction(1, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "c.pt", checkpoint_payload(small_model(), stage=1))
    with pytest.raises(RieError, match="CUDA is not available"):
        load_checkpoint(tmp_path / "c.pt", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loads_onto_cuda(tmp_path):
    model = small_model()
    save_checkpoint(tmp_path / "c.pt", checkpoint_payload(model, stage=1))
    loaded = load_checkpoint(tmp_path / "c.pt", device="cuda")
    assert next(loaded.model.parameters()).is_cuda
