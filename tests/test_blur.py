"""Motion-blur synthesis (issue 2): kernels, their application, and ``tfdeblur blur``.

Each defect of the reference implementation (DeblurGAN's ``motion_blur``) that we must not copy
has its own ``test_defect_*``.
"""
import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfdeblur import blur
from tfdeblur.data import make_eval_pairs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _support(k, thr=1e-7):
    return k > thr


def _major_variance(k):
    """Largest eigenvalue of the PSF's weighted coordinate covariance (px^2)."""
    n = k.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    w = k.astype(np.float64) / k.sum()
    my, mx = (w * yy).sum(), (w * xx).sum()
    cyy = (w * (yy - my) ** 2).sum()
    cxx = (w * (xx - mx) ** 2).sum()
    cxy = (w * (yy - my) * (xx - mx)).sum()
    return float(np.linalg.eigvalsh([[cyy, cxy], [cxy, cxx]])[-1])


def _diameter(k):
    """Largest distance between two pixels of the PSF's support."""
    s = _support(k)
    rows = np.flatnonzero(s.any(axis=1))
    # the farthest pair is among each row's first and last support pixel (distance is convex)
    left = [(r, np.flatnonzero(s[r])[0]) for r in rows]
    right = [(r, np.flatnonzero(s[r])[-1]) for r in rows]
    pts = np.array(left + right, np.float64)
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


# ----------------------------------------------------------------------------------- kernels


def test_kernel_properties_over_many_seeds():
    for seed in range(20):
        for params in (blur.KernelParams(), blur.PRESETS["train"], blur.PRESETS["eval"]):
            k = blur.kernel_bank(40, seed=seed, params=params)
            assert k.dtype == np.float32 and k.ndim == 3 and k.shape[1] == k.shape[2] and k.shape[1] % 2 == 1
            assert (k >= 0).all()
            np.testing.assert_allclose(k.astype(np.float64).sum(axis=(1, 2)), 1.0, atol=1e-5)
            assert np.abs(blur.kernel_centroid(k)).max() < 0.5


@pytest.mark.parametrize("length", [8.0, 20.0, 45.0])
def test_straight_paths_span_their_length(length):
    # anxiety 0: straight lines in random directions. A uniform segment of length L has variance
    # L^2 / 12 along its direction (bilinear splatting adds < 1/4 px^2); its support spans L
    # plus at most one pixel at each end.
    k = blur.kernel_bank(30, seed=int(length), length=length, anxiety=0.0)
    for kk in k:
        assert math.sqrt(12 * _major_variance(kk)) == pytest.approx(length, abs=0.6)
        assert length - 1.0 <= _diameter(kk) <= length + 2 * math.sqrt(2)


@pytest.mark.parametrize("for_size", [None, 128])
def test_path_length_follows_the_parameters(for_size):
    # Curved, shaky paths: every trajectory is exactly `length` long (scaled to for_size), and its
    # PSF cannot reach further than that (plus the bilinear neighbour at each end).
    p = blur.KernelParams(length=30.0, anxiety=(0.05, 0.5), for_size=for_size).validated()
    x = blur.trajectories(50, p, np.random.default_rng(7))
    L = 30.0 * p.scale
    np.testing.assert_allclose(np.abs(np.diff(x, axis=1)).sum(axis=1), L, rtol=1e-9)
    for kk in blur.kernel_bank(50, seed=7, params=p):
        assert _diameter(kk) <= L + 2 * math.sqrt(2)


