"""The folded evaluation form (rie_cli.model.folding) and the fast sequence path against the plain model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rie_cli import inference
from rie_cli.inference import evaluation_form, predict_many
from rie_cli.windowing import mirror
from rie_cli.model import ModelConfig, build_model
from rie_cli.model.folding import FoldedModel, NotFoldable, fold_model
from rie_cli.skeleton import H36M_17, SKELETONS

GOLDEN = ["gt256", "cpn512", "s1_arc333_lfd256", "s3_arc333_lfd256", "s1_arc33333_lfd256"]
ATOL = 1e-5  # the golden README's suggested tolerance; observed differences are below 1e-6


def random_model(seed=0, **kw) -> torch.nn.Module:
    """A small model whose BatchNorm layers do real work in eval mode."""
    config = dict(filter_widths=(3, 3), channels=32, latent=16, fc_width=64)
    config.update(kw)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**config))
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def random_walk(frames, joints=17, seed=0):
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.05, (frames, joints, 2)), axis=0) + rng.uniform(-0.5, 0.5, (1, joints, 2))
    return walk.astype(np.float32)


@pytest.mark.parametrize("name", GOLDEN)
def test_folded_golden_models_reproduce_the_authors_outputs(name, golden_dir):
    from rie_cli.model.checkpoint import load_checkpoint

    loaded = load_checkpoint(golden_dir / f"ckpt_{name}.bin")
    io = np.load(golden_dir / f"io_{name}.npz")
    folded = fold_model(loaded.model)
    assert isinstance(folded, FoldedModel)
    for x, out in (("x_rf", "out_rf"), ("x_rf_flip", "out_rf_flip")):
        got = folded(torch.from_numpy(io[x])).numpy()
        np.testing.assert_allclose(got, io[out], atol=ATOL, rtol=0)
    # Whole sequences, every frame from its own edge-padded window, with and without TTA.
    sequences = list(io["x_long"])
    for tta, key in ((False, "seq_out"), (True, "seq_out_tta")):
        got = predict_many(loaded.model, sequences, skeleton=H36M_17, tta=tta, batch_size=64)
        np.testing.assert_allclose(np.stack(got), io[key], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "config",
    [
        dict(fusion=True),
        dict(fusion=False, filter_widths=(5, 3)),
        dict(fusion=True, causal=True, filter_widths=(3, 3, 3)),
        dict(skeleton="humaneva15", num_joints=15, fusion=True),
        dict(arch="videopose3d"),
        dict(arch="videopose3d", causal=True, filter_widths=(3, 5)),
    ],
    ids=["rie-stage3", "rie-stage1-53", "rie-causal", "rie-humaneva", "videopose3d", "videopose3d-causal"],
)
def test_folded_equals_eager_on_windows(config):
    model = random_model(**config)
    rf = model.receptive_field()
    x = torch.from_numpy(np.stack([random_walk(rf, model.config.num_joints, seed=s) for s in range(5)]))
    with torch.no_grad():
        expected = model(x)
    folded = fold_model(model)
    got = folded(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=ATOL, rtol=0)
    folded(x.flip(0))  # reuses its buffers; earlier results stay intact
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=ATOL, rtol=0)
    # bfloat16 keeps about 3 significant digits.
    half = fold_model(model, torch.bfloat16)(x)
    assert half.dtype == torch.float32
    assert (half - expected).abs().max() < 0.02 * expected.abs().max()


@pytest.mark.parametrize("causal", [False, True])
def test_fast_path_equals_eager_path_on_many_sequences(causal):
    model = random_model(fusion=True, causal=causal, filter_widths=(3, 3, 3))
    sequences = [random_walk(n, seed=n) for n in (1, 40, 5, 27, 64, 2)]
    for tta in (False, True):
        eager = predict_many(model, sequences, skeleton=H36M_17, tta=tta, batch_size=50, fold=False)
        fast = predict_many(model, sequences, skeleton=H36M_17, tta=tta, batch_size=50)
        for a, b in zip(fast, eager):
            assert a.shape == b.shape and a.dtype == np.float32
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)


def test_chunks_of_frames_give_the_same_predictions(monkeypatch):
    model = random_model(fusion=True)
    sequences = [random_walk(n, seed=n) for n in (30, 7, 50, 3, 20)]
    whole = predict_many(model, sequences, skeleton=H36M_17, batch_size=16)
    monkeypatch.setattr(inference, "CHUNK_FRAMES", 32)
    done = []
    chunked = predict_many(model, sequences, skeleton=H36M_17, batch_size=16, progress=done.append)
    assert sum(done) == 110
    for a, b in zip(chunked, whole):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    assert inference._chunks([30, 7, 50, 3, 20], 32) == [[0], [1], [2], [3, 4]]
    assert inference._chunks([10, 10, 10], 25) == [[0, 1], [2]]


def test_flip_tta_is_exactly_the_mean_of_plain_and_mirrored_back():
    model = random_model(fusion=True)
    seq = random_walk(15, seed=9)
    perm = torch.as_tensor(H36M_17.flip_permutation())
    plain = predict_many(model, [seq], skeleton=H36M_17, tta=False)[0]
    mirrored = predict_many(model, [mirror(seq, perm)], skeleton=H36M_17,
                            tta=False)[0]
    both = predict_many(model, [seq], skeleton=H36M_17, tta=True)[0]
    expected = (plain + mirror(mirrored, perm)) / 2
    np.testing.assert_allclose(both, expected, atol=1e-6, rtol=0)


def test_folded_form_is_cached_until_the_weights_change():
    model = random_model(fusion=True)
    first = evaluation_form(model)
    assert evaluation_form(model) is first
    assert evaluation_form(model, "bf16") is not first
    seq = random_walk(12)
    before = predict_many(model, [seq], skeleton=H36M_17)[0]
    with torch.no_grad():
        model.GlobalInfo.fc_2.bias.add_(0.5)  # an in-place update, as an optimizer step makes
    assert evaluation_form(model) is not first
    after = predict_many(model, [seq], skeleton=H36M_17)[0]
    assert np.abs(after - before).max() > 0.1


def test_models_it_cannot_fold_run_as_they_are():
    class Constant(torch.nn.Module):
        """Not built by build_model: predicts each window's centre frame lifted to z = 1."""

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def receptive_field(self):
            return 5

        def forward(self, x):  # (B, 5, J, 2) -> (B, 1, J, 3)
            centre = x[:, 2:3]
            return torch.cat((centre, torch.ones_like(centre[..., :1])), dim=-1) * self.scale

    model = Constant()
    with pytest.raises(NotFoldable):
        fold_model(model)
    seq = random_walk(9)
    with pytest.warns(inference.SlowPathWarning, match="unfolded.*Constant is not a model built"):
        got = predict_many(model, [seq], skeleton=SKELETONS["h36m17"], tta=False)[0]
    np.testing.assert_allclose(got[..., :2], seq, atol=1e-7)


def test_folded_form_follows_the_modules_and_refuses_what_it_does_not_know():
    # Built from the modules, not from state-dict names: a changed activation is folded as it is
    # (outputs still equal the eager model's), an unknown layer kind is refused with its reason.
    model = random_model(fusion=True)
    for module in model.GlobalInfo.modules():
        if isinstance(module, torch.nn.LeakyReLU):
            module.negative_slope = 0.1
    x = torch.from_numpy(np.stack([random_walk(9, seed=s) for s in range(3)]))  # (3, 9, 17, 2)
    with torch.no_grad():
        np.testing.assert_allclose(fold_model(model)(x).numpy(), model(x).numpy(), atol=1e-5, rtol=0)
    model.GlobalInfo.fc_1 = torch.nn.Identity()
    with pytest.raises(NotFoldable, match="expected a Linear layer, found Identity"):
        fold_model(model)
