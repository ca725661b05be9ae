"""What a run trains and validates on: the sequences its options select, and the window
samplers over them for this process.

    data = load_data(opts)                      # RunData: sequences + the selection made
    sampler, where = run_sampler(data.train, config, opts, dist, train=True, skeleton=data.skeleton)

Training windows are shuffled, flip-augmented, thinned by --window-stride and, with
--virtual-cameras, re-projected through random cameras; the per-epoch evaluation runs
over every window of its sequences, in order: no training option applies to it.
`rie_cli.training.trainer` runs the epochs over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from rie_cli.data.dataset import PoseDataset, WorldSequence
from rie_cli.data.virtual_cameras import CameraDistribution
from rie_cli.data.virtual_windows import virtual_sampler
from rie_cli.data.windows import WindowSampler, make_sampler
from rie_cli.errors import RieError
from rie_cli.model import ModelConfig
from rie_cli.training import distributed
from rie_cli.training.options import TrainOptions


@dataclass
class RunData:
    """The sequences a run trains and validates on, and the selection they came from."""

    skeleton: object
    keypoints: str | None  # the keypoint source (the file's only one when not given; None: 3D only)
    subjects_train: list[str]  # as given, or the file's training split
    subjects_test: list[str]  # as given, or the file's test split
    train: list
    val: list  # [] with --no-eval


def load_data(opts: TrainOptions) -> RunData:
    """The training and validation sequences the options select.

    The options are left as they are: the keypoint source and subjects that were not
    given (the file's defaults) are returned in `RunData`, for the caller to record.
    """
    dataset = PoseDataset(opts.data)
    if not dataset.keypoint_sources:
        return _world_data(dataset, opts)
    keypoints = opts.keypoints
    if keypoints is None:
        if len(dataset.keypoint_sources) != 1:
            raise RieError(
                f"{opts.data.name} holds several keypoint sources ({', '.join(dataset.keypoint_sources)}): "
                "choose one with --keypoints"
            )
        keypoints = dataset.keypoint_sources[0]
    dataset.check_source(keypoints)
    subjects_train = list(dataset.train_subjects) if opts.subjects_train is None else opts.subjects_train
    subjects_test = list(dataset.test_subjects) if opts.subjects_test is None else opts.subjects_test
    if not subjects_train:
        raise RieError(f"{opts.data.name} defines no training subjects: choose them with --train-subjects")
    train = dataset.sequences(subjects_train, keypoints, opts.actions, subset=opts.subset,
                              downsample=opts.downsample)
    val = []
    if opts.evaluate:
        if not subjects_test:
            raise RieError(f"{opts.data.name} defines no test subjects: choose them with --test-subjects "
                           "or pass --no-eval")
        val = dataset.sequences(subjects_test, keypoints, opts.actions)
    for seq in train + val:
        _check_trainable(seq, opts.target)
    return RunData(dataset.skeleton, keypoints, subjects_train, subjects_test, train, val)


def _world_data(dataset: PoseDataset, opts: TrainOptions) -> RunData:
    """A file of 3D alone (no 2D sources, e.g. `rie prepare-data bvh` without --cameras):
    trainable through virtual cameras only, and with nothing to evaluate on each epoch."""
    name = opts.data.name
    if opts.virtual_cameras is None:
        raise RieError(f"{name} holds 3D only (no 2D sources): train on it with --virtual-cameras")
    if opts.keypoints is not None:
        raise RieError(f"{name} holds 3D only: it has no keypoint source {opts.keypoints}; leave --keypoints out")
    if opts.evaluate:
        raise RieError(f"{name} holds 3D only: there is no 2D to evaluate each epoch on; pass --no-eval "
                       "(and rie evaluate on a file with 2D)")
    subjects_train = list(dataset.train_subjects) if opts.subjects_train is None else opts.subjects_train
    subjects_test = list(dataset.test_subjects) if opts.subjects_test is None else opts.subjects_test
    if not subjects_train:
        raise RieError(f"{name} defines no training subjects: choose them with --train-subjects")
    train = dataset.world_sequences(subjects_train, opts.actions, subset=opts.subset, downsample=opts.downsample)
    return RunData(dataset.skeleton, None, subjects_train, subjects_test, train, [])


def _check_trainable(seq, target: str) -> None:
    """RieError for a sequence a run cannot learn from."""
    if seq.positions_3d is None:
        raise RieError(f"{seq.subject}/{seq.action} camera {seq.camera_index} has no 3D poses to train on")
    if target == "trajectory" and not (seq.trajectory[:, 2] > 0).all():
        # The loss weighs each window by 1 / depth: a root on or behind the camera
        # plane means broken camera extrinsics, not a person to learn from.
        raise RieError(f"{seq.subject}/{seq.action} camera {seq.camera_index}: the root is not in front of "
                       "the camera in every frame (depth <= 0); check the cameras' extrinsics")


def _targets(seqs, target: str) -> list[np.ndarray]:
    """What the model learns per frame: root-relative poses (N, J, 3) or the root (N, 1, 3)."""
    if target == "trajectory":
        return [s.trajectory[:, None, :] for s in seqs]
    return [s.positions_3d for s in seqs]


# BatchNorm in training mode normalises over the batch: one window has no variance.
MIN_TRAINING_BATCH = 2


def run_sampler(data_seqs, config: ModelConfig, opts: TrainOptions, dist: distributed.Distributed, *,
             train: bool, skeleton) -> tuple[WindowSampler, str]:
    """The sampler of `data_seqs` for this process (batches built on its device if they fit) and
    a line saying where its batches are built.

    Training windows are shuffled, flip-augmented and thinned by --window-stride; the
    per-epoch evaluation runs over every window of its sequences, in order (none of
    the training options apply to it).
    """
    # --batch-size is the batch of one optimisation step over all processes, so the
    # recipe means the same whatever the number of processes.
    per_process = -(-opts.batch_size // dist.world_size)
    training = {}
    if train:
        if per_process < MIN_TRAINING_BATCH:
            raise RieError(f"--batch-size {opts.batch_size} gives {per_process} window per process and step: "
                           f"training needs at least {MIN_TRAINING_BATCH} (BatchNorm normalises over the batch)")
        training = dict(shuffle=True, augment=opts.augment, window_stride=opts.window_stride or 1,
                        min_batch=MIN_TRAINING_BATCH)
    make = make_sampler
    if train and opts.virtual_cameras is not None:  # --virtual-cameras: rie_cli/data/virtual_windows.py
        make = partial(virtual_sampler, data_seqs, distribution=CameraDistribution.from_dict(opts.virtual_cameras),
                       target=config.target)
    world_only = bool(data_seqs) and isinstance(data_seqs[0], WorldSequence)  # the sampler draws every 2D
    return make(
        None if world_only else [s.keypoints_2d for s in data_seqs],
        None if world_only else _targets(data_seqs, config.target),
        config.receptive_field(), per_process, skeleton=skeleton, seed=opts.seed,
        causal_shift=config.causal_shift, num_shards=dist.world_size, shard_index=dist.rank,
        device=dist.device, **training,
    )
