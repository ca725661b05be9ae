"""Compiled training (`rie train --compile`): the decaying BatchNorm momentum must not recompile.

The full compiler (inductor) takes about a minute per graph on this CPU, so these tests
trace with dynamo and AOT autograd only (`aot_eager`): recompilation is decided by
dynamo's guards, the same whichever backend turns the graph into code. The GPU check
(tests/test_cuda.py) runs the real thing with CUDA graphs.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch._dynamo

from helpers import small_model
from rie_cli.model.blocks import ScheduledBatchNorm1d


def _train_mode_without_dropout(model):
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # masks from compiled and eager RNG streams differ; the statistics must not
    return model


def _temporal_stats(model) -> list[np.ndarray]:
    return [t.detach().numpy().copy() for m in model.modules() if isinstance(m, ScheduledBatchNorm1d)
            for t in (m.running_mean, m.running_var)]


def test_momentum_change_does_not_recompile_and_updates_like_eager():
    torch._dynamo.reset()
    eager = _train_mode_without_dropout(small_model(fusion=True))
    compiled_model = _train_mode_without_dropout(copy.deepcopy(eager))
    step = torch.compile(compiled_model, backend="aot_eager", dynamic=False)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 9, 17, 2, generator=g) for _ in range(3)]
    with torch._dynamo.config.patch(error_on_recompile=True):
        for momentum, x in zip((0.1, 0.05, 0.02), batches):
            eager.set_bn_momentum(momentum)
            compiled_model.set_bn_momentum(momentum)
            expected = eager(x)
            got = step(x)
            np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), atol=1e-5)
            got.sum().backward()  # the backward graph too
    for a, b in zip(_temporal_stats(compiled_model), _temporal_stats(eager)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    torch._dynamo.reset()


def test_a_float_momentum_alone_would_recompile():
    """The guard the tensor avoids is real: plain nn.BatchNorm1d's momentum recompiles."""
    torch._dynamo.reset()
    bn = torch.nn.BatchNorm1d(4).train()
    step = torch.compile(bn, backend="aot_eager", dynamic=False)
    step(torch.randn(6, 4))
    bn.momentum = 0.05
    with torch._dynamo.config.patch(error_on_recompile=True), pytest.raises(Exception, match="[Rr]ecompil"):
        step(torch.randn(6, 4))
    torch._dynamo.reset()


def test_scheduled_batch_norm_is_plain_batch_norm_when_eager():
    torch.manual_seed(0)
    plain, scheduled = torch.nn.BatchNorm1d(5, momentum=0.1), ScheduledBatchNorm1d(5, momentum=0.1)
    scheduled.load_state_dict(plain.state_dict())  # the momentum tensor is not in checkpoints
    assert "momentum_value" not in scheduled.state_dict()
    scheduled.set_momentum(0.3)
    plain.momentum = 0.3
    x = torch.randn(10, 5, 3)
    assert torch.equal(plain(x), scheduled(x))
    assert torch.equal(plain.running_mean, scheduled.running_mean)
    assert torch.equal(plain.running_var, scheduled.running_var)
