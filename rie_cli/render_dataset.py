"""`rie render`: one sequence of a prepared file drawn with its prediction.

    render_dataset_sequence(Path("demo.h5"), "BN2-normal", "walk 001.1", 0, Path("walk.gif"),
                            keypoints="gt", checkpoint=Path("ckpt.bin"))

`plan_dataset_render` picks the (subject, action, camera) sequence, gets its
prediction from a checkpoint (through `rie_cli.loading.load_models`, like
`rie evaluate`) or from a predictions file, and restores world coordinates as the
authors do: the ground-truth root trajectory is added to the root-relative poses and
the camera transform is inverted (or, with a trajectory model, the root it predicts).
`render_dataset_sequence` then draws it with `rie_cli.render.render_animation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rie_cli.cameras import Camera, image_coordinates, poses_to_world
from rie_cli.errors import RieError, did_you_mean
from rie_cli.render import check_output, frame_indices, frame_size, render_animation, video_frame_count
from rie_cli.skeleton import Skeleton


@dataclass
class RenderResult:
    """What `render_dataset_sequence` wrote."""

    path: Path
    description: str
    frames: int
    frame_size: tuple[int, int]  # (width, height) pixels


def render_dataset_sequence(
    data: Path,
    subject: str,
    action: str,
    camera: int,
    output: Path,
    *,
    keypoints: str | None = None,
    checkpoint: Path | None = None,
    predictions: Path | None = None,
    ground_truth: bool = True,
    tta: bool = True,
    device: str = "cpu",
    allow_unsafe_load: bool = False,
    video: Path | None = None,
    video_skip: int = 0,
    size: float = 6,
    downsample: int = 1,
    limit: int | None = None,
    bitrate: int = 3000,
    fps: float | None = None,
    frame: int | None = None,
    crop: bool = True,
    smoothing=None,
    on_start: Callable[[int, str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    trajectory: Path | None = None,
    foot_lock: bool = False,
) -> RenderResult:
    """`rie render`: draw one sequence of a prepared file with its prediction.

    With `trajectory` (a trajectory model) the prediction is placed at its predicted
    root and drawn moving through the scene (`fixed_view`), beside the ground truth;
    `foot_lock` keeps its planted feet still (`rie_cli.trajectory.place_motion`).

    `fps` is the output's frame rate (default: the data's divided by `downsample`).
    `smoothing` (a `rie_cli.smoothing.Smoothing`) filters the prediction first.
    `on_start(frames, description)` is called once the number of frames to draw is
    known, then `progress(n)` while drawing.
    """
    output = Path(output)
    check_output(output, frame)
    video_frames = None if video is None else video_frame_count(video, video_skip)  # before predicting
    plan = plan_dataset_render(data, subject, action, camera, keypoints, checkpoint=checkpoint,
                               predictions=predictions, ground_truth=ground_truth, tta=tta, device=device,
                               allow_unsafe_load=allow_unsafe_load, trajectory=trajectory,
                               smoothing=smoothing, foot_lock=foot_lock)
    if frame is not None:
        frames = 1
    else:
        frames = len(frame_indices(len(plan.keypoints_2d), downsample=max(downsample, 1), limit=limit,
                                   video_frames=video_frames))
    if on_start is not None:
        on_start(frames, plan.description)
    sequence_fps = plan.fps if fps is None else fps * downsample
    render_animation(plan.keypoints_2d, plan.poses_3d, skeleton=plan.skeleton, output=output,
                     fps=sequence_fps, azimuth=plan.camera.azimuth,
                     resolution=(plan.camera.res_w, plan.camera.res_h), video=video, video_skip=video_skip,
                     size=size, downsample=downsample, limit=limit, bitrate=bitrate, frame=frame,
                     crop=crop, progress=progress, fixed_view=plan.fixed_view)
    return RenderResult(path=output, description=plan.description, frames=frames,
                        frame_size=frame_size(size, 1 + len(plan.poses_3d)))


@dataclass
class RenderPlan:
    """What `rie render` will draw (the CLI sizes its progress bar from `frames`)."""

    keypoints_2d: np.ndarray  # (T, J, 2) pixels
    poses_3d: dict[str, np.ndarray]  # title -> (T, J, 3) world metres
    skeleton: Skeleton
    camera: Camera
    fps: float
    description: str
    fixed_view: bool = False  # the poses move through the scene: draw them in one fixed area


def plan_dataset_render(
    data: Path,
    subject: str,
    action: str,
    camera: int,
    keypoints: str | None = None,
    *,
    checkpoint: Path | None = None,
    predictions: Path | None = None,
    ground_truth: bool = True,
    tta: bool = True,
    device: str = "cpu",
    allow_unsafe_load: bool = False,
    trajectory: Path | None = None,
    smoothing=None,
    foot_lock: bool = False,
) -> RenderPlan:
    """Load one (subject, action, camera) sequence and its prediction in world space.

    Without `trajectory` the prediction gets the ground-truth root (the authors'
    rendering); with it, the root the trajectory model predicts.
    """
    from rie_cli.data.dataset import PoseDataset

    if (checkpoint is None) == (predictions is None):
        raise RieError("give either --checkpoint or --predictions (exactly one)")
    if foot_lock and trajectory is None:
        raise RieError("--foot-lock needs --trajectory: feet are planted where the trajectory model places the body")
    dataset = PoseDataset(data)
    if predictions is not None:
        keypoints = _keypoints_of(predictions, keypoints)
    sequence = _find_sequence(dataset, subject, action, camera, keypoints)
    if checkpoint is not None:
        prediction = _predict_one(checkpoint, sequence, dataset.skeleton, tta, device, allow_unsafe_load)
    else:
        prediction = _read_prediction(predictions, sequence)

    if smoothing is not None:
        prediction = smoothing.apply(prediction, dataset.fps)
    cam = sequence.camera
    if trajectory is not None:
        from rie_cli.loading import load_trajectory_model
        from rie_cli.trajectory import place_motion, predict_trajectories

        traj_model = load_trajectory_model(trajectory, dataset.skeleton, device, allow_unsafe_load).model
        root = predict_trajectories(traj_model, [sequence.keypoints_2d], skeleton=dataset.skeleton, tta=tta,
                                    device=device)[0]  # (T, 3)
        if smoothing is not None:
            root = smoothing.apply(root, dataset.fps)
        poses = {"Prediction": place_motion(prediction, root, dataset.skeleton, dataset.fps, camera=cam,
                                            foot_lock=foot_lock).poses}
    else:
        poses = {"Prediction": poses_to_world(prediction, cam, sequence.trajectory)}
    if ground_truth and sequence.positions_3d is not None:
        poses["Ground truth"] = poses_to_world(sequence.positions_3d, cam, sequence.trajectory)
    return RenderPlan(
        keypoints_2d=image_coordinates(sequence.keypoints_2d, cam.res_w, cam.res_h),
        poses_3d=poses,
        skeleton=dataset.skeleton,
        camera=cam,
        fps=dataset.fps,
        description=f"{subject} / {action} / camera {camera}",
        fixed_view=trajectory is not None,
    )


def _find_sequence(dataset, subject: str, action: str, camera: int, keypoints: str | None):
    """The one (subject, action, camera) sequence, or a RieError naming what the file has."""
    if keypoints is None:  # ground-truth 2D where the file has it
        keypoints = "gt" if "gt" in dataset.keypoint_sources else dataset.keypoint_sources[0]
    if subject not in dataset.subjects():
        raise RieError(f"unknown subject '{subject}' (the file has: {', '.join(dataset.subjects())})")
    known_actions = dataset.actions(subject)
    if action not in known_actions:
        raise RieError(f"unknown action '{action}' of subject {subject}{did_you_mean(action, known_actions)}")
    n_cameras = len(dataset.cameras.for_subject(subject))
    if not 0 <= camera < n_cameras:
        raise RieError(f"unknown camera {camera}: subject {subject} has cameras 0 to {n_cameras - 1}")
    candidates = dataset.sequences([subject], keypoints, actions=[action], cameras=[camera])
    # Actions are matched by prefix: keep the exact one.
    return next(s for s in candidates if s.action == action)


def _keypoints_of(predictions: Path, keypoints: str | None) -> str | None:
    """The 2D source to draw beside a predictions file: the one its poses were lifted from
    (drawn beside other 2D, the input panel would not show what the model saw)."""
    from rie_cli.predictions import recorded_keypoints

    source = recorded_keypoints(predictions)
    if source is None:  # a `rie predict` clip, or a file that does not say
        return keypoints
    if keypoints is not None and keypoints != source:
        raise RieError(f"{Path(predictions).name} was predicted from the '{source}' 2D keypoints, not "
                       f"'{keypoints}': render it with -k {source}")
    return source


def _read_prediction(predictions: Path, sequence) -> np.ndarray:
    """The sequence's (T, J, 3) root-relative camera-space poses from a predictions file."""
    from rie_cli.predictions import read_sequence_poses

    subject, action, camera = sequence.subject, sequence.action, sequence.camera_index
    prediction = read_sequence_poses(predictions, subject, action, camera)
    if prediction.shape != sequence.keypoints_2d.shape[:2] + (3,):
        raise RieError(f"{Path(predictions).name} holds {prediction.shape} for {subject} / {action} "
                       f"camera {camera}, but the sequence is {sequence.keypoints_2d.shape[:2] + (3,)}")
    return prediction


def _predict_one(checkpoint, sequence, skeleton, tta, device, allow_unsafe_load) -> np.ndarray:
    from rie_cli.loading import load_models

    loaded, _ = load_models(checkpoint, None, skeleton, "the data", device=device, tta=tta,
                            allow_unsafe=allow_unsafe_load)
    return loaded.predict([sequence.keypoints_2d])[0]
