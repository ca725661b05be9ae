"""Frame-by-frame lifting: `LiftStream`, what `Lifter.stream` returns.

A stream gives the poses `Lifter.lift` gives for the whole sequence (to float32
rounding), frame by frame, as soon as they are known:

- a causal model predicts frame t from frames t - R + 1 .. t, so `push(frame t)`
  returns frame t's pose;
- a centred model predicts frame t from t - R//2 .. t + R//2, so `push(frame n)`
  returns frame n - R//2's pose, and `flush()` returns the last R//2 poses, the
  sequence ended by repeating its last frame (the edge padding `lift` uses).
The first frame is likewise repeated before the start: the window ring is filled with
it when it arrives.

Each push costs one window (two with flip TTA): RIE's temporal encoding is relative to
the predicted frame, so windows share no work past the first layer (rie_cli.inference).
The per-frame encodings of the last R frames sit in a ring buffer of the folded model's
`frame_features`; a push computes those of the new frame only, writes them over the
oldest slot and runs `forward_windows` on a precomputed index row of the ring, so its
large buffers are reused from push to push.

Missing points are filled causally (`_CausalFiller`), which is where a stream can differ
from `lift`; see docs/api.md:
- frames are held back until every joint the model needs has been seen once (for COCO:
  the body joints and one face joint); those first frames are then filled exactly as
  `lift` fills them (interpolation between seen values, the first seen value held
  backwards);
- after that a missing point holds its last seen value. `lift` interpolates a gap
  between two seen values instead (it knows the future); a gap that lasts to the end
  of the sequence is held in both. Without such interior gaps the two agree.
- COCO's neck/nose and head joints are built, in both, from the face points seen so
  far (`rie_cli.joint_layouts.coco_to_h36m`): a face point first seen later joins
  from that frame on, in `lift` as in the stream.
"""

from __future__ import annotations

import numpy as np
import torch

from rie_cli.errors import RieError
from rie_cli.windowing import mirror
from rie_cli.joint_layouts import LAYOUTS, coco_ready, coco_to_h36m, detect_layout
from rie_cli.keypoint_formats import KeypointTrack, split_scores
from rie_cli.lifting import (LiftResult, fill_gaps, image_size, normalized_keypoints, prepare_keypoints,
                             valid_mask)
from rie_cli.trajectory import absolute_poses

