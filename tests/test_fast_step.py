"""The training step's fast form against the reference form (nn.Conv1d, nn.Dropout: the step as it was).

Both forms compute the same function; the fast form orders the float operations
differently and draws its dropout masks another way (`dropout_mask`: same keep
probability to 3e-6, unbiased). So, with dropout off, forward passes agree to float
rounding in train and eval mode, gradients too, and a few optimizer steps give the
same losses; the masks are tested on their own.
"""

import copy

import pytest
import torch

from rie_cli.model import ModelConfig, build_model
from rie_cli.model.blocks import Dropout, TemporalBlock, dropout_mask, use_conv_form
from rie_cli.training.steps import make_optimizer, mpjpe_loss

CONFIGS = {
    "rie stage 1": ModelConfig(filter_widths=(3, 3, 3), channels=32, latent=16, fc_width=64),
    "rie stage 3": ModelConfig(filter_widths=(3, 3), channels=32, latent=16, fc_width=64, fusion=True),
    "rie causal": ModelConfig(filter_widths=(3, 5), channels=32, latent=16, fc_width=64, causal=True),
    "videopose3d": ModelConfig(arch="videopose3d", filter_widths=(3, 3, 3), channels=32),
}


@pytest.fixture(autouse=True)
def matmul_form():
    old = use_conv_form(False)
    yield
    use_conv_form(old)


def _without_dropout(model):
    """The two forms draw different masks: compare the rest of the step with dropout off."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _data(config, batch=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    rf = config.receptive_field()
    return torch.randn(batch, rf, 17, 2, generator=g) * 0.1, torch.randn(batch, 1, 17, 3, generator=g) * 0.1


def _forward(model, x, conv_form: bool, seed: int = 5):
    use_conv_form(conv_form)
    torch.manual_seed(seed)  # the dropout masks
    return model(x)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_outputs_and_gradients_as_the_conv_form(name):
    config = CONFIGS[name]
    torch.manual_seed(0)
    model = _without_dropout(build_model(config).train())
    x, y = _data(config)
    grads = []
    for conv_form in (True, False):
        model.zero_grad(set_to_none=True)
        out = _forward(model, x, conv_form)
        mpjpe_loss(out, y).backward()
        grads.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (ref, ref_grads), (new, new_grads) = grads
    torch.testing.assert_close(new, ref, rtol=1e-4, atol=5e-6)  # float rounding; a wrong step moves O(0.1)
    # Tolerances on the scale of all gradients: some are pure rounding noise (a bias
    # followed by BatchNorm has an exact gradient of 0).
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for n, g in ref_grads.items():
        torch.testing.assert_close(new_grads[n], g, rtol=1e-4, atol=1e-5 * scale, msg=n)
    model.eval()
    torch.testing.assert_close(_forward(model, x, False), _forward(model, x, True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["rie stage 1", "videopose3d"])
def test_a_few_steps_train_alike(name):
    """Adam turns gradients that are pure rounding noise into full-size steps, so weights
    are compared through what they compute (losses, eval outputs), not element by element."""
    config = CONFIGS[name]
    torch.manual_seed(0)
    base = _without_dropout(build_model(config).train())
    x, y = _data(config)
    runs = []
    for conv_form in (True, False):
        model = copy.deepcopy(base)
        optimizer = make_optimizer(list(model.parameters()), 1e-3, torch.device("cpu"))
        use_conv_form(conv_form)
        torch.manual_seed(7)
        losses = []
        for _ in range(3):
            loss = mpjpe_loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        runs.append((losses, _forward(model.eval(), x, conv_form).detach()))
    (ref_losses, ref_out), (losses, out) = runs
    assert losses == pytest.approx(ref_losses, rel=1e-4)
    torch.testing.assert_close(out, ref_out, rtol=1e-3, atol=1e-3)


def test_blocks_take_several_windows_end_to_end():
    """The (B, C, k*R) interface: k windows laid end to end give k outputs, in both forms."""
    torch.manual_seed(0)
    block = TemporalBlock(12, 7, (3, 3), channels=16).eval()
    x = torch.randn(4, 12, 5 * 9)
    out = block(x)
    assert out.shape == (4, 7, 5)
    use_conv_form(True)
    torch.testing.assert_close(out, block(x), rtol=1e-5, atol=1e-6)


def test_dropout_mask_keeps_at_the_rate_and_is_unbiased():
    torch.manual_seed(0)
    mask = dropout_mask((4000, 500), 0.2)
    values = torch.unique(mask)
    assert values.tolist() == [0.0, pytest.approx(65536 / 52429)]  # 0 or 1 / keep probability
    keep = (mask > 0).double().mean().item()
    assert keep == pytest.approx(52429 / 65536, abs=4 * (0.16 / 2e6) ** 0.5)  # 4 standard errors
    assert mask.double().mean().item() == pytest.approx(1.0, abs=2e-3)
    torch.manual_seed(0)
    assert torch.equal(dropout_mask((4000, 500), 0.2), mask)  # seeded: reproducible
    assert not torch.equal(dropout_mask((4000, 500), 0.2), mask)  # and fresh every call
    odd = dropout_mask((3, 5, 7), 0.5, torch.bfloat16)  # any shape (not a multiple of 4), any dtype
    assert odd.shape == (3, 5, 7) and odd.dtype == torch.bfloat16
    assert not dropout_mask((8, 8), 1.0).any()  # p = 1 drops everything, as nn.Dropout(1.0)


@pytest.mark.parametrize("p", [1e-7, 1e-6, 7e-6, 8e-6, 1e-5])
def test_a_tiny_dropout_keeps_almost_everything(p):
    # Below 2^-17 the keep probability rounds to 1: the int16 threshold used to wrap
    # around and drop every element (`rie train --dropout 1e-6` trained on zeros).
    mask = dropout_mask((200, 500), p)
    assert (mask != 0).float().mean() > 0.999
    assert abs(float(mask.double().mean()) - 1.0) < 1e-3


def test_dropout_module_uses_the_fast_masks_only_in_cpu_training():
    drop = Dropout(0.25)
    x = torch.ones(64, 256)
    torch.manual_seed(3)
    fast = drop(x)
    torch.manual_seed(3)
    assert torch.equal(fast, dropout_mask(x.shape, 0.25))
    assert torch.equal(drop.eval()(x), x)  # eval mode: identity
    drop.train()
    old = use_conv_form(True)  # the reference step: nn.Dropout's own masks
    try:
        torch.manual_seed(3)
        reference = drop(x)
        torch.manual_seed(3)
        assert torch.equal(reference, torch.nn.functional.dropout(x, 0.25, True))
    finally:
        use_conv_form(old)
