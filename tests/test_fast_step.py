"""The training step's matmul form of the temporal blocks against the nn.Conv1d reference form.

Both forms compute the same thing; the matmul form only orders the float operations
differently, and draws the same dropout masks. So: forward passes agree to float
rounding in train and eval mode, gradients too, and a few optimizer steps give the
same losses.
"""

import copy

import pytest
import torch

from rie_cli.model import ModelConfig, build_model
from rie_cli.model.blocks import TemporalBlock, use_conv_form
from rie_cli.training.trainer import make_optimizer, mpjpe_loss

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
    model = build_model(config).train()
    x, y = _data(config)
    grads = []
    for conv_form in (True, False):
        model.zero_grad(set_to_none=True)
        out = _forward(model, x, conv_form)
        mpjpe_loss(out, y).backward()
        grads.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (ref, ref_grads), (new, new_grads) = grads
    # Same dropout masks: a different mask would move outputs by O(1), not O(1e-6).
    torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-6)
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
    base = build_model(config).train()
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
