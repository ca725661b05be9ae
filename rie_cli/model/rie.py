"""The RIE model (docs/method.md §2): relative encodings, part encoders, global encoder,
feature fusion, part decoders.

Module names are the authors' (`LocalLayer_<Part>`, `GlobalInfo`, `FuseBlocks`,
`Integration_<Part>`), with the part names taken from the skeleton, so that their
checkpoints load unchanged. Which joints feed which part comes from
`Skeleton.parts`; `forward` has no hard-coded channel slices.

    >>> model = build_model(ModelConfig(filter_widths=(3, 3, 3)))   # receptive field 27
    >>> model(torch.zeros(8, 27, 17, 2)).shape                     # one pose per window
    torch.Size([8, 1, 17, 3])
"""

from __future__ import annotations

import torch
from torch import nn

from rie_cli.model.blocks import FCBlock, TemporalBlock
from rie_cli.model.config import ModelConfig
from rie_cli.skeleton import SKELETONS, Skeleton

# The three encodings of every joint, in the channel order of the part encoders' input.
ABSOLUTE, POSITIONAL, TEMPORAL = 0, 1, 2
NUM_ENCODINGS = 3


def relative_encodings(x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """2D poses (..., J, 2) -> their encodings (..., 3, J, 2) (docs/method.md §2.1).

    ABSOLUTE: the position itself; POSITIONAL: minus the root joint (joint 0) of the
    same frame; TEMPORAL: minus the same joint in the window's reference frame,
    `reference` (broadcast against `x`, e.g. x[:, ref : ref + 1] for windows (B, R, J, 2)).
    With `reference=None` the TEMPORAL slot holds the absolute position: per-frame
    encodings for callers that subtract each window's reference later (the folded
    evaluation form, which encodes every frame once and gathers windows from it).
    """
    temporal = x if reference is None else x - reference
    return torch.stack((x, x - x[..., :1, :], temporal), dim=-3)


class RIEModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.arch != "rie":
            raise ValueError(f"RIEModel needs arch 'rie', got '{config.arch}'")
        self.config = config
        skeleton: Skeleton = SKELETONS[config.skeleton]
        _check_parts_cover_joints(skeleton)
        self.part_names = tuple(p.name for p in skeleton.parts)
        self.num_joints = skeleton.num_joints
        latent = config.latent
        fc = dict(width=config.fc_width, dropout=config.fc_dropout)

        for part in skeleton.parts:
            encoder = TemporalBlock(
                NUM_ENCODINGS * 2 * len(part.joints), latent, config.filter_widths,
                channels=config.channels, dropout=config.dropout, causal=config.causal,
            )
            setattr(self, f"LocalLayer_{part.name}", encoder)
        self.GlobalInfo = FCBlock(self.num_joints * 2, latent, 2, **fc)
        if config.fusion:
            others = len(skeleton.parts) - 1
            self.FuseBlocks = nn.ModuleList(FCBlock(others * latent, latent, 1, **fc) for _ in skeleton.parts)
        decoder_in = latent * (3 if config.fusion else 2)
        for part in skeleton.parts:
            setattr(self, f"Integration_{part.name}", FCBlock(decoder_in, 3 * len(part.joints), 1, **fc))

        # Index buffers (not saved in the state dict): the joints of each part, and where
        # each joint's prediction sits in the parts' concatenated output.
        for part in skeleton.parts:
            self.register_buffer(f"_joints_{part.name}", torch.tensor(part.joints), persistent=False)
        order = torch.tensor([j for part in skeleton.parts for j in part.joints])
        self.register_buffer("_output_index", torch.argsort(order), persistent=False)

        rf = config.receptive_field()
        # The frame the window predicts: the centre, or the last frame in causal mode.
        # The temporal encoding and the global encoder both refer to it.
        self.reference_frame = rf - 1 if config.causal else rf // 2

    def receptive_field(self) -> int:
        return self.config.receptive_field()

    def set_bn_momentum(self, momentum: float) -> None:
        """BatchNorm momentum of the temporal blocks (the authors decay it during training)."""
        for encoder in self.part_encoders():
            encoder.set_bn_momentum(momentum)

    # The modules by role, in part order (forward and the folded form both use these).
    def part_encoders(self) -> list[TemporalBlock]:
        return [getattr(self, f"LocalLayer_{name}") for name in self.part_names]

    def part_decoders(self) -> list[FCBlock]:
        return [getattr(self, f"Integration_{name}") for name in self.part_names]

    def part_joints(self) -> list[torch.Tensor]:
        """The joint indices (n,) of each part."""
        return [getattr(self, f"_joints_{name}") for name in self.part_names]

    def fuse_blocks(self) -> list[FCBlock]:
        """One fusion block per part, or none (stage 1)."""
        return list(self.FuseBlocks) if self.config.fusion else []

    def encoder_module_names(self) -> list[str]:
        """The part encoders and the global encoder: what the authors' stage 2 loads and freezes."""
        return [f"LocalLayer_{name}" for name in self.part_names] + ["GlobalInfo"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, R, J, 2) -> (B, 1, J, 3)
        if x.dim() != 4 or x.shape[1] != self.receptive_field() or x.shape[2] != self.num_joints or x.shape[3] != 2:
            raise ValueError(
                f"RIE expects (batch, {self.receptive_field()}, {self.num_joints}, 2) windows, got {tuple(x.shape)}"
            )
        batch = x.shape[0]
        ref = self.reference_frame
        encodings = relative_encodings(x, x[:, ref : ref + 1])  # (B, R, 3, J, 2)

        x_global = self.GlobalInfo(x[:, ref].reshape(batch, -1))  # (B, latent)

        local = []
        for encoder, joints in zip(self.part_encoders(), self.part_joints()):
            # Channels: absolute, then positional, then temporal; per joint x, y interleaved.
            part_in = encodings[:, :, :, joints].reshape(batch, x.shape[1], -1)  # (B, R, 6n), channels last
            local.append(encoder.forward_frames(part_in)[:, 0])  # (B, latent)

        fuse = self.fuse_blocks()
        outputs = []
        for i, decoder in enumerate(self.part_decoders()):
            features = [local[i]]
            if fuse:
                # The other parts' features, in part order with part i left out.
                features.append(fuse[i](torch.cat(local[:i] + local[i + 1 :], dim=1)))
            features.append(x_global)
            decoded = decoder(torch.cat(features, dim=1))  # (B, 3n)
            outputs.append(decoded.view(batch, -1, 3))
        poses = torch.cat(outputs, dim=1)[:, self._output_index]  # (B, J, 3) in skeleton joint order
        return poses.unsqueeze(1)


def _check_parts_cover_joints(skeleton: Skeleton) -> None:
    joints = sorted(j for part in skeleton.parts for j in part.joints)
    if joints != list(range(skeleton.num_joints)):
        raise ValueError(f"the parts of skeleton '{skeleton.name}' must hold every joint exactly once")
