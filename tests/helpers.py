"""Small models shared by the tests (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

from pathlib import Path

import torch

from rie_cli.model import ModelConfig, build_model
from rie_cli.model.checkpoint import checkpoint_payload, save_checkpoint


def small_model(seed: int = 0, **kw) -> torch.nn.Module:
    """A small random RIE model (receptive field 9 by default) in eval mode, with
    non-trivial BatchNorm statistics so that eval mode does real work."""
    config = dict(filter_widths=(3, 3), channels=32, latent=16, fc_width=64)
    config.update(kw)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**config))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.num_batches_tracked.fill_(7)
    return model.eval()


def save_small_checkpoint(path: Path, seed: int = 0, **kw) -> Path:
    """A small stage-3 (fusion) model saved as this project's checkpoint."""
    kw.setdefault("fusion", True)
    save_checkpoint(path, checkpoint_payload(small_model(seed, **kw), stage=3))
    return path