def _reference_bank(n, seed, params):
    """The plain complex-array formulation (the code before the speed-up), for bit-exactness."""
    p = params.validated()
    rng = np.random.default_rng(seed)
    identity = rng.uniform(size=n) < p.p_identity
    T = p.iters
    u = lambda pair: rng.uniform(pair[0], pair[1], size=n) if pair[1] > pair[0] else np.full(n, pair[0])  # noqa: E731
    length, expl, centripetal, shake, big = u(p.length), u(p.anxiety), u(p.centripetal), u(p.gaussian_shake), u(p.prob_big_shake)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    step = length / (T - 1)
    u_big, u_dir = rng.uniform(size=(T - 1, n)), rng.uniform(size=(T - 1, n))
    g = rng.standard_normal(size=(T - 1, n)) + 1j * rng.standard_normal(size=(T - 1, n))
    v = np.exp(1j * angle)
    x = np.zeros((T, n), dtype=np.complex128)
    for t in range(T - 1):
        impulse = np.where(u_big[t] < big * expl, 2.0 * v * np.exp(1j * (np.pi + u_dir[t] - 0.5)), 0.0)
        v = v + impulse + expl * (shake * g[t] * np.sqrt(step) - centripetal * x[t] * step)
        mag = np.abs(v)
        v = np.where(mag > 1e-12, v / np.maximum(mag, 1e-12), np.exp(1j * angle))
        x[t + 1] = x[t] + v * step
    x = (x * p.scale).T
    x = x - x.mean(axis=1, keepdims=True)
    x = np.where(identity[:, None], 0.0, x)
    k = 2 * int(math.floor(float(np.max(np.maximum(np.abs(x.real), np.abs(x.imag)))))) + 3
    k = p.kernel_size or k
    px, py = x.real + (k - 1) / 2, x.imag + (k - 1) / 2
    x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    fx, fy = px - x0, py - y0
    x1, y1 = np.minimum(x0 + 1, k - 1), np.minimum(y0 + 1, k - 1)
    base = (np.arange(n) * k * k)[:, None]
    idx = np.concatenate([base + y0 * k + x0, base + y0 * k + x1, base + y1 * k + x0, base + y1 * k + x1], axis=1)
    w = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1) / T
    psf = np.bincount(idx.ravel(), weights=w.ravel(), minlength=n * k * k).reshape(n, k, k)
    psf /= psf.sum(axis=(1, 2), keepdims=True)
    return psf.astype(np.float32)


def test_determinism_and_bit_exact_speedup():
    a = blur.kernel_bank(64, seed=11)
    assert np.array_equal(a, blur.kernel_bank(64, seed=11))  # same seed: bit-identical
    b = blur.kernel_bank(64, seed=12)
    assert a.shape != b.shape or not np.array_equal(a, b)
    assert np.array_equal(blur.indexed_bank("eval", 300, seed=3)[:10], blur.indexed_bank("eval", 10, seed=3))
    # The vectorised generator computes exactly what the plain complex-array recurrence does.
    for seed, params in [(0, blur.KernelParams()), (5, blur.PRESETS["train"]),
                         (9, blur.KernelParams(anxiety=(0.5, 1.0), prob_big_shake=(0.5, 1.0), for_size=128, iters=300))]:
        mine = blur.kernel_bank(37, seed=seed, params=params)
        ref = _reference_bank(37, seed, params)
        assert mine.shape == ref.shape and np.array_equal(mine, ref), (seed, params)


