"""The Python API: `Lifter`, and `load_for_inference`, the one way every command loads a model.

    from rie_cli import Lifter

    lifter = Lifter.from_checkpoint("ckpt.bin")                 # device "auto", fp32, flip TTA
    result = lifter.lift(keypoints, width=1920, height=1080)    # (T, 17, 2|3) pixels
    result.poses                                                 # (T, 17, 3) what `rie predict` writes
    result = lifter.lift_video("clip.mp4")                       # a 2D detector first (rie[video])

    stream = lifter.stream(width=1920, height=1080)
    for frame in frames:                                         # (17, 2|3) pixels each
        for index, pose in stream.push(frame):                   # poses as soon as they are known
            ...
    for index, pose in stream.flush():                           # the last frames (centred models)
        ...

Two layers, each in its own module below the API so that no command has to import it:
- `load_for_inference` (rie_cli.loading) turns a checkpoint path into an
  `InferenceModel`: the model rebuilt and on its device, the precision checked, the
  flip TTA setting, and `predict` over whole sequences (the folded fast form,
  `rie_cli.inference`). `rie evaluate`, `rie export`, `rie render` and `rie predict`
  all load through it; it is re-exported here, where docs/api.md documents it.
- `Lifter` adds what lifting a detector's output needs (rie_cli.lifting: joint layout,
  missing points, image size; `LiftResult`, also re-exported here) and `stream`, the
  frame-by-frame form (rie_cli.streaming). `lift` is the code path of `rie predict`,
  so the two give the same poses. See docs/api.md.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from rie_cli.errors import RieError
from rie_cli.keypoint_formats import KeypointTrack, split_scores
from rie_cli.lifting import (DEFAULT_MIN_SCORE, LiftResult, PreparedKeypoints, image_size, normalized_keypoints,
                             prepare_keypoints)
from rie_cli.loading import InferenceModel, load_for_inference
from rie_cli.skeleton import H36M_17
from rie_cli.streaming import LiftStream

__all__ = ["InferenceModel", "LiftResult", "Lifter", "load_for_inference"]


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
        points, scores = split_scores(np.asarray(keypoints), "the keypoints")
        if len(points) == 0:
            raise RieError("the keypoints hold no frames")
        track = KeypointTrack(points.astype(np.float64), scores, None, "array")
        w, h, notes = image_size(track, width, height)
        result = self.lift_track(track, width=w, height=h, layout=layout, min_score=min_score,
                                 batch_size=batch_size, progress=progress)
        result.notes.extend(notes)
        return result

    def lift_video(self, video, *, detector="mediapipe", max_frames: int | None = None,
                   min_score: float | None = None, batch_size: int = 1024,
                   progress: Callable[[int], None] | None = None) -> LiftResult:
        """Run a 2D detector over a video file, then `lift_track` its keypoints (`rie predict --video`).

        `detector`: a name in `rie_cli.video.detector.DETECTORS` ("mediapipe": MediaPipe
        Pose, the optional `video` extra) or an object with the `PoseDetector` shape (the
        caller then closes it). The frame size and rate come from the file; `max_frames`
        keeps the first frames only; `progress(1)` follows every detected frame. Frames
        without a person are filled like any missing point. The result's `detections`
        holds the raw keypoints, the video's fps and the share of frames with a person
        (`rie_cli.video.detector.write_detections` saves them for `lift`).
        """
        from rie_cli.video.detector import create_detector, detect_video

        own = isinstance(detector, str)
        runner = create_detector(detector) if own else detector
        try:
            detections = detect_video(video, runner, max_frames=max_frames, progress=progress)
        finally:
            if own:
                runner.close()
        track = detections.track
        result = self.lift_track(track, width=track.width, height=track.height, min_score=min_score,
                                 batch_size=batch_size)
        result.detections = detections
        return result

    def lift_track(self, track: KeypointTrack, *, width: int, height: int, layout: str = "auto",
                   min_score: float | None = None, batch_size: int = 1024,
                   progress: Callable[[int], None] | None = None) -> LiftResult:
        """`lift` for a `KeypointTrack` (what `rie_cli.keypoint_formats.read_keypoints` returns)."""
        return self.lift_tracks([track], width=width, height=height, layout=layout, min_score=min_score,
                                batch_size=batch_size, progress=progress)[0]

    def lift_many(self, people, *, width: int, height: int, layout: str = "auto", min_score: float | None = None,
                  batch_size: int = 1024, progress: Callable[[int], None] | None = None) -> list[LiftResult]:
        """Several people at once: a list of (T_i, 17, 2|3) pixel arrays (lengths may differ)
        -> one `LiftResult` each, equal to `lift` of each alone; their windows share the
        model's batches, so many short tracks cost about what one long one does."""
        tracks = []
        for i, keypoints in enumerate(people):
            points, scores = split_scores(np.asarray(keypoints), f"person {i}'s keypoints")
            if len(points) == 0:
                raise RieError(f"person {i}'s keypoints hold no frames")
            tracks.append(KeypointTrack(points.astype(np.float64), scores, None, "array"))
        w, h, notes = image_size(KeypointTrack(np.empty((0, 17, 2)), None, None, "array"), width, height)
        results = self.lift_tracks(tracks, width=w, height=h, layout=layout, min_score=min_score,
                                   batch_size=batch_size, progress=progress)
        for result in results:
            result.notes.extend(notes)
        return results

    def lift_tracks(self, tracks: list[KeypointTrack], *, width: int, height: int, layout: str = "auto",
                    min_score: float | None = None, batch_size: int = 1024,
                    progress: Callable[[int], None] | None = None) -> list[LiftResult]:
        """`lift_many` for `KeypointTrack`s (e.g. `rie_cli.tracking.person_tracks`' one per person)."""
        min_score = DEFAULT_MIN_SCORE if min_score is None else min_score
        prepared = [prepare_keypoints(track, layout, min_score) for track in tracks]
        normalized = [normalized_keypoints(p.pixels, width, height) for p in prepared]
        return self.lift_prepared_many(prepared, normalized, width=width, height=height, batch_size=batch_size,
                                       progress=progress)

    def lift_prepared(self, prepared: PreparedKeypoints, normalized: np.ndarray, *, width: int, height: int,
                      batch_size: int = 1024, progress: Callable[[int], None] | None = None) -> LiftResult:
        """The model's part of `lift`: gap-filled Human3.6M pixels (`PreparedKeypoints`) and
        their normalised form -> poses."""
        return self.lift_prepared_many([prepared], [normalized], width=width, height=height, batch_size=batch_size,
                                       progress=progress)[0]

    def lift_prepared_many(self, prepared: list[PreparedKeypoints], normalized: list[np.ndarray], *, width: int,
                           height: int, batch_size: int = 1024,
                           progress: Callable[[int], None] | None = None) -> list[LiftResult]:
        """`lift_prepared` for several sequences in shared batches."""
        if batch_size < 1:
            raise RieError(f"batch size must be positive, got {batch_size}")
        poses = self.inference.predict(normalized, batch_size=batch_size, progress=progress)  # (T_i, 17, 3) each
        roots = [None] * len(poses)
        if self.trajectory_model is not None:
            roots = [r[:, 0] for r in self.trajectory_model.predict(normalized, batch_size=batch_size)]  # (T_i, 3)
        return [LiftResult(poses=pose, filled=p.filled, keypoints_2d=p.pixels, keypoints_2d_normalized=n,
                           layout=p.layout, width=width, height=height, notes=list(p.notes), trajectory=root)
                for pose, p, n, root in zip(poses, prepared, normalized, roots)]

    def stream(self, *, width: int, height: int, layout: str = "auto", min_score: float | None = None,
               record: bool = False, people: int | None = None) -> LiftStream:
        """A `LiftStream`: push one frame's keypoints (17, 2|3) at a time (rie_cli.streaming).

        `record` keeps every frame's pixels, filled mask and pose, so that `stream.result()`
        gives the whole sequence as a `LiftResult` after `flush()` (`rie predict --stream`).
        With a trajectory model the stream's poses are in camera space (root added).
        `people=P`: each push is P people's keypoints (P, 17, 2|3), lifted in one pass of
        the model (the weights read once), and each pose (P, 17, 3).
        """
        return LiftStream(self.inference, self.trajectory_model, width=width, height=height, layout=layout,
                          min_score=DEFAULT_MIN_SCORE if min_score is None else min_score, record=record,
                          people=people)
