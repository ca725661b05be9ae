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

Each push costs one window per person (two with flip TTA): RIE's temporal encoding is
relative to the predicted frame, so windows share no work past the first layer
(rie_cli.inference). The per-frame encodings of the last R frames sit in a ring buffer
of the folded model's `frame_features`; a push computes those of the new frame only,
writes them over the oldest slot and runs `forward_windows` on a precomputed index row
of the ring, so its large buffers are reused from push to push. A stream of several
people (`people=P`) pushes all P in one call: one `forward_windows` of 2P windows, so
the weights are read once per push, not once per person.

Missing points are filled causally (`_CausalFiller`), which is where a stream can differ
from `lift`; see docs/api.md:
- frames are held back until every joint the model needs has been seen once (for COCO:
  the body joints and one face joint); those first frames are then filled exactly as
  `lift` fills them (interpolation between seen values, the first seen value held
  backwards);
- after that a missing point holds its last seen value. `lift` interpolates a gap
  between two seen values instead (it knows the future); a gap that lasts to the end
  of the sequence is held in both. Without such interior gaps the two agree.
- with several people, a frame comes out once every person's pose for it is known (a
  person not yet seen in full holds the others back, as one person's missing joint
  does); a person missing from a frame is a frame of missing points (NaN).
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
    """Missing points of a stream of P people filled without looking ahead; COCO mapped to Human3.6M."""

    def __init__(self, layout: str, min_score: float, people: int):
        if layout not in LAYOUTS:
            raise RieError(f"unknown layout '{layout}' (choose from {', '.join(LAYOUTS)})")
        self.layout = None if layout == "auto" else layout
        self.min_score = min_score
        self.people = people
        self.notes: list[str] = []
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (points (P, 17, 2), valid (P, 17)) before the start
        self._last: np.ndarray | None = None  # (P, 17, 2) each joint's last value, once started
        self._seen: np.ndarray | None = None  # (P, 17) joints seen so far, once started

    def push(self, points: np.ndarray, scores: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """One frame (P, 17, 2) pixels, scores (P, 17) or None -> the frames now ready, each
        (Human3.6M pixels (P, 17, 2) float32, filled (P, 17) bool); none while held back."""
        valid = valid_mask(points, scores, self.min_score)  # (P, 17)
        if self._last is None:
            self._pending.append((points, valid))
            return self._start(final=False)
        filled = np.where(valid[..., None], points, self._last)  # (P, 17, 2): hold the last seen value
        self._last = filled
        seen_before = self._seen
        self._seen = seen_before | valid
        return self._mapped(filled[None], ~valid[None], seen_before)

    def flush(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The frames still held back (all joints never seen: the error `lift` gives)."""
        return self._start(final=True) if self._pending else []

    def _start(self, final: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        points = np.stack([p for p, _ in self._pending])  # (N, P, 17, 2)
        valid = np.stack([v for _, v in self._pending])  # (N, P, 17)
        if self.layout is None:
            try:
                self.layout = detect_layout(np.where(valid[..., None], points, np.nan).reshape(-1, 17, 2))
            except RieError:
                if final:
                    raise
                return []  # not decided yet: wait for more frames
            self.notes.append(f"joint order not stated: read as {self.layout} from the body's geometry "
                              f"in the first {len(points)} frame(s)")
        seen = valid.any(0)  # (P, 17)
        ready = seen.all(-1) if self.layout == "h36m" else coco_ready(seen)  # (P,)
        if not ready.all():
            if final:  # the error `lift` gives for these frames
                person = int(np.flatnonzero(~ready)[0])
                track = KeypointTrack(points[:, person], None, self.layout, "array")
                try:
                    prepare_keypoints(track, self.layout, self.min_score)
                except RieError as exc:
                    prefix = f"person {person}: " if self.people > 1 else ""
                    raise RieError(prefix + exc.template, arguments=exc.arguments) from None
            return []
        # The first frames, known together: filled as `lift` fills them.
        filled_points = np.stack([fill_gaps(points[:, p], valid[:, p])[0] for p in range(self.people)], 1)
        self._pending = []
        self._last = filled_points[-1]  # (P, 17, 2)
        self._seen = seen
        return self._mapped(filled_points, ~valid)

    def _mapped(self, points: np.ndarray, filled: np.ndarray,
                seen_before: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(N, P, 17, 2) filled points in the input layout -> Human3.6M frames. `seen_before`
        (P, 17): the joints seen before these frames, from which the COCO face points are
        chosen as `lift` chooses them (`coco_to_h36m`: those seen so far)."""
        if self.layout == "coco":
            mapped = [coco_to_h36m(points[:, p], filled[:, p], None if seen_before is None else seen_before[p])
                      for p in range(self.people)]
            points = np.stack([m[0] for m in mapped], 1)
            filled = np.stack([m[1] for m in mapped], 1)
            for _, _, notes in mapped:
                self.notes.extend(n for n in notes if n not in self.notes)
        return list(zip(points.astype(np.float32), filled))


class _WindowRing:
    """The per-frame features of P people's last R frames (plain, then mirrored), one window
    per person and copy per push.

    Row (c * P + p) * R + s of the features holds copy c (plain, mirrored) of person p's
    frame in ring slot s."""

    def __init__(self, inference, people: int):
        self.form = inference.evaluation_form()
        self.device = inference.device
        self.tta = inference.tta
        self.people = people
        self.size = inference.receptive_field
        self.flip = torch.as_tensor(inference.skeleton.flip_permutation(), device=self.device)
        # Outputs are mirrored back with the same permutation, or, for a trajectory model's
        # root alone, by negating x (it has no left or right).
        whole = inference.config.output_joints == inference.config.num_joints
        self.out_flip = self.flip if whole else torch.zeros(1, dtype=torch.int64, device=self.device)
        r, windows = self.size, people * (2 if self.tta else 1)
        # Row s: the ring slots of the window whose newest frame is in slot s, oldest first,
        # for each person and copy.
        slots = (torch.arange(r)[:, None] + 1 + torch.arange(r)[None, :]) % r  # (R, R)
        self.table = (slots[:, None, :] + r * torch.arange(windows)[None, :, None]).to(self.device)  # (R, W, R)
        self.features = None
        self.slot = -1
        self.last: torch.Tensor | None = None  # (P, J, 2) the newest frame

    def push(self, frame: torch.Tensor) -> np.ndarray:
        """(P, J, 2) normalised frame -> (P, J_out, 3) float32 outputs of the windows ending with it."""
        frame = frame.to(self.device)
        self.last = frame
        rows = torch.cat((frame, mirror(frame, self.flip))) if self.tta else frame  # (W, J, 2): plain, mirrored
        if self.features is None:
            # Edge padding before the start: every slot holds the first frame.
            self.features = self.form.frame_features(rows.repeat_interleave(self.size, dim=0))  # (W*R, ...)
            self.slot = self.size - 1
        else:
            self.slot = (self.slot + 1) % self.size
            _store(self.features, self.slot, self.size, self.form.frame_features(rows))
        poses = self.form.forward_windows(self.features, self.table[self.slot])  # (W, J_out, 3)
        if self.tta:
            p = self.people
            poses = (poses[:p] + mirror(poses[p:], self.out_flip)) / 2  # (P, J_out, 3)
        return poses.cpu().numpy()


def _store(features, slot: int, stride: int, new) -> None:
    """Write the features of one frame (W rows: every person, plain then mirrored) into
    ring slot `slot` of each (rows w * stride + slot). `features` is the folded form's
    `FrameFeatures` or, for a model run as it is, the frames themselves (W * R, J, 2)."""
    tensors = [features] if isinstance(features, torch.Tensor) else [features.poses, *features.parts]
    new_tensors = [new] if isinstance(new, torch.Tensor) else [new.poses, *new.parts]
    for buffer, rows in zip(tensors, new_tensors):
        buffer.view(len(rows), stride, *buffer.shape[1:])[:, slot] = rows


class LiftStream:
    """Push one frame's keypoints at a time; get each frame's pose as soon as it is known.

    `push(frame)`: (17, 2|3) pixels (a third column is a confidence score) -> list of
    (frame index, (17, 3) float32 pose), in frame order; `flush()` ends the sequence and
    returns the poses still owed. `delay` is how many frames a pose waits for (0 causal,
    R // 2 centred), not counting frames held back until every joint was seen once.
    With `people=P`, a frame is (P, 17, 2|3), every person's keypoints in a fixed order
    (NaN rows for a person not in the frame), and each pose (P, 17, 3).
    With a trajectory model the poses are in camera space: the pose placed at the root
    that model predicts (`rie_cli.trajectory.absolute_poses`; each model with its own
    window; a frame comes when both know it).
    """

    def __init__(self, inference, trajectory=None, *, width: int, height: int, layout: str = "auto",
                 min_score: float = 0.3, record: bool = False, people: int | None = None):
        self.width, self.height, _ = image_size(KeypointTrack(np.empty((0, 17, 2)), None, None, "array"),
                                                width, height)
        if people is not None and (isinstance(people, bool) or not isinstance(people, int) or people < 1):
            raise RieError(f"people must be a positive number of people per frame, got {people!r}")
        self.people = people
        count = 1 if people is None else people
        models = [inference] + ([trajectory] if trajectory is not None else [])
        self._rings = [_WindowRing(m, count) for m in models]
        self._delays = [m.delay for m in models]
        self.delay = max(self._delays)
        self._filler = _CausalFiller(layout, min_score, count)
        self._ready: list[dict[int, np.ndarray]] = [{} for _ in models]  # per model: frame -> (P, J_out, 3)
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
        shapes = ((17, 2), (17, 3)) if self.people is None else ((self.people, 17, 2), (self.people, 17, 3))
        if frame.shape not in shapes:
            raise RieError(f"a frame's keypoints must have shape {shapes[0]} or {shapes[1]}, got {frame.shape}")
        points, scores = split_scores(frame.reshape(-1, 17, frame.shape[-1]), "the frame")  # (P, 17, 2), (P, 17)
        for pixels, filled in self._filler.push(points, scores):
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
        """One frame of every person: (P, 17, 2) pixels, (P, 17) filled."""
        normalized = torch.from_numpy(normalized_keypoints(pixels, self.width, self.height))  # (P, 17, 2)
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
            pose, *root = (ready.pop(t) for ready in self._ready)  # (P, 17, 3), (P, 1, 3)
            if self._record is not None:
                self._record["poses"].append(pose)
                self._record["roots"].extend(r[:, 0] for r in root)
            placed = absolute_poses(pose, root[0][:, 0]) if root else pose  # (P, 17, 3)
            out.append((t, placed[0] if self.people is None else placed))
            self._emitted += 1
        return out

    def result(self):
        """Everything a `record=True` stream lifted, after `flush()`, as a `LiftResult`
        (poses root-relative, the roots in `trajectory`, as `Lifter.lift` gives them);
        with `people`, a list of one `LiftResult` per person."""
        if self._record is None or not self._closed:
            raise RieError("stream.result() needs a stream made with record=True and flushed")
        if not self._record["poses"]:
            raise RieError("the stream was given no frames")
        pixels = np.stack(self._record["pixels"])  # (T, P, 17, 2)
        filled = np.stack(self._record["filled"])  # (T, P, 17)
        poses = np.stack(self._record["poses"])  # (T, P, 17, 3)
        roots = np.stack(self._record["roots"]) if self._record["roots"] else None  # (T, P, 3)
        results = [LiftResult(poses=poses[:, p], filled=filled[:, p], keypoints_2d=pixels[:, p],
                              keypoints_2d_normalized=normalized_keypoints(pixels[:, p], self.width, self.height),
                              layout=self.layout, width=self.width, height=self.height, notes=self.notes,
                              trajectory=None if roots is None else roots[:, p])
                   for p in range(pixels.shape[1])]
        return results[0] if self.people is None else results
