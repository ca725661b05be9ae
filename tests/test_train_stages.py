"""Stage 2's load-and-freeze map, against the authors' own (golden/stage2_map.json)."""

import json

import pytest
import torch

from rie_cli.errors import RieError
from rie_cli.model import ModelConfig, build_model
from rie_cli.skeleton import H36M_17
from rie_cli.training.options import TrainOptions, resolve_options
from rie_cli.training.stages import in_modules, set_frozen_mode, start_stage, transfer_encoders

ENCODERS = ["LocalLayer_Torso", "LocalLayer_LArm", "LocalLayer_RArm", "LocalLayer_LLeg", "LocalLayer_RLeg",
            "GlobalInfo"]


@pytest.fixture(scope="module")
def stage2_map(golden_dir):
    return json.loads((golden_dir / "stage2_map.json").read_text())


def _module(name: str) -> str:
    """Top-level module of a key, with FuseBlocks.<i> kept apart as the golden file does."""
    head = name.split(".")
    return ".".join(head[:2]) if head[0] == "FuseBlocks" else head[0]


def _count_by_module(names):
    counts = {}
    for n in names:
        counts[_module(n)] = counts.get(_module(n), 0) + 1
    return counts


def test_authors_stage1_checkpoint_gives_their_exact_map(golden_dir, stage2_map, tmp_path):
    """3,3,3,3,3 from the authors' stage-1 .bin: the same 317 loaded keys, 167 frozen and
    140 trainable parameters as their positional rule, and the loaded values are theirs."""
    golden = stage2_map["per_arc"]["3,3,3,3,3"]
    init = golden_dir / "ckpt_s1_arc33333_lfd256.bin"
    opts = resolve_options(TrainOptions(stage=2, data=tmp_path / "unused.h5", init=init))
    staged = start_stage(opts, H36M_17)

    assert sorted(staged.loaded) == sorted(golden["loaded_keys"])
    assert staged.frozen == golden["frozen_parameters"]
    assert staged.trainable == golden["trainable_parameters"]
    assert len(staged.model.state_dict()) == golden["stage2_state_dict_entries"]
    # The architecture came from the checkpoint, not from the defaults.
    assert (opts.filter_widths, opts.channels, opts.latent) == ((3, 3, 3, 3, 3), 256, 256)

    from rie_cli.model.checkpoint import read_checkpoint

    authors = read_checkpoint(init)["model_pos"]
    state = staged.model.state_dict()
    for key in golden["loaded_keys"]:
        assert torch.equal(state[key], authors[key]), key

    # Frozen encoders stay in train mode by default (BN statistics update, dropout on).
    staged.model.train()
    set_frozen_mode(staged.model, staged.frozen_modules, frozen_eval=False)
    assert all(getattr(staged.model, m).training for m in ENCODERS)
    set_frozen_mode(staged.model, staged.frozen_modules, frozen_eval=True)
    assert not any(getattr(staged.model, m).training for m in ENCODERS)
    assert staged.model.FuseBlocks.training and staged.model.Integration_Torso.training


def test_map_by_module_name_for_every_architecture(stage2_map):
    """Architectures where the authors' positional rule breaks: whole encoders load and
    freeze (each LocalLayer as large as the complete first one, GlobalInfo as in 3,3,3,3,3),
    nothing else does, and the entry counts match the authors' models."""
    global_info = stage2_map["per_arc"]["3,3,3,3,3"]
    for arc, golden in stage2_map["per_arc"].items():
        widths = tuple(int(w) for w in arc.split(","))
        small = dict(filter_widths=widths, channels=8, latent=8, fc_width=16)  # counts do not depend on sizes
        stage1 = build_model(ModelConfig(**small))
        stage2 = build_model(ModelConfig(fusion=True, **small))
        assert len(stage1.state_dict()) == golden["stage1_state_dict_entries"], arc
        assert len(stage2.state_dict()) == golden["stage2_state_dict_entries"], arc
        assert len(list(stage2.named_parameters())) == golden["stage2_named_parameters"], arc

        loaded = transfer_encoders(stage2, stage1.state_dict())
        frozen = [n for n, p in stage2.named_parameters() if not p.requires_grad]
        full_local = golden["loaded_from_stage1_by_module"]["LocalLayer_Torso"]
        full_local_frozen = golden["frozen_by_module"]["LocalLayer_Torso"]
        expected_loaded = {m: full_local for m in ENCODERS[:5]}
        expected_loaded["GlobalInfo"] = global_info["loaded_from_stage1_by_module"]["GlobalInfo"]
        expected_frozen = {m: full_local_frozen for m in ENCODERS[:5]}
        expected_frozen["GlobalInfo"] = global_info["frozen_by_module"]["GlobalInfo"]
        assert _count_by_module(loaded) == expected_loaded, arc
        assert _count_by_module(frozen) == expected_frozen, arc
        assert all(in_modules(n, ENCODERS) for n in frozen)
        for key in loaded:
            assert torch.equal(stage2.state_dict()[key], stage1.state_dict()[key])


def test_transfer_refuses_other_architecture():
    small = dict(channels=8, latent=8, fc_width=16)
    stage1 = build_model(ModelConfig(filter_widths=(3, 3), **small))
    stage2 = build_model(ModelConfig(filter_widths=(3, 3, 3), fusion=True, **small))
    with pytest.raises(RieError, match="not a compatible stage-1 model"):
        transfer_encoders(stage2, stage1.state_dict())
