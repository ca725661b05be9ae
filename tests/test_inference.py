"""Per-frame sequence prediction against the strided model run window by window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import small_model
from rie_cli.errors import RieError
from rie_cli.inference import predict_many, predict_sequence
from rie_cli.windowing import mirror, window_padding
from rie_cli.skeleton import SKELETONS


def random_walk(frames: int, joints: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.05, (frames, joints, 2)), axis=0) + rng.uniform(-0.5, 0.5, (1, joints, 2))
    return walk.astype(np.float32)  # (T, J, 2)


def window_by_window(model, keypoints: np.ndarray, skeleton, tta: bool) -> np.ndarray:
    """The reference: pad with np.pad('edge'), run the strided model on each window alone."""
    rf = model.receptive_field()
    before, after = window_padding(rf, model.config.causal)
    padded = np.pad(keypoints, ((before, after), (0, 0), (0, 0)), mode="edge")
    perm = torch.as_tensor(skeleton.flip_permutation())
    out = []
    with torch.inference_mode():
        for t in range(len(keypoints)):
            window = torch.from_numpy(padded[t : t + rf])[None]  # (1, R, J, 2)
            pose = model(window)[0, 0]  # (J, 3)
            if tta:
                pose = (pose + mirror(model(mirror(window, perm))[0, 0], perm)) / 2
            out.append(pose.numpy())
    return np.stack(out)


@pytest.mark.parametrize("arch", ["rie", "videopose3d"])
@pytest.mark.parametrize("causal", [False, True])
def test_sequence_path_equals_strided_model_per_window(arch, causal):
    skeleton = SKELETONS["h36m17"]
    model = small_model(arch=arch, causal=causal, fusion=arch == "rie", filter_widths=(3, 3))
    keypoints = random_walk(23, 17)  # longer than the receptive field (9), borders on both sides
    for tta in (False, True):
        expected = window_by_window(model, keypoints, skeleton, tta)
        got = predict_sequence(model, keypoints, skeleton=skeleton, tta=tta, batch_size=10)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_humaneva_skeleton_sequence():
    skeleton = SKELETONS["humaneva15"]
    model = small_model(skeleton="humaneva15", num_joints=15, fusion=True, filter_widths=(3, 5))
    keypoints = random_walk(20, 15, seed=2)
    got = predict_sequence(model, keypoints, skeleton=skeleton, tta=True, batch_size=8)
    np.testing.assert_allclose(got, window_by_window(model, keypoints, skeleton, True), atol=1e-5, rtol=0)


def test_causal_predictions_ignore_the_future():
    skeleton = SKELETONS["h36m17"]
    model = small_model(causal=True, fusion=True, filter_widths=(3, 3, 3))
    keypoints = random_walk(40, 17, seed=3)
    changed = keypoints.copy()
    changed[25:] += 0.3  # only frames from 25 on differ
    a = predict_sequence(model, keypoints, skeleton=skeleton, tta=True)
    b = predict_sequence(model, changed, skeleton=skeleton, tta=True)
    np.testing.assert_array_equal(a[:25], b[:25])
    assert np.abs(a[25:] - b[25:]).max() > 1e-3
    # A centred model does look ahead: frame 20 sees frame 25.
    centred = small_model(causal=False, fusion=True, filter_widths=(3, 3, 3))
    a = predict_sequence(centred, keypoints, skeleton=skeleton, tta=False)
    b = predict_sequence(centred, changed, skeleton=skeleton, tta=False)
    assert np.abs(a[20] - b[20]).max() > 1e-3


def test_flip_augmentation_is_equivariant():
    # With flip TTA, predicting the mirrored sequence gives the mirrored prediction.
    skeleton = SKELETONS["h36m17"]
    model = small_model(fusion=True)
    perm = torch.as_tensor(skeleton.flip_permutation())
    keypoints = random_walk(15, 17, seed=4)
    mirrored = mirror(keypoints, perm)
    a = predict_sequence(model, keypoints, skeleton=skeleton, tta=True)
    b = predict_sequence(model, mirrored, skeleton=skeleton, tta=True)
    np.testing.assert_allclose(mirror(b, perm), a, atol=1e-5, rtol=0)
    assert np.abs(a - predict_sequence(model, keypoints, skeleton=skeleton, tta=False)).max() > 1e-4


def test_short_sequences_and_batch_sizes():
    skeleton = SKELETONS["h36m17"]
    model = small_model(fusion=True, filter_widths=(3, 3, 3))  # receptive field 27
    one = random_walk(1, 17)
    out = predict_sequence(model, one, skeleton=skeleton)
    assert out.shape == (1, 17, 3) and out.dtype == np.float32
    keypoints = random_walk(30, 17, seed=5)
    done = []
    big = predict_sequence(model, keypoints, skeleton=skeleton, batch_size=1024)
    small = predict_sequence(model, keypoints, skeleton=skeleton, batch_size=1, on_batch=done.append)
    np.testing.assert_allclose(small, big, atol=1e-5, rtol=0)
    assert done == [1] * 30


def test_bad_inputs_are_refused():
    skeleton = SKELETONS["h36m17"]
    model = small_model()
    with pytest.raises(RieError, match=r"shape \(frames, 17, 2\)"):
        predict_sequence(model, np.zeros((10, 15, 2), np.float32), skeleton=skeleton)
    with pytest.raises(RieError, match="empty"):
        predict_sequence(model, np.zeros((0, 17, 2), np.float32), skeleton=skeleton)
    bad = random_walk(10, 17)
    bad[3, 4, 0] = np.nan
    with pytest.raises(RieError, match="NaN"):
        predict_sequence(model, bad, skeleton=skeleton)
    with pytest.raises(RieError, match="15"):
        predict_sequence(model, np.zeros((10, 15, 2), np.float32), skeleton=SKELETONS["humaneva15"])
    with pytest.raises(RieError, match="batch size"):
        predict_sequence(model, random_walk(10, 17), skeleton=skeleton, batch_size=0)
    with pytest.raises(RieError, match="precision"):
        predict_sequence(model, random_walk(10, 17), skeleton=skeleton, precision="int8")


def test_many_sequences_share_batches_but_not_windows():
    skeleton = SKELETONS["h36m17"]
    for causal in (False, True):
        model = small_model(fusion=True, causal=causal, filter_widths=(3, 3))
        sequences = [random_walk(n, 17, seed=n) for n in (7, 1, 12, 3)]
        done = []
        together = predict_many(model, sequences, skeleton=skeleton, tta=True, batch_size=6, progress=done.append)
        assert sum(done) == 23 and len(done) == 8  # 3 frames per pass, passes span sequence boundaries
        for seq, got in zip(sequences, together):
            np.testing.assert_allclose(got, window_by_window(model, seq, skeleton, True), atol=1e-5, rtol=0)
    assert predict_many(model, [], skeleton=skeleton) == []


def test_bfloat16_stays_close_to_float32():
    skeleton = SKELETONS["h36m17"]
    model = small_model(fusion=True)
    keypoints = random_walk(12, 17, seed=6)
    full = predict_sequence(model, keypoints, skeleton=skeleton)
    half = predict_sequence(model, keypoints, skeleton=skeleton, precision="bf16")
    assert half.dtype == np.float32
    assert np.abs(half - full).max() < 0.05 * np.abs(full).max()