def test_save_load_roundtrip(tmp_path):
    params = blur.PRESETS["eval"]
    k = blur.kernel_bank(9, seed=2, params=params)
    path = tmp_path / "bank.npz"
    blur.save_bank(path, k, params, names=np.array([f"n{i}" for i in range(9)]))
    k2, p2 = blur.load_bank(path)
    assert k2.dtype == np.float32 and np.array_equal(k, k2)
    assert p2 == json.loads(json.dumps(params.to_dict())) and p2["length"] == [40.0, 60.0]
    assert blur.KernelParams(**{f: tuple(v) if isinstance(v, list) else v for f, v in p2.items()}).validated() == params.validated()
    with np.load(path) as z:
        assert list(z["names"]) == [f"n{i}" for i in range(9)]
    with pytest.raises(ValueError, match="not a readable kernel bank"):
        blur.load_bank(tmp_path / "missing.npz")
    np.savez(tmp_path / "even.npz", kernels=np.ones((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="odd k"):
        blur.load_bank(tmp_path / "even.npz")


# ------------------------------------------------------------------------------ application


def test_delta_image_reproduces_its_kernel():
    # A true convolution of a unit impulse is the kernel itself (not its mirror image).
    k = blur.kernel_bank(3, seed=4, length=(15.0, 25.0))
    asym = np.zeros_like(k[0])
    c = asym.shape[0] // 2
    asym[c, c : c + 6] = 1.0  # an L shape: any flip or transpose would show
    asym[c - 4 : c, c] = 1.0
    k = np.concatenate([k, (asym / asym.sum())[None]])
    size = 2 * k.shape[1] + 1
    img = np.zeros((len(k), size, size, 1), np.float32)
    img[:, size // 2, size // 2, 0] = 1.0
    out = blur.blur_images(img, k).numpy()[..., 0]
    r = k.shape[1] // 2
    patch = out[:, size // 2 - r : size // 2 + r + 1, size // 2 - r : size // 2 + r + 1]
    np.testing.assert_allclose(patch, k, atol=1e-6)
    assert abs(out.sum() - len(k)) < 1e-4  # nothing else anywhere


def test_constant_image_stays_constant():
    k = blur.preset_bank("eval", 2, seed=0)
    img = np.full((2, 96, 80, 3), 0.3, np.float32)
    np.testing.assert_allclose(blur.blur_images(img, k).numpy(), 0.3, atol=1e-6)
    u8 = np.full((2, 96, 80, 3), 137, np.uint8)
    assert (make_eval_pairs(u8, k) == 137).all()


def test_tf_blur_matches_cv2_filter2d_with_reflected_borders():
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(2, 90, 110, 3)).astype(np.float32)
    k = blur.kernel_bank(2, seed=8, length=(20.0, 30.0))
    out = blur.blur_images(img, k).numpy()
    for b in range(2):
        # cv2.filter2D correlates: convolution == correlation with the flipped kernel
        ref = cv2.filter2D(img[b], -1, cv2.flip(k[b], -1), borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(out[b], ref, atol=2e-5)


def test_blur_valid_is_the_interior_of_blur_images():
    rng = np.random.default_rng(1)
    img = rng.uniform(size=(3, 80, 70, 3)).astype(np.float32)
    k = blur.kernel_bank(3, seed=2, length=(10.0, 20.0))
    r = k.shape[1] // 2
    valid = blur.blur_valid(img, k).numpy()
    full = blur.blur_images(img, k).numpy()
    assert valid.shape == (3, 80 - 2 * r, 70 - 2 * r, 3)
    np.testing.assert_allclose(valid, full[:, r:-r, r:-r], atol=1e-6)


# ---------------------------------------------------------- reference defects we must not copy


def test_defect_kernels_sum_to_one():
    # The reference's cv2.normalize(..., NORM_MINMAX) scales the peak to 1, not the sum.
    for kw in ({}, {"length": (60.0, 90.0)}, {"p_identity": 0.5}, {"kernel_size": 71}, {"for_size": 64}):
        sums = blur.kernel_bank(200, seed=1, **kw).astype(np.float64).sum(axis=(1, 2))
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)


def test_defect_kernels_are_centred():
    # The reference's PSFs sit off-centre (median 1.6 px), so blurred and sharp are misaligned.
    for name in ("eval", "train"):
        c = np.abs(blur.kernel_centroid(blur.preset_bank(name, 500, seed=3)))
        assert c.max() < 0.5
        assert np.median(np.hypot(c[:, 0], c[:, 1])) < 1e-3


def test_defect_no_mass_piled_on_the_canvas_edge():
    # The reference clamps positions onto the canvas (off by one), piling mass on its border.
    # Here the canvas holds the whole path: the tightest allowed canvas gives the same PSF as a
    # much larger one, cropped, and the larger one has no mass outside that crop.
    tight = blur.kernel_bank(100, seed=6, length=(20.0, 50.0), anxiety=(0.0, 0.5))
    k0 = tight.shape[1]
    same = blur.kernel_bank(100, seed=6, length=(20.0, 50.0), anxiety=(0.0, 0.5), kernel_size=k0)
    assert np.array_equal(tight, same)
    big = blur.kernel_bank(100, seed=6, length=(20.0, 50.0), anxiety=(0.0, 0.5), kernel_size=k0 + 20)
    np.testing.assert_allclose(big[:, 10:-10, 10:-10], tight, atol=1e-7)
    outside = big.copy()
    outside[:, 10:-10, 10:-10] = 0
    assert outside.max() == 0.0
    np.testing.assert_allclose(tight.astype(np.float64).sum(axis=(1, 2)), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="kernel_size"):
        blur.kernel_bank(100, seed=6, length=(20.0, 50.0), anxiety=(0.0, 0.5), kernel_size=k0 - 2)


def test_defect_no_near_delta_kernels_unless_asked():
    # The reference's short "exposures" give near-delta kernels. Ours: only via p_identity.
    # (Impulsive reversals can fold a short path onto itself: the most concentrated default /
    # train kernels hold ~0.55-0.65 of their mass in one pixel; the typical one < 0.1.)
    for params in (blur.KernelParams(), replace_identity(blur.PRESETS["train"], 0.0)):
        k = blur.kernel_bank(1000, seed=2, params=params)
        peak = k.max(axis=(1, 2))
        assert peak.max() < 0.75 and np.median(peak) < 0.1
        assert _support(k).sum(axis=(1, 2)).min() >= 8
    ev = blur.preset_bank("eval", 1000, seed=2)
    assert ev.max(axis=(1, 2)).max() < 0.25 and _support(ev).sum(axis=(1, 2)).min() >= 30
    deltas = blur.kernel_bank(20, seed=2, p_identity=1.0)
    assert deltas.shape[1:] == (3, 3) and (deltas[:, 1, 1] == 1.0).all() and (deltas.sum(axis=(1, 2)) == 1.0).all()


def replace_identity(params, p):
    import dataclasses

    return dataclasses.replace(params, p_identity=p)


def test_defect_pairs_differ_by_blur_only(lfw_paths):
    # The reference min-max stretches each blurred image. Ours: a kernel that sums to 1 applied
    # with reflected borders keeps the mean (up to border effects and 8-bit rounding) and cannot
    # leave the sharp image's value range.
    from tfdeblur.imageio import read_rgb

    sharp = np.stack([read_rgb(p, 256) for p in lfw_paths[:2]])
    k = blur.preset_bank("eval", 2, seed=12345)
    blurred = make_eval_pairs(sharp, k)
    for s, b in zip(sharp.astype(np.float64), blurred.astype(np.float64)):
        assert abs(s.mean() - b.mean()) < 0.5  # gray levels; a stretch moves it by many
        for c in range(3):
            assert s[..., c].min() <= b[..., c].min() and b[..., c].max() <= s[..., c].max()
        assert np.abs(s - b).mean() > 2  # and it is blurred


@pytest.mark.parametrize("kw, name", [
    ({"length": (5, 1)}, "length"),
    ({"anxiety": -1}, "anxiety"),
    ({"iters": 1}, "iters"),
    ({"kernel_size": 4}, "kernel_size"),
    ({"p_identity": 2.0}, "p_identity"),
    ({"centripetal": (0.0, float("nan"))}, "centripetal"),
    ({"lenght": 10}, "lenght"),
])
def test_bad_parameters_raise_value_error_naming_them(kw, name):
    with pytest.raises(ValueError, match=name):
        blur.kernel_bank(4, seed=0, **kw)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lo=st.floats(0.0, 60.0), extra=st.floats(0.0, 30.0), anxiety=st.floats(0.0, 1.0),
    centripetal=st.floats(0.0, 2.0), shake=st.floats(0.0, 20.0), big=st.floats(0.0, 1.0),
    iters=st.integers(2, 300), for_size=st.sampled_from([None, 64, 256, 512]),
    p_identity=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**31 - 1),
)
def test_kernel_bank_properties(lo, extra, anxiety, centripetal, shake, big, iters, for_size, p_identity, seed):
    params = blur.KernelParams(length=(lo, lo + extra), anxiety=(0.0, anxiety), centripetal=(0.0, centripetal),
                               gaussian_shake=(0.0, shake), prob_big_shake=(0.0, big), iters=iters,
                               for_size=for_size, p_identity=p_identity)
    k = blur.kernel_bank(4, seed=seed, params=params)
    assert k.shape[0] == 4 and k.shape[1] == k.shape[2] and k.shape[1] % 2 == 1
    assert np.isfinite(k).all() and (k >= 0).all()
    np.testing.assert_allclose(k.astype(np.float64).sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert np.abs(blur.kernel_centroid(k)).max() < 0.5
    reach = (lo + extra) * params.scale + 2 * math.sqrt(2)
    assert max(_diameter(kk) for kk in k) <= reach
    assert np.array_equal(k, blur.kernel_bank(4, seed=seed, params=params))
