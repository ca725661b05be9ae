"""The models themselves: layout against the authors' state dicts, grouping, shapes, training."""

from __future__ import annotations

import json

import pytest
import torch

from rie_cli.errors import RieError
from rie_cli.model import ModelConfig, build_model, count_parameters
from rie_cli.skeleton import SKELETONS

GOLDEN_CONFIGS = ["s1_arc333_lfd256", "s3_arc333_lfd256", "cpn512", "gt256", "s1_arc33333_lfd256"]


def small_config(**kw) -> ModelConfig:
    base = dict(filter_widths=(3, 3), channels=32, latent=16, fc_width=64)
    base.update(kw)
    return ModelConfig(**base)


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine terms, so eval mode does real work."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("name", GOLDEN_CONFIGS)
def test_state_dict_layout_matches_the_authors(golden_dir, name):
    golden = json.loads((golden_dir / f"config_{name}.json").read_text())
    ctor = golden["constructor"]
    config = ModelConfig(
        filter_widths=tuple(ctor["filter_widths"]), channels=ctor["channels"], latent=ctor["latten_features"],
        dropout=ctor["dropout"], causal=ctor["causal"], fusion=ctor["stage"] != 1,
    )
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_model(config)
    layout = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert layout == golden["state_dict"]  # same keys, shapes, dtypes and order
    assert count_parameters(model) == golden["num_parameters"]
    assert len(list(model.named_parameters())) == golden["num_named_parameters"]
    assert model.receptive_field() == golden["receptive_field"]


def test_cpn_model_has_the_published_parameter_count():
    with torch.device("meta"):
        model = build_model(ModelConfig(latent=512, fusion=True))
    assert count_parameters(model) == 52_861_491


@pytest.mark.parametrize("arch", ["rie", "videopose3d"])
@pytest.mark.parametrize("skeleton", ["h36m17", "humaneva15"])
def test_forward_shapes(arch, skeleton):
    joints = SKELETONS[skeleton].num_joints
    model = build_model(small_config(arch=arch, skeleton=skeleton, num_joints=joints,
                                     fusion=arch == "rie", filter_widths=(3, 5)))
    assert model.receptive_field() == 15
    out = model(torch.randn(4, 15, joints, 2))
    assert out.shape == (4, 1, joints, 3)
    with pytest.raises(ValueError, match="windows"):
        model(torch.randn(4, 16, joints, 2))


@pytest.mark.parametrize("skeleton", ["h36m17", "humaneva15"])
def test_part_grouping_comes_from_the_skeleton(skeleton):
    # Without fusion, a change to one joint in a frame other than the reference frame
    # reaches only that joint's part encoder (the global encoder sees the reference
    # frame alone), so only that part's decoded joints may move.
    skel = SKELETONS[skeleton]
    torch.manual_seed(0)
    model = build_model(small_config(skeleton=skeleton, num_joints=skel.num_joints)).eval()
    randomise_batchnorm(model)
    x = torch.randn(2, 9, skel.num_joints, 2)
    base = model(x)
    for part in skel.parts:
        if 0 in part.joints:
            continue  # the root feeds every part through the positional encoding
        moved = x.clone()
        moved[:, 1, part.joints[-1]] += 0.5
        changed = (model(moved) - base).abs().amax(dim=(0, 1, 3)) > 1e-6  # (J,)
        assert changed.nonzero().flatten().tolist() == list(part.joints), part.name


def test_fusion_mixes_parts():
    torch.manual_seed(0)
    model = build_model(small_config(fusion=True)).eval()
    x = torch.randn(2, 9, 17, 2)
    moved = x.clone()
    moved[:, 1, 16] += 0.5  # a wrist, away from the reference frame
    changed = (model(moved) - model(x)).abs().amax(dim=(0, 1, 3)) > 1e-6
    assert changed.all()  # through FuseBlocks every part sees every other part


def test_causal_model_refers_to_the_last_frame():
    model = build_model(small_config(causal=True))
    assert model.reference_frame == model.receptive_field() - 1
    assert build_model(small_config()).reference_frame == model.receptive_field() // 2


def test_config_round_trip_and_validation():
    config = small_config(arch="rie", fusion=True, causal=True, filter_widths=[3, 5, 1])
    assert config.filter_widths == (3, 5, 1)
    assert config.receptive_field() == 15 and config.pad == 7 and config.causal_shift == 7
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(RieError, match="odd"):
        ModelConfig(filter_widths=(3, 4))
    with pytest.raises(RieError, match="unknown model config fields: colour"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "red"})
    with pytest.raises(RieError, match="architecture"):
        ModelConfig(arch="transformer")
    with pytest.raises(RieError, match="15 joints"):
        ModelConfig(skeleton="humaneva15", num_joints=17)


def test_set_bn_momentum_reaches_every_temporal_block():
    model = build_model(small_config(fusion=True))
    model.set_bn_momentum(0.01)
    temporal = [m for name, m in model.named_modules() if name.startswith("LocalLayer_")
                and isinstance(m, torch.nn.BatchNorm1d)]
    assert len(temporal) == 5 * 3 and all(m.momentum == 0.01 for m in temporal)
    assert model.GlobalInfo.bn_1.momentum == 0.1  # fully connected blocks keep theirs
    vp3d = build_model(small_config(arch="videopose3d"))
    vp3d.set_bn_momentum(0.02)
    assert vp3d.expand_bn.momentum == 0.02 and all(bn.momentum == 0.02 for bn in vp3d.layers_bn)


@pytest.mark.parametrize("arch", ["rie", "videopose3d"])
def test_a_few_training_steps_lower_the_loss(arch):
    torch.manual_seed(1)
    config = small_config(arch=arch, fusion=arch == "rie")
    model = build_model(config).train()
    rf = config.receptive_field()
    # A learnable target: depth and lateral position follow the 2D centre frame.
    x = torch.randn(96, rf, 17, 2) * 0.3  # (B, R, J, 2)
    centre = x[:, rf // 2]  # (B, J, 2)
    y = torch.cat((centre * 0.8, (centre[..., :1] - centre[..., 1:]) * 0.5), dim=-1).unsqueeze(1)  # (B, 1, J, 3)
    y = y - y[:, :, :1]  # root-relative
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, amsgrad=True)

    def mpjpe() -> torch.Tensor:
        return (model(x) - y).norm(dim=-1).mean()

    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = mpjpe()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_device_names_are_checked():
    from rie_cli.devices import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(RieError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(RieError, match="CUDA is not available"):
            resolve_device("cuda:0")
