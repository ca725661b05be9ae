"""Models: the RIE model and the VideoPose3D baseline, built from a `ModelConfig`."""

from __future__ import annotations

import torch
from torch import nn

from rie_cli.errors import RieError
from rie_cli.model.config import ModelConfig
from rie_cli.model.rie import RIEModel
from rie_cli.model.videopose3d import VideoPose3DModel

__all__ = ["ModelConfig", "RIEModel", "VideoPose3DModel", "build_model", "count_parameters", "resolve_device"]


def build_model(config: ModelConfig) -> nn.Module:
    """The model `config` describes, in training mode on the CPU (move it with `.to`)."""
    if config.arch == "rie":
        return RIEModel(config)
    return VideoPose3DModel(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resolve_device(device) -> torch.device:
    """`device` as a torch.device, refusing CUDA/MPS where this machine has none."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise RieError(f"unknown device '{device}' (examples: cpu, cuda, cuda:1)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RieError(f"device '{device}' requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RieError(f"device '{device}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RieError(f"device '{device}' requested but MPS is not available on this machine")
    return dev
