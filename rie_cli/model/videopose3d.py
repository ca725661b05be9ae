"""The VideoPose3D temporal model (Pavllo et al. 2019): the baseline RIE improves on.

One temporal convolution stack over all joints' absolute 2D coordinates, no relative
encodings. It *is* the temporal block (not a wrapper around one), so its state dict
keys are VideoPose3D's own: `expand_conv`, `expand_bn`, `layers_conv`, `layers_bn`,
`shrink` (3 * J outputs), and their `model_pos` checkpoints load unchanged.

With `config.target == "trajectory"` it is VideoPose3D's trajectory model: the same
network with 3 outputs, the camera-space root position (metres) of the window's
reference frame, returned as one joint (B, 1, 1, 3).
"""

from __future__ import annotations

import torch

from rie_cli.model.blocks import TemporalBlock
from rie_cli.model.config import ModelConfig


class VideoPose3DModel(TemporalBlock):
    def __init__(self, config: ModelConfig) -> None:
        if config.arch != "videopose3d":
            raise ValueError(f"VideoPose3DModel needs arch 'videopose3d', got '{config.arch}'")
        super().__init__(
            config.num_joints * 2, config.output_joints * 3, config.filter_widths,
            channels=config.channels, dropout=config.dropout, causal=config.causal,
            activation="relu",  # VideoPose3D uses ReLU where RIE uses LeakyReLU(0.2)
        )
        self.config = config
        self.num_joints = config.num_joints
        self.output_joints = config.output_joints

    def encoder_module_names(self) -> list[str]:
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, R, J, 2) -> (B, 1, J_out, 3); J_out = J for poses, 1 for the trajectory
        if x.dim() != 4 or x.shape[1] != self.receptive_field() or x.shape[2] != self.num_joints or x.shape[3] != 2:
            raise ValueError(
                f"VideoPose3D expects (batch, {self.receptive_field()}, {self.num_joints}, 2) windows, "
                f"got {tuple(x.shape)}"
            )
        batch = x.shape[0]
        features = x.reshape(batch, x.shape[1], -1)  # (B, R, 2J), channels last
        out = self.forward_frames(features)  # (B, 1, 3 J_out)
        return out.reshape(batch, 1, self.output_joints, 3)
