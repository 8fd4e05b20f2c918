"""tfdeblur.imageio (finding and decoding images) and tfdeblur.errors (one-line messages,
output folders): the contracts every command relies on."""
import errno
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tfdeblur.errors import one_line, output_folder_problem
from tfdeblur.imageio import ImageError, ImageTooLarge, SkipLog, find_images, read_image, read_rgb, write_image


MODES = ["L", "RGB", "RGBA", "P", "P+transparency", "I;16"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(MODES), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_read_image_modes_property(tmp_path, mode, h, w, seed):
    rng = np.random.default_rng(seed)
    alpha = None
    if mode == "L":
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
        im, rgb = Image.fromarray(arr, "L"), np.repeat(arr[..., None], 3, axis=2)
    elif mode == "RGB":
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        im = Image.fromarray(rgb, "RGB")
    elif mode == "RGBA":
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        im, rgb, alpha = Image.fromarray(rgba, "RGBA"), rgba[..., :3], rgba[..., 3]
    elif mode.startswith("P"):
        palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        idx = rng.integers(0, 16, (h, w), dtype=np.uint8)
        im = Image.fromarray(idx, "P")
        im.putpalette(palette.tobytes())
        rgb = palette[idx]
        if mode == "P+transparency":
            im.info["transparency"] = int(idx[0, 0])
            alpha = np.where(idx == idx[0, 0], 0, 255).astype(np.uint8)
    else:  # 16-bit grayscale, full range (one pixel pinned high so the 16-bit scale is certain)
        arr = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        arr[0, 0] = 65535
        im = Image.fromarray(arr)  # uint16 -> mode I;16
        assert im.mode == "I;16"
        rgb = np.repeat(np.round(arr / 257.0).astype(np.uint8)[..., None], 3, axis=2)
    path = tmp_path / f"img_{mode.replace(';', '').replace('+', '_')}_{h}x{w}.png"
    kwargs = {"transparency": im.info["transparency"]} if mode == "P+transparency" else {}
    im.save(path, **kwargs)
    got_rgb, got_alpha = read_image(path)
    assert got_rgb.dtype == np.uint8 and got_rgb.shape == (h, w, 3) and got_rgb.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(got_rgb, rgb)
    if alpha is None:
        assert got_alpha is None
    else:
        assert got_alpha is not None and got_alpha.dtype == np.uint8 and got_alpha.shape == (h, w)
        np.testing.assert_array_equal(got_alpha, alpha)


def test_find_images_sorted_recursive_and_logs_missing(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    for rel in ("b/2.png", "a/1.JPG", "a/notes.txt", "top.webp"):
        (tmp_path / rel).write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a symlinked folder is not followed
    log = SkipLog(stream=open(os.devnull, "w"))
    found = find_images([tmp_path, tmp_path / "missing.png"], log=log)
    assert [rel for _, rel in found] == [os.path.join("a", "1.JPG"), os.path.join("b", "2.png"), "top.webp"]
    assert log.skipped == [(str(tmp_path / "missing.png"), "no such file or directory")]
    with pytest.raises(ImageError, match="no such file"):
        find_images(tmp_path / "missing.png")  # without a log: an error


def test_read_errors_are_one_line_image_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "dir.png").mkdir()
    big = np.zeros((40, 50, 3), np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    Image.fromarray(big[:8, :8]).save(tmp_path / "tiny.png")
    for name, words in (("empty.png", "empty file"), ("text.jpg", "not a readable image"), ("dir.png", "directory")):
        with pytest.raises(ImageError, match=words) as e:
            read_image(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(ImageTooLarge, match="50x40"):  # refused from the header: 40 x 50 > 1,999 pixels
        read_image(tmp_path / "big.png", max_pixels=1999)
    with pytest.raises(ImageError, match="too small"):
        read_rgb(tmp_path / "tiny.png")
    assert read_rgb(tmp_path / "big.png", 32).shape == (32, 32, 3)


def test_write_image_round_trip_with_alpha_and_no_temp_files(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    alpha = np.full((9, 7), 77, np.uint8)
    write_image(tmp_path / "sub" / "a.png", rgb, alpha)
    got, got_alpha = read_image(tmp_path / "sub" / "a.png")
    np.testing.assert_array_equal(got, rgb)
    np.testing.assert_array_equal(got_alpha, alpha)
    write_image(tmp_path / "b.jpg", rgb, alpha)  # JPEG has no alpha: dropped, not an error
    assert read_image(tmp_path / "b.jpg")[1] is None
    assert sorted(os.listdir(tmp_path)) == ["b.jpg", "sub"] and os.listdir(tmp_path / "sub") == ["a.png"]


def test_one_line():
    assert one_line(OSError(errno.EACCES, "Permission denied", "/x")) == "permission denied"
    assert one_line(OSError(errno.ELOOP, "Too many levels of symbolic links")) == "symlink loop"
    assert one_line(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"
    assert one_line(ValueError("first line\nsecond line")) == "first line"
    assert one_line(KeyError()) == "KeyError"  # no message: the type's name
    long = one_line(RuntimeError("x" * 500), limit=50)
    assert len(long) == 50 and long.endswith("...")


def test_output_folder_problem(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # create=False makes nothing, judging the nearest existing ancestor
    assert output_folder_problem(tmp_path / "new" / "deeper", create=False) is None
    assert not (tmp_path / "new").exists()
    assert "is not a folder" in output_folder_problem(blocker / "out", create=False)
    # create=True makes the folder and proves it writable
    assert output_folder_problem(tmp_path / "made", create=True) is None
    assert (tmp_path / "made").is_dir() and os.listdir(tmp_path / "made") == []  # the probe file is gone
    assert "exists and is not a folder" in output_folder_problem(blocker, create=True)
    assert "cannot create" in output_folder_problem(blocker / "out", create=True)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert "not writable" in output_folder_problem(ro, create=False)
            assert "not writable" in output_folder_problem(ro, create=True)
        finally:
            ro.chmod(0o700)
