"""Issue 17's training side: knottier shake (tfdeblur.knots), JPEG in training crops, and frame
batches mixed into every step (tfdeblur.frame_data)."""
import numpy as np
import pytest

from tfdeblur import blur, frame_data, knots
from tfdeblur.config import ConfigError, load_config
from tfdeblur.kernels import KernelParams, kernel_bank, kernel_centroid


@pytest.mark.parametrize("preset", ["train-knotty", "eval-knotty"])
def test_knotty_kernels_are_normalised_centred_and_deterministic(preset):
    a = blur.preset_bank(preset, 24, seed=5)
    assert np.allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert (a >= 0).all()
    assert np.abs(kernel_centroid(a)).max() < 1e-3
    assert np.array_equal(a, blur.preset_bank(preset, 24, seed=5))
    assert not np.array_equal(a, blur.preset_bank(preset, 24, seed=6))


def test_dwell_points_pile_mass_where_the_camera_stops():
    smooth = KernelParams(length=(40.0, 40.0), anxiety=(0.0, 0.0))
    dwell = KernelParams(length=(40.0, 40.0), anxiety=(0.0, 0.0), dwell=(2, 2))
    # Straight 40 px paths: without dwell, mass is spread evenly; with it, a bright spot appears.
    assert kernel_bank(32, seed=1, params=dwell).max(axis=(1, 2)).mean() > 2 * kernel_bank(
        32, seed=1, params=smooth).max(axis=(1, 2)).mean()


def test_knots_turn_a_straight_path():
    straight = KernelParams(length=(40.0, 40.0), anxiety=(0.0, 0.0)).validated()
    rng = np.random.default_rng(0)
    x = np.linspace(0, 40, 1000)[None, :].astype(np.complex128).repeat(8, axis=0)
    turned = knots.roughen_paths(x.copy(), KernelParams(knots=(1, 1)).validated(), rng)
    # Same samples along the same length, but no longer on one line: the end is nearer the start.
    assert np.all(np.abs(turned[:, -1] - turned[:, 0]) < 40 * 0.95)
    assert knots.roughen_paths(x.copy(), straight, rng) == pytest.approx(x)


def test_defocus_of_a_delta_is_the_disk():
    d = knots.disk(2.0)
    assert d.shape == (5, 5) and d.sum() == pytest.approx(1.0) and d[2, 2] == d.max() and d[0, 0] < d[0, 2]
    p = KernelParams(length=(0.0, 0.0), defocus=(2.0, 2.0)).validated()
    k = kernel_bank(3, seed=0, params=p)
    assert k.shape[1] >= 5 and np.allclose(k.sum(axis=(1, 2)), 1.0, atol=1e-5)
    c = k.shape[1] // 2
    assert np.allclose(k[0, c - 2:c + 3, c - 2:c + 3], d, atol=1e-4)


def test_knotty_params_are_validated():
    for bad in ({"knots": (3, 1)}, {"dwell": (-1, 0)}, {"defocus": (0, 50)}, {"speed_jitter": -1}):
        with pytest.raises(ValueError):
            KernelParams(**bad).validated()


def test_smooth_presets_are_untouched_by_the_new_fields():
    # Banks of the shipped presets must not change (saved evaluation banks depend on them).
    p = blur.PRESETS["eval"]
    assert not p.knotty and p.defocus == (0.0, 0.0)
    a = kernel_bank(4, seed=3, params=p)
    b = kernel_bank(4, seed=3, params=KernelParams(length=p.length, anxiety=p.anxiety))
    assert np.array_equal(a, b)


def test_train_dataset_jpeg_is_deterministic_and_changes_only_the_blurred_side():
    from tfdeblur.data import train_dataset

    rng = np.random.default_rng(0)
    images = (rng.random((4, 64, 64, 3)) * 255).astype(np.uint8)
    kw = dict(batch_size=4, crop=32, seed=2, total_steps=1, kernel_params=KernelParams(length=(3.0, 5.0)))
    plain = next(iter(train_dataset(images, **kw)))
    jpeg = next(iter(train_dataset(images, jpeg_prob=1.0, jpeg_quality=(20, 20), **kw)))
    again = next(iter(train_dataset(images, jpeg_prob=1.0, jpeg_quality=(20, 20), **kw)))
    assert np.array_equal(plain[1].numpy(), jpeg[1].numpy())  # sharp targets identical
    assert np.abs(plain[0].numpy() - jpeg[0].numpy()).mean() > 0.01
    assert np.array_equal(jpeg[0].numpy(), again[0].numpy())


