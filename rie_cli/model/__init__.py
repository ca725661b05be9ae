"""Models: the RIE model and the VideoPose3D baseline, built from a `ModelConfig`."""

from __future__ import annotations

from torch import nn

from rie_cli.model.config import ModelConfig
from rie_cli.model.rie import RIEModel
from rie_cli.model.videopose3d import VideoPose3DModel

__all__ = ["ModelConfig", "RIEModel", "VideoPose3DModel", "build_model", "count_parameters"]


def build_model(config: ModelConfig) -> nn.Module:
    """The model `config` describes, in training mode on the CPU (move it with `.to`)."""
    if config.arch == "rie":
        return RIEModel(config)
    return VideoPose3DModel(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
