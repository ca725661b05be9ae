"""The Python API: `Lifter`, and the one way every command loads a model for inference.

    from rie_cli import Lifter

    lifter = Lifter.from_checkpoint("ckpt.bin")                 # device "auto", fp32, flip TTA
    result = lifter.lift(keypoints, width=1920, height=1080)    # (T, 17, 2|3) pixels
    result.poses                                                 # (T, 17, 3) what `rie predict` writes

    stream = lifter.stream(width=1920, height=1080)
    for frame in frames:                                         # (17, 2|3) pixels each
        for index, pose in stream.push(frame):                   # poses as soon as they are known
            ...
    for index, pose in stream.flush():                           # the last frames (centred models)
        ...

Two layers:
- `load_for_inference` turns a checkpoint path into an `InferenceModel`: the model
  rebuilt and on its device, the precision checked, the flip TTA setting, and
  `predict` over whole sequences (the folded fast form, `rie_cli.inference`).
  `rie evaluate`, `rie export`, `rie render` and `rie predict` all load through it.
- `Lifter` adds what lifting a detector's output needs (`rie_cli.predict`: joint
  layout, missing points, image size) and `stream`, the frame-by-frame form
  (`rie_cli.streaming`). `lift` is the code path of `rie predict`, so the two give the
  same poses. See docs/api.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from rie_cli.errors import RieError
from rie_cli.model.config import ModelConfig
from rie_cli.skeleton import H36M_17, SKELETONS, Skeleton

__all__ = ["InferenceModel", "LiftResult", "Lifter", "load_for_inference"]


# --- loading ----------------------------------------------------------------------------------

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
        from rie_cli.inference import predict_many

        return predict_many(self.model, sequences_2d, skeleton=self.skeleton, tta=self.tta,
                            batch_size=batch_size, device=self.device, precision=self.precision,
                            progress=progress, fold=fold)

    def evaluation_form(self):
        """The folded fast form of the model (or the model itself where it cannot be folded)."""
        from rie_cli.inference import evaluation_form

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
    from rie_cli.devices import resolve_device, resolve_precision
    from rie_cli.model.checkpoint import load_checkpoint

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


# --- the Lifter ---------------------------------------------------------------------------------

@dataclass
class LiftResult:
    """What `Lifter.lift` found: the arrays `rie predict` writes, and how the input was read."""

    poses: np.ndarray  # (T, 17, 3) float32: camera space, metres, root-relative
    filled: np.ndarray  # (T, 17) bool: True where the input point was missing and filled in
    keypoints_2d: np.ndarray  # (T, 17, 2) float32 pixels, Human3.6M order, as used (after filling)
    keypoints_2d_normalized: np.ndarray  # (T, 17, 2) float32, the model's input
    layout: str  # the input's joint order: "h36m" or "coco"
    width: int
    height: int
    notes: list[str] = field(default_factory=list)
    trajectory: np.ndarray | None = None  # (T, 3) float32 camera-space root, metres, with a trajectory model

    @property
    def filled_share(self) -> float:
        return float(self.filled.mean())

    @property
    def camera_poses(self) -> np.ndarray | None:
        """(T, 17, 3) absolute camera-space poses: the pose placed at the predicted root
        (`rie_cli.trajectory.absolute_poses`); None without a trajectory model."""
        from rie_cli.trajectory import absolute_poses

        return None if self.trajectory is None else absolute_poses(self.poses, self.trajectory)


class Lifter:
    """Lifts 2D keypoints in pixels (Human3.6M-17 or COCO-17) to 3D poses.

    Build it with `Lifter.from_checkpoint`. `lift` takes a whole sequence; `stream`
    takes one frame at a time. A Lifter and its streams share one set of work buffers:
    use them from one thread (make one Lifter per thread).
    """

    def __init__(self, inference: InferenceModel, trajectory: InferenceModel | None = None):
        for model in (inference, trajectory):
            if model is not None and (model.config.num_joints != 17 or model.config.skeleton != H36M_17.name):
                raise RieError(f"rie predict lifts Human3.6M-17 keypoints; {model.checkpoint.name} holds a model of "
                               f"{model.config.num_joints} joints ({model.config.skeleton})")
        self.inference = inference
        self.trajectory_model = trajectory

    @classmethod
    def from_checkpoint(cls, path, *, device="auto", precision: str = "fp32", tta: bool = True,
                        trajectory=None, allow_unsafe: bool = False) -> "Lifter":
        """Load `path` (this project's, the authors' or VideoPose3D's checkpoint).

        `device`: "auto" (CUDA where present, else CPU), "cpu", "cuda", "cuda:1", "mps".
        `precision`: "fp32", "bf16", "fp16" or "auto" (weights and activations; see docs/api.md).
        `tta`: flip test-time augmentation, as `rie predict` does by default.
        `trajectory`: a trajectory model's checkpoint (`rie train --target trajectory`),
        loaded the same way: results then carry the predicted camera-space root.
        """
        options = dict(device=device, precision=precision, tta=tta, allow_unsafe=allow_unsafe)
        pose = load_for_inference(path, **options)
        root = None if trajectory is None else load_for_inference(trajectory, target="trajectory", **options)
        return cls(pose, root)

    @property
    def receptive_field(self) -> int:
        return self.inference.receptive_field

    @property
    def causal(self) -> bool:
        return self.inference.causal

    @property
    def delay(self) -> int:
        """Frames a stream waits for before it returns a frame's pose: 0 causal, R // 2 centred
        (the larger of the two models' with a trajectory model)."""
        return max(m.delay for m in (self.inference, self.trajectory_model) if m is not None)

    def lift(self, keypoints, *, width: int, height: int, layout: str = "auto", min_score: float | None = None,
             batch_size: int = 1024, progress: Callable[[int], None] | None = None) -> LiftResult:
        """(T, 17, 2|3) pixels (a third column is a confidence score) -> `LiftResult`.

        The steps and the errors are `rie predict`'s: points missing (NaN, (0, 0)) or
        scored under `min_score` are filled by interpolation over time, COCO-17 is mapped
        to Human3.6M-17, the image size normalises, every frame gets its own window.
        """
        from rie_cli.keypoint_formats import KeypointTrack, split_scores
        from rie_cli.predict import image_size

        points, scores = split_scores(np.asarray(keypoints), "the keypoints")
        if len(points) == 0:
            raise RieError("the keypoints hold no frames")
        track = KeypointTrack(points.astype(np.float64), scores, None, "array")
        w, h, notes = image_size(track, width, height)
        result = self.lift_track(track, width=w, height=h, layout=layout, min_score=min_score,
                                 batch_size=batch_size, progress=progress)
        result.notes.extend(notes)
        return result

    def lift_track(self, track, *, width: int, height: int, layout: str = "auto", min_score: float | None = None,
                   batch_size: int = 1024, progress: Callable[[int], None] | None = None) -> LiftResult:
        """`lift` for a `KeypointTrack` (what `rie_cli.keypoint_formats.read_keypoints` returns)."""
        from rie_cli.predict import DEFAULT_MIN_SCORE, normalized_keypoints, prepare_keypoints

        prepared = prepare_keypoints(track, layout, DEFAULT_MIN_SCORE if min_score is None else min_score)
        normalized = normalized_keypoints(prepared.pixels, width, height)
        return self.lift_prepared(prepared, normalized, width=width, height=height, batch_size=batch_size,
                                  progress=progress)

    def lift_prepared(self, prepared, normalized: np.ndarray, *, width: int, height: int, batch_size: int = 1024,
                      progress: Callable[[int], None] | None = None) -> LiftResult:
        """The model's part of `lift`: gap-filled Human3.6M pixels (`PreparedKeypoints`) and
        their normalised form -> poses."""
        if batch_size < 1:
            raise RieError(f"batch size must be positive, got {batch_size}")
        poses = self.inference.predict([normalized], batch_size=batch_size, progress=progress)[0]  # (T, 17, 3)
        root = None
        if self.trajectory_model is not None:
            root = self.trajectory_model.predict([normalized], batch_size=batch_size)[0][:, 0]  # (T, 1, 3) -> (T, 3)
        return LiftResult(poses=poses, filled=prepared.filled, keypoints_2d=prepared.pixels,
                          keypoints_2d_normalized=normalized, layout=prepared.layout, width=width, height=height,
                          notes=list(prepared.notes), trajectory=root)

    def stream(self, *, width: int, height: int, layout: str = "auto", min_score: float | None = None,
               record: bool = False):
        """A `LiftStream`: push one frame's keypoints (17, 2|3) at a time (rie_cli.streaming).

        `record` keeps every frame's pixels, filled mask and pose, so that `stream.result()`
        gives the whole sequence as a `LiftResult` after `flush()` (`rie predict --stream`).
        With a trajectory model the stream's poses are in camera space (root added).
        """
        from rie_cli.predict import DEFAULT_MIN_SCORE
        from rie_cli.streaming import LiftStream

        return LiftStream(self.inference, self.trajectory_model, width=width, height=height, layout=layout,
                          min_score=DEFAULT_MIN_SCORE if min_score is None else min_score, record=record)
