"""The one way every command loads a model for inference: `load_for_inference`.

    model = load_for_inference("ckpt.bin", device="auto", tta=False)   # an InferenceModel
    poses = model.predict([normalised])[0]                            # (T, J, 3)

`rie evaluate`, `rie export`, `rie render`, `rie predict`, trajectory models and the
Python API (`rie_cli.api.Lifter`) all load through it, so device, precision, the
checkpoint checks and flip TTA mean the same everywhere. It sits below every command
module and below the API: it imports the model, the checkpoint reader and
`rie_cli.inference`, never a command, so that commands and the API can both use it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from rie_cli.devices import resolve_device, resolve_precision
from rie_cli.errors import RieError
from rie_cli.inference import evaluation_form, predict_many
from rie_cli.model.checkpoint import load_checkpoint
from rie_cli.model.config import ModelConfig
from rie_cli.skeleton import SKELETONS, Skeleton

__all__ = ["InferenceModel", "load_for_inference", "load_models", "load_trajectory_model"]


@dataclass
class InferenceModel:
    """A checkpoint loaded for inference: the model on its device and how to run it."""

    model: nn.Module  # eval mode, on `device`
    config: ModelConfig
    skeleton: Skeleton
    device: torch.device
    precision: str  # a key of rie_cli.devices.PRECISIONS, resolved for `device`
    tta: bool  # flip test-time augmentation
    checkpoint: Path
    stage: int
    origin: str  # "rie", "authors-rie" or "videopose3d"
    messages: list[str] = field(default_factory=list)

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field()

    @property
    def causal(self) -> bool:
        return self.config.causal

    @property
    def delay(self) -> int:
        """Frames after frame t needed to predict it: 0 causal, R // 2 centred."""
        return 0 if self.causal else self.receptive_field // 2

    def predict(self, sequences_2d: list[np.ndarray], *, batch_size: int = 1024,
                progress: Callable[[int], None] | None = None, fold: bool = True) -> list[np.ndarray]:
        """(T_i, J, 2) normalised keypoints per sequence -> (T_i, J, 3) float32 poses each
        ((T_i, 1, 3) camera-space roots for a trajectory model): every frame from its own
        edge-padded window (`rie_cli.inference.predict_many`)."""
        return predict_many(self.model, sequences_2d, skeleton=self.skeleton, tta=self.tta,
                            batch_size=batch_size, device=self.device, precision=self.precision,
                            progress=progress, fold=fold)

    def evaluation_form(self):
        """The folded fast form of the model (or the model itself where it cannot be folded)."""
        return evaluation_form(self.model, self.precision, self.device)


def load_for_inference(checkpoint, *, device="cpu", precision: str = "fp32", tta: bool = True,
                       allow_unsafe: bool = False, batch_size: int | None = None,
                       target: str | None = "pose") -> InferenceModel:
    """Load any checkpoint `rie` reads (its own, the authors', VideoPose3D's) for prediction.

    `device` and `precision` go through `rie_cli.devices` ("auto" for either picks what
    runs fast here). Checks, in this order, what every command checks: the batch size
    (when given), the device and precision, that the file exists; then rebuilds the
    model on the device in eval mode. The file's optimizer state and its own copy of
    the weights are dropped. `target`: the kind of model needed, "pose" or "trajectory"
    (the other kind is a RieError; None takes either).
    """
    if batch_size is not None and batch_size < 1:
        raise RieError(f"batch size must be positive, got {batch_size}")
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise RieError(f"checkpoint not found: {checkpoint}")
    loaded = load_checkpoint(checkpoint, device=dev, allow_unsafe=allow_unsafe, target=target)
    loaded.raw = {}  # the optimizer state and the file's copy of the weights: not needed here
    return InferenceModel(model=loaded.model, config=loaded.config, skeleton=SKELETONS[loaded.config.skeleton],
                          device=dev, precision=precision, tta=tta, checkpoint=checkpoint, stage=loaded.stage,
                          origin=loaded.origin, messages=list(loaded.messages))


def load_trajectory_model(path, skeleton: Skeleton, device="cpu", allow_unsafe_load: bool = False) -> InferenceModel:
    """A trajectory model (`rie train --target trajectory`) for `skeleton`'s 2D.

    A pose model, a missing file or a model of other joints is a one-line RieError.
    """
    path = Path(path)
    if not path.is_file():
        raise RieError(f"trajectory checkpoint not found: {path}")
    loaded = load_for_inference(path, device=device, allow_unsafe=allow_unsafe_load, target="trajectory")
    if loaded.config.num_joints != skeleton.num_joints:
        raise RieError(f"the trajectory model {path.name} takes {loaded.config.num_joints} joints, "
                       f"the 2D has {skeleton.num_joints}")
    return loaded


def load_models(checkpoint, trajectory, skeleton: Skeleton, source: str, *, device="cpu", precision: str = "fp32",
                tta: bool = True, allow_unsafe: bool = False) -> tuple[InferenceModel, InferenceModel | None]:
    """The pose model for 2D of `skeleton` (read from `source`, named in the error where the
    joint counts differ) and, where `trajectory` is given, the trajectory model: what
    `rie evaluate`, `rie export predictions` and `rie render` load for a prepared file."""
    loaded = load_for_inference(checkpoint, device=device, precision=precision, tta=tta, allow_unsafe=allow_unsafe)
    if loaded.config.num_joints != skeleton.num_joints:
        raise RieError(f"the checkpoint's model has {loaded.config.num_joints} joints but {source} "
                       f"has {skeleton.num_joints}")
    if trajectory is None:
        return loaded, None
    return loaded, load_trajectory_model(trajectory, skeleton, device, allow_unsafe)
