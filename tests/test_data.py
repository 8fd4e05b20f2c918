"""Training batches: interior crops vs crops that reach the image edge (data.border_fraction)."""
import numpy as np
import pytest

from tfdeblur import blur
from tfdeblur.data import make_eval_pairs, train_dataset
from tfdeblur.imageio import read_rgb


@pytest.fixture(scope="module")
def faces(lfw_paths):
    return np.stack([read_rgb(p, 64) for p in lfw_paths[:3]])


def _one_kernel_bank():
    bank = blur.kernel_bank(1, seed=3, length=(6.0, 8.0), kernel_size=11)  # radius 5 at 64x64
    assert (bank[0] > 0).sum() > 5  # a real blur, not a near-delta
    return bank


def test_full_size_edge_crops_are_the_evaluation_blur(faces):
    # crop = image size and every sample at the edge: the batch must be exactly how evaluation
    # blurs a full image (reflected borders), up to 8-bit rounding
    bank = _one_kernel_bank()
    ds = train_dataset(faces, 4, 64, seed=1, total_steps=1, kernel_bank=bank, flip=False, border_fraction=1.0)
    blurred, sharp = (np.asarray(t) for t in next(iter(ds)))
    sharp_u8 = np.round((sharp + 1) * 127.5).astype(np.uint8)
    expected = make_eval_pairs(sharp_u8, np.repeat(bank, len(sharp_u8), axis=0)).astype(np.float32)
    got = (blurred + 1) * 127.5
    assert np.abs(got - expected).max() <= 0.51
    assert (sharp_u8[:, None] == faces[None]).all(axis=(2, 3, 4)).any(axis=1).all()  # whole images


def test_interior_crops_never_see_a_reflected_border(faces):
    # Without edge crops a crop plus kernel-radius margin of real pixels is used: every blurred
    # crop equals the interior ("valid") blur of some window of a source image.
    bank = _one_kernel_bank()
    r = bank.shape[1] // 2
    ds = train_dataset(faces, 6, 32, seed=2, total_steps=1, kernel_bank=bank, flip=False)
    blurred, sharp = (np.asarray(t) for t in next(iter(ds)))
    full = blur.blur_valid(faces.astype(np.float32) / 255.0, np.repeat(bank, len(faces), axis=0)).numpy()
    for b, s in zip(blurred, sharp):
        s_u8 = np.round((s + 1) * 127.5).astype(np.uint8)
        hit = [(i, y, x) for i in range(len(faces)) for y in range(r, 64 - 32 - r + 1)
               for x in range(r, 64 - 32 - r + 1) if (faces[i, y:y + 32, x:x + 32] == s_u8).all()]
        assert hit, "sharp crop not found at an interior position"
        i, y, x = hit[0]
        want = np.round(full[i, y - r:y - r + 32, x - r:x - r + 32] * 255.0)
        assert np.abs((b + 1) * 127.5 - want).max() <= 0.51


def test_border_fraction_mixes_edge_and_interior_crops(faces):
    # Count crops that start within a kernel radius of an image edge: interior crops never do;
    # edge crops start anywhere, so about half of them do (here 36 of 64); a mix falls between.
    bank = _one_kernel_bank()
    r = bank.shape[1] // 2

    def near_edge(fraction):
        ds = train_dataset(faces, 64, 32, seed=0, total_steps=1, kernel_bank=bank, flip=False,
                           border_fraction=fraction)
        _, sharp = next(iter(ds))
        count = 0
        for s in np.round((np.asarray(sharp) + 1) * 127.5).astype(np.uint8):
            pos = [(y, x) for i in range(len(faces)) for y in range(0, 33) for x in range(0, 33)
                   if (faces[i, y:y + 32, x:x + 32] == s).all()]
            assert pos, "sharp crop not found in any source image"
            count += all(min(y, x, 32 - y, 32 - x) < r for y, x in pos)
        return count

    none, half, every = near_edge(0.0), near_edge(0.5), near_edge(1.0)
    assert none == 0
    assert every >= 20  # 64 x P(start within r of an edge) ~ 64 x 0.51
    assert 0.2 * every <= half <= 0.8 * every


def test_border_fraction_out_of_range_is_rejected(faces):
    with pytest.raises(ValueError, match="border_fraction"):
        train_dataset(faces, 2, 32, border_fraction=1.5)
