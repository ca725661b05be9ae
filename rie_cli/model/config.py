"""`ModelConfig`: everything needed to rebuild a model, stored in every checkpoint.

A checkpoint written by this project holds `config.to_dict()` beside its weights, so
the checkpoint alone rebuilds its model (no architecture flags at load time).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from rie_cli.errors import RieError
from rie_cli.skeleton import SKELETONS

ARCHES = ("rie", "videopose3d")
# What a model predicts: the root-relative pose of every joint, or the camera-space
# position of the root alone (VideoPose3D's trajectory model).
TARGETS = ("pose", "trajectory")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "rie"  # "rie" | "videopose3d"
    num_joints: int = 17
    skeleton: str = "h36m17"  # key of rie_cli.skeleton.SKELETONS; fixes the RIE body parts
    # One odd width per temporal level; the receptive field is their product (3,3,3,3,3 -> 243).
    filter_widths: tuple[int, ...] = (3, 3, 3, 3, 3)
    channels: int = 256  # temporal convolution channels
    latent: int = 256  # the authors' -lfd: size of every part / global / fused feature (RIE only)
    dropout: float = 0.2  # dropout of the temporal blocks
    causal: bool = False  # the window for frame t ends at t instead of being centred on it
    fusion: bool = False  # feature fusion module present (the authors' stages 2 and 3)
    # The authors' fully connected blocks are 1024 wide with dropout 0.25 whatever -ch
    # is; kept as fields so that a checkpoint with other widths still describes itself.
    fc_width: int = 1024
    fc_dropout: float = 0.25
    # "pose": (J, 3) root-relative joints; "trajectory": (1, 3) camera-space root in
    # metres. Checkpoints written before this field existed load as "pose".
    target: str = "pose"

    def __post_init__(self) -> None:
        # Normalise lists (from JSON or a checkpoint dict) into a hashable tuple.
        object.__setattr__(self, "filter_widths", tuple(int(w) for w in self.filter_widths))
        self.validate()

    def validate(self) -> None:
        if self.arch not in ARCHES:
            raise RieError(f"unknown architecture '{self.arch}' (known: {', '.join(ARCHES)})")
        if not self.filter_widths or any(w < 1 or w % 2 == 0 for w in self.filter_widths):
            raise RieError(f"filter widths must be positive odd integers, got {list(self.filter_widths)}")
        if self.skeleton not in SKELETONS:
            raise RieError(f"unknown skeleton '{self.skeleton}' (known: {', '.join(SKELETONS)})")
        if SKELETONS[self.skeleton].num_joints != self.num_joints:
            raise RieError(
                f"skeleton '{self.skeleton}' has {SKELETONS[self.skeleton].num_joints} joints, "
                f"the model config says {self.num_joints}"
            )
        for name in ("channels", "latent", "fc_width"):
            if getattr(self, name) < 1:
                raise RieError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("dropout", "fc_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise RieError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.arch == "videopose3d" and self.fusion:
            raise RieError("the VideoPose3D architecture has no feature fusion module")
        if self.target not in TARGETS:
            raise RieError(f"unknown model target '{self.target}' (known: {', '.join(TARGETS)})")
        if self.target == "trajectory" and self.arch != "videopose3d":
            raise RieError("a trajectory model is the VideoPose3D architecture (arch 'videopose3d'), "
                           f"not '{self.arch}'")

    def receptive_field(self) -> int:
        return math.prod(self.filter_widths)

    @property
    def pad(self) -> int:
        """Frames on each side of the centre frame: (receptive_field - 1) / 2."""
        return (self.receptive_field() - 1) // 2

    @property
    def causal_shift(self) -> int:
        """VideoPose3D's causal_shift: how far the window moves into the past (pad or 0)."""
        return self.pad if self.causal else 0

    @property
    def output_joints(self) -> int:
        """Joints the model predicts per window: all of them, or the root alone."""
        return 1 if self.target == "trajectory" else self.num_joints

    @property
    def stage(self) -> int:
        """The stage this architecture corresponds to when nothing else says (1 or 3)."""
        return 3 if self.fusion else 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["filter_widths"] = list(self.filter_widths)
        return d

    @classmethod
    def from_dict(cls, d) -> "ModelConfig":
        if not isinstance(d, dict):
            raise RieError(f"a model config must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RieError(f"unknown model config fields: {', '.join(unknown)}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise RieError(f"invalid model config: {exc}") from None

    def describe(self) -> str:
        """One line for people: 'rie, widths 3,3,3 (RF 27), channels 256, latent 256, fusion'."""
        parts = [
            self.arch + (" trajectory" if self.target == "trajectory" else ""),
            f"{self.skeleton} ({self.num_joints} joints)",
            f"widths {','.join(map(str, self.filter_widths))} (receptive field {self.receptive_field()})",
            f"channels {self.channels}",
        ]
        if self.arch == "rie":
            parts.append(f"latent {self.latent}")
            parts.append("fusion" if self.fusion else "no fusion")
        if self.causal:
            parts.append("causal")
        return ", ".join(parts)