def test_frame_batches_mix_into_every_step(lfw_dir):
    from tfdeblur.data import train_dataset
    from tfdeblur.scenes import face_photos

    photos, boxes, _ = face_photos(lfw_dir, split="train", limit=6)
    frames = frame_data.training_frames(photos, boxes, 3, 96, (16.0, 48.0), 4, seed=1)
    assert frames.shape == (3, 96, 96, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, frame_data.training_frames(photos, boxes, 3, 96, (16.0, 48.0), 4, seed=1))
    assert frame_data.frame_batch_size(8, 0.5) == 4 and frame_data.frame_batch_size(2, 0.9) == 1
    assert frame_data.frame_batch_size(8, 0.0) == 0
    crops = np.stack([np.asarray(p[:64, :64]) for p in photos])
    kp = KernelParams(length=(3.0, 6.0))
    a = train_dataset(crops, 3, 32, seed=0, total_steps=2, kernel_params=kp)
    b = train_dataset(frames, 1, 32, seed=1, total_steps=2, kernel_params=kp)
    batches = list(frame_data.mixed_dataset(a, b))
    assert len(batches) == 2 and all(x.shape == (4, 32, 32, 3) and y.shape == (4, 32, 32, 3) for x, y in batches)


def test_frames_and_jpeg_config_is_checked():
    cfg = load_config(None, {"data.frames.fraction": 0.5, "data.jpeg.prob": 0.3, "data.frames.blur.length": [5, 9]})
    assert cfg["data"]["frames"]["blur"] == {"preset": "train-knotty", "length": [5, 9]}
    for key, value in (("data.frames.fraction", 1.0), ("data.jpeg.prob", 2), ("data.jpeg.quality", [90, 10]),
                       ("data.frames.count", 0), ("data.frames.face_heights", [4, 10])):
        with pytest.raises(ConfigError, match=key.split(".")[-1]):
            load_config(None, {key: value})


def _psnr(a, b):
    return float(10 * np.log10(4.0 / np.mean((a - b) ** 2)))  # images in [-1, 1]


def test_small_faces_are_degraded_at_their_own_scale_and_deterministic(lfw_dir):
    from tfdeblur.data import load_faces, load_split

    images, _ = load_faces(load_split(lfw_dir).train[:6], 128)
    sharp_only = KernelParams(length=(0.0, 0.0))  # a delta kernel: only the trip through the small size
    kw = dict(batch_size=4, crop=64, seed=3, total_steps=2, kernel_params=sharp_only)
    tiny = list(frame_data.small_face_dataset(images, face_heights=(12.0, 12.0), **kw))
    large = list(frame_data.small_face_dataset(images, face_heights=(50.0, 50.0), **kw))
    again = list(frame_data.small_face_dataset(images, face_heights=(12.0, 12.0), **kw))
    for (x, y), (x2, y2) in zip(tiny, again):
        assert x.shape == y.shape == (4, 64, 64, 3)
        assert np.array_equal(x.numpy(), x2.numpy()) and np.array_equal(y.numpy(), y2.numpy())
    # A crop of the whole image: the sharp side is a source image (or its mirror). A 12 px face
    # loses far more than a 50 px one (the crop-scale face here is 0.45 * 128 = 58 px).
    whole = next(iter(frame_data.small_face_dataset(images, face_heights=(12.0, 12.0), **{**kw, "crop": 128})))[1]
    src = images.astype(np.float32) / 127.5 - 1
    for w in whole.numpy():
        assert min(min(np.abs(s - w).max(), np.abs(s[:, ::-1] - w).max()) for s in src) < 1e-5
    assert _psnr(tiny[0][0].numpy(), tiny[0][1].numpy()) < _psnr(large[0][0].numpy(), large[0][1].numpy()) - 2
    blurred = list(frame_data.small_face_dataset(images, face_heights=(12.0, 12.0), **{
        **kw, "kernel_params": KernelParams(length=(20.0, 20.0))}))  # a kernel larger than the 27 px image
    assert np.isfinite(blurred[0][0].numpy()).all()
    assert _psnr(blurred[0][0].numpy(), blurred[0][1].numpy()) < _psnr(tiny[0][0].numpy(), tiny[0][1].numpy())


def test_small_faces_config_is_checked():
    cfg = load_config(None, {"data.small_faces.fraction": 0.25, "data.small_faces.blur.length": [5, 9]})
    assert cfg["data"]["small_faces"]["blur"] == {"preset": "train-knotty", "length": [5, 9]}
    for key, value in (("data.small_faces.fraction", 1.0), ("data.small_faces.face_heights", [50, 10])):
        with pytest.raises(ConfigError, match=key.split(".")[-1]):
            load_config(None, {key: value})
    with pytest.raises(ConfigError, match="leave room for crops"):
        load_config(None, {"data.small_faces.fraction": 0.5, "data.frames.fraction": 0.5})