class _CausalFiller:
    """Missing points of a stream filled without looking ahead; COCO mapped to Human3.6M."""

    def __init__(self, layout: str, min_score: float):
        if layout not in LAYOUTS:
            raise RieError(f"unknown layout '{layout}' (choose from {', '.join(LAYOUTS)})")
        self.layout = None if layout == "auto" else layout
        self.min_score = min_score
        self.notes: list[str] = []
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (points (17, 2), valid (17,)) before the start
        self._last: np.ndarray | None = None  # (17, 2) each joint's last value, once started
        self._seen: np.ndarray | None = None  # (17,) joints seen so far, once started

    def push(self, points: np.ndarray, scores: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """One frame (17, 2) pixels, scores (17,) or None -> the frames now ready, each
        (Human3.6M pixels (17, 2) float32, filled (17,) bool); none while held back."""
        valid = valid_mask(points[None], None if scores is None else scores[None], self.min_score)[0]  # (17,)
        if self._last is None:
            self._pending.append((points, valid))
            return self._start(final=False)
        filled = np.where(valid[:, None], points, self._last)  # (17, 2): hold the last seen value
        self._last = filled
        seen_before = self._seen
        self._seen = seen_before | valid
        return self._mapped(filled[None], ~valid[None], seen_before)

    def flush(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The frames still held back (all joints never seen: the error `lift` gives)."""
        return self._start(final=True) if self._pending else []

    def _start(self, final: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        points = np.stack([p for p, _ in self._pending])  # (N, 17, 2)
        valid = np.stack([v for _, v in self._pending])  # (N, 17)
        if self.layout is None:
            try:
                self.layout = detect_layout(np.where(valid[..., None], points, np.nan))
            except RieError:
                if final:
                    raise
                return []  # not decided yet: wait for more frames
            self.notes.append(f"joint order not stated: read as {self.layout} from the body's geometry "
                              f"in the first {len(points)} frame(s)")
        seen = valid.any(0)  # (17,)
        ready = seen.all() if self.layout == "h36m" else coco_ready(seen)
        if not ready:
            if final:  # the error `lift` gives for these frames
                prepare_keypoints(KeypointTrack(points, None, self.layout, "array"), self.layout, self.min_score)
            return []
        # The first frames, known together: filled as `lift` fills them.
        filled_points, _, _ = fill_gaps(points, valid)  # (N, 17, 2)
        self._pending = []
        self._last = filled_points[-1]
        self._seen = seen
        return self._mapped(filled_points, ~valid)

    def _mapped(self, points: np.ndarray, filled: np.ndarray,
                seen_before: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(N, 17, 2) filled points in the input layout -> Human3.6M frames. `seen_before`:
        the joints seen before these frames, from which the COCO face points are chosen as
        `lift` chooses them (`coco_to_h36m`: those seen so far)."""
        if self.layout == "coco":
            points, filled, notes = coco_to_h36m(points, filled, seen_before)
            self.notes.extend(n for n in notes if n not in self.notes)
        return list(zip(points.astype(np.float32), filled))


class _WindowRing:
    """The per-frame features of the last R frames (plain, then mirrored), one window per push."""

    def __init__(self, inference):
        self.form = inference.evaluation_form()
        self.device = inference.device
        self.tta = inference.tta
        self.size = inference.receptive_field
        self.flip = torch.as_tensor(inference.skeleton.flip_permutation(), device=self.device)
        # Outputs are mirrored back with the same permutation, or, for a trajectory model's
        # root alone, by negating x (it has no left or right).
        whole = inference.config.output_joints == inference.config.num_joints
        self.out_flip = self.flip if whole else torch.zeros(1, dtype=torch.int64, device=self.device)
        r = self.size
        # Row s: the ring slots of the window whose newest frame is in slot s, oldest first.
        slots = (torch.arange(r)[:, None] + 1 + torch.arange(r)[None, :]) % r  # (R, R)
        table = torch.stack((slots, slots + r), dim=1) if self.tta else slots[:, None]  # (R, 1 or 2, R)
        self.table = table.to(self.device)
        self.features = None
        self.slot = -1
        self.last: torch.Tensor | None = None  # (J, 2) the newest frame

    def push(self, frame: torch.Tensor) -> np.ndarray:
        """(J, 2) normalised frame -> (J_out, 3) float32 output of the window ending with it."""
        frame = frame.to(self.device)
        self.last = frame
        rows = frame[None]  # (1, J, 2)
        if self.tta:
            rows = torch.cat((rows, mirror(rows, self.flip)))  # (2, J, 2): plain, mirrored
        if self.features is None:
            # Edge padding before the start: every slot holds the first frame.
            self.features = self.form.frame_features(rows.repeat_interleave(self.size, dim=0))  # (copies*R, ...)
            self.slot = self.size - 1
        else:
            self.slot = (self.slot + 1) % self.size
            _store(self.features, self.slot, self.size, self.form.frame_features(rows))
        poses = self.form.forward_windows(self.features, self.table[self.slot])  # (1 or 2, J, 3)
        if self.tta:
            poses = (poses[:1] + mirror(poses[1:], self.out_flip)) / 2  # (1, J_out, 3)
        return poses[0].cpu().numpy()


def _store(features, slot: int, stride: int, new) -> None:
    """Write the features of one frame (rows 0, and 1 mirrored) into ring slot `slot` (and
    `slot + stride`). `features` is the folded form's `FrameFeatures` or, for a model
    run as it is, the frames themselves (P, J, 2)."""
    tensors = [features] if isinstance(features, torch.Tensor) else [features.poses, *features.parts]
    new_tensors = [new] if isinstance(new, torch.Tensor) else [new.poses, *new.parts]
    for buffer, rows in zip(tensors, new_tensors):
        for copy in range(len(rows)):
            buffer[slot + copy * stride] = rows[copy]


class LiftStream:
    """Push one frame's keypoints at a time; get each frame's pose as soon as it is known.

    `push(frame)`: (17, 2|3) pixels (a third column is a confidence score) -> list of
    (frame index, (17, 3) float32 pose), in frame order; `flush()` ends the sequence and
    returns the poses still owed. `delay` is how many frames a pose waits for (0 causal,
    R // 2 centred), not counting frames held back until every joint was seen once.
    With a trajectory model the poses are in camera space: the pose placed at the root
    that model predicts (`rie_cli.trajectory.absolute_poses`; each model with its own
    window; a frame comes when both know it).
    """

    def __init__(self, inference, trajectory=None, *, width: int, height: int, layout: str = "auto",
                 min_score: float = 0.3, record: bool = False):
        self.width, self.height, _ = image_size(KeypointTrack(np.empty((0, 17, 2)), None, None, "array"),
                                                width, height)
        models = [inference] + ([trajectory] if trajectory is not None else [])
        self._rings = [_WindowRing(m) for m in models]
        self._delays = [m.delay for m in models]
        self.delay = max(self._delays)
        self._filler = _CausalFiller(layout, min_score)
        self._ready: list[dict[int, np.ndarray]] = [{} for _ in models]  # per model: frame -> output
        self._fed = 0  # frames given to the models
        self._emitted = 0
        self._closed = False
        self._record: dict[str, list] | None = {"pixels": [], "filled": [], "poses": [], "roots": []} if record else None

    @property
    def layout(self) -> str | None:
        """The input's joint order ("h36m" or "coco"); None while "auto" has not decided."""
        return self._filler.layout

    @property
    def notes(self) -> list[str]:
        return list(self._filler.notes)

    def push(self, frame_keypoints) -> list[tuple[int, np.ndarray]]:
        if self._closed:
            raise RieError("this stream was flushed: start a new one with lifter.stream()")
        frame = np.asarray(frame_keypoints, dtype=np.float64)
        if frame.shape not in ((17, 2), (17, 3)):
            raise RieError(f"a frame's keypoints must have shape (17, 2) or (17, 3), got {frame.shape}")
        points, scores = split_scores(frame[None], "the frame")
        for pixels, filled in self._filler.push(points[0], None if scores is None else scores[0]):
            self._feed(pixels, filled)
        return self._emit()

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """The remaining poses: frames still held back, then (centred models) the last
        R // 2 frames, with the last frame repeated as edge padding. Ends the stream."""
        if self._closed:
            return []
        self._closed = True
        for pixels, filled in self._filler.flush():
            self._feed(pixels, filled)
        real = self._fed
        for ring, delay, ready in zip(self._rings, self._delays, self._ready):
            for n in range(real, real + delay if real else 0):
                output = ring.push(ring.last)  # edge padding: the last frame again
                if 0 <= n - delay < real:
                    ready[n - delay] = output
        return self._emit()

    def _feed(self, pixels: np.ndarray, filled: np.ndarray) -> None:
        normalized = torch.from_numpy(normalized_keypoints(pixels[None], self.width, self.height)[0])  # (17, 2)
        if self._record is not None:
            self._record["pixels"].append(pixels)
            self._record["filled"].append(filled)
        n = self._fed
        self._fed += 1
        for ring, delay, ready in zip(self._rings, self._delays, self._ready):
            output = ring.push(normalized)  # the window ending at frame n predicts frame n - delay
            if n >= delay:
                ready[n - delay] = output

    def _emit(self) -> list[tuple[int, np.ndarray]]:
        """The frames every model has predicted, in order: (index, pose [+ root])."""
        out = []
        while all(self._emitted in ready for ready in self._ready):
            t = self._emitted
            pose, *root = (ready.pop(t) for ready in self._ready)
            if self._record is not None:
                self._record["poses"].append(pose)
                self._record["roots"].extend(r[0] for r in root)
            out.append((t, absolute_poses(pose[None], root[0])[0] if root else pose))  # root[0]: (1, 3)
            self._emitted += 1
        return out

    def result(self):
        """Everything a `record=True` stream lifted, after `flush()`, as a `LiftResult`
        (poses root-relative, the roots in `trajectory`, as `Lifter.lift` gives them)."""
        if self._record is None or not self._closed:
            raise RieError("stream.result() needs a stream made with record=True and flushed")
        if not self._record["poses"]:
            raise RieError("the stream was given no frames")
        pixels = np.stack(self._record["pixels"])  # (T, 17, 2)
        roots = np.stack(self._record["roots"]) if self._record["roots"] else None  # (T, 3)
        return LiftResult(poses=np.stack(self._record["poses"]), filled=np.stack(self._record["filled"]),
                          keypoints_2d=pixels, keypoints_2d_normalized=normalized_keypoints(pixels, self.width,
                                                                                             self.height),
                          layout=self.layout, width=self.width, height=self.height, notes=self.notes,
                          trajectory=roots)
