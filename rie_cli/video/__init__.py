"""From a video file to one person's 2D keypoints, ready to lift (`rie predict --video`).

- `reader.py`: frames streamed from the file, upright, with its size and frame rate;
- `detector.py`: the detector interface (`PoseDetector`: frames in, keypoints and
  scores out), `detect_video` (a `KeypointTrack`, like any keypoint file's) and
  `write_detections` (`--save-keypoints`);
- `mediapipe_pose.py`: MediaPipe Pose (BlazePose-33 -> COCO-17), the optional `video`
  extra.

Importing this package imports no detector: MediaPipe loads only when one is created.
"""
