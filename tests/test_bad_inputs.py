"""Issue 8: a corpus of bad inputs run against every entry point that reads images.

The corpus (built once per session, next to a few real LFW faces): zero-byte files, a truncated
JPEG, a text file named .jpg, CMYK JPEG, 16-bit PNGs (gray and RGB), a palette PNG, an RGBA PNG, a
1x1 image, a 12000x12000 JPEG, an EXIF-rotated photo, symlink loops, a dangling symlink, a FIFO,
an unreadable (chmod 000) file and a non-image file; plus an empty folder and a missing path.

Entry points: the training data loader, ``evaluate.py``, ``tfdeblur blur``, ``tfdeblur deblur``
(through the real console entry point, in a subprocess) and ``tfdeblur export --quantize int8``
(the corpus as calibration folder). The contract, for each:

* every input is converted correctly or skipped with ONE ``skipped PATH: reason`` line;
* a summary count comes at the end;
* never a traceback;
* exit 0 all done, 1 some inputs skipped, 2 usage error or nothing done (one ``error:`` line).

The corpus fixtures (``corpus``, ``empty_dir``, ``all_bad``) are in tests/conftest.py, the contract
checks in tests/bad_inputs_helpers.py; the exit-2 cases (nothing to do, usage errors) are in
tests/test_bad_inputs_exit_2.py.
"""
import errno
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from bad_inputs_helpers import COLOUR, HUGE, call, check_all_bad_skips, check_skips, one_error_line, user_lines
from tfdeblur import cli
from tfdeblur.evaluation import runner
from tfdeblur.imageio import SkipLog, read_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------- corpus


def test_corpus_is_what_it_claims(corpus):
    """The bad files really are bad in the way their names say (else the tests below prove little)."""
    with Image.open(corpus.path("cmyk.jpg")) as im:
        assert im.mode == "CMYK"
    with Image.open(corpus.path("gray16.png")) as im:
        assert im.mode == "I;16"
    assert cv2.imread(corpus.path("rgb16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    with Image.open(corpus.path("palette.png")) as im:
        assert im.mode == "P"
    with Image.open(corpus.path("rgba.png")) as im:
        assert im.mode == "RGBA"
    with Image.open(corpus.path("one_px.png")) as im:
        assert im.size == (1, 1)
    with Image.open(corpus.path("huge.jpg")) as im:
        assert im.size == (HUGE, HUGE)
    with Image.open(corpus.path("exif_rot6.jpg")) as im:
        assert im.size == (210, 130) and im.getexif()[0x0112] == 6
    for name in ("loop.jpg", "loop_a.png"):
        with pytest.raises(OSError) as e:
            os.stat(corpus.path(name))
        assert e.value.errno == errno.ELOOP
    assert os.path.getsize(corpus.path("zero.jpg")) == 0
    with pytest.raises(OSError):
        with Image.open(corpus.path("truncated.jpg")) as im:
            im.load()


# ---------------------------------------------------------------------------------- helpers


def _jpeg_roundtrip(rgb, tmp):
    from tfdeblur.imageio import write_image

    path = os.path.join(tmp, "roundtrip.jpg")
    write_image(path, rgb)
    with Image.open(path) as im:
        return np.asarray(im)


def _close(a, b):
    return np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()


# ----------------------------------------------------------------------------- 1. data loader


def test_training_loader(corpus):
    """``load_split`` + ``load_faces`` (what ``train.py`` runs first): each file is one decoded face
    or one skip line; formats and EXIF rotation decode to the right pixels; the 12000x12000 JPEG
    is read at reduced scale (JPEG draft), in well under a second, not as 432 MB of pixels."""
    from tfdeblur.data import load_faces, load_split

    ok, skipped = corpus.expected("rgb")
    log = SkipLog(stream=sys.stderr)
    split = load_split(corpus.root, log=log)
    paths = split.train + split.val
    assert len(log) == 0  # listing reads nothing: every image-named entry is a candidate
    assert sorted(os.path.basename(p) for p in paths) == sorted(ok | set(skipped))  # not notes.txt, not sub/up
    images, kept = load_faces(sorted(paths), size=64, log=log)
    assert sorted(os.path.basename(p) for p in kept) == sorted(ok)
    assert images.shape == (len(ok), 64, 64, 3) and images.dtype == np.uint8
    assert {os.path.basename(p) for p, _ in log.skipped} == set(skipped)
    for p, reason in log.skipped:
        assert skipped[os.path.basename(p)] in reason and "\n" not in reason, (p, reason)
    got = dict(zip((os.path.basename(p) for p in kept), images))
    assert np.abs(got["huge.jpg"].astype(int) - COLOUR).max() <= 3

    # full-resolution decodes are the right pixels
    face = corpus.face
    rgb, alpha = read_image(corpus.path("gray16.png"))
    assert np.array_equal(rgb, np.repeat(face[..., 1:2], 3, axis=2)) and alpha is None
    rgb, _ = read_image(corpus.path("rgb16.png"))
    assert np.array_equal(rgb, face)
    rgb, alpha = read_image(corpus.path("rgba.png"))
    assert np.array_equal(rgb, face) and np.array_equal(alpha, corpus.alpha)
    with Image.open(corpus.path("palette.png")) as im:
        assert np.array_equal(read_image(corpus.path("palette.png"))[0], np.asarray(im.convert("RGB")))
    assert _close(read_image(corpus.path("cmyk.jpg"))[0], face) < 3  # not inverted, not colour-swapped
    rgb, _ = read_image(corpus.path("exif_rot6.jpg"))
    assert rgb.shape == corpus.upright.shape and np.array_equal(rgb, corpus.upright)
    # ... and at the loader's reduced size, the rotation is still the displayed one
    small = cv2.resize(corpus.upright, (64, 64), interpolation=cv2.INTER_AREA)
    assert _close(got["exif_rot6.jpg"], small) < 0.5 * _close(got["exif_rot6.jpg"], small[::-1, ::-1])

    t = time.perf_counter()
    read_image(corpus.path("huge.jpg"), draft_size=256)
    assert time.perf_counter() - t < 5.0  # measured ~0.05 s: decoded at 1/8 scale


def test_training_refuses_an_all_bad_folder_before_models(all_bad, tmp_path, monkeypatch, capsys):
    """``train.py`` on a folder holding only bad files: one skip line each, then one ``error:``
    line and exit 2, before any model is built. (tests/test_training.py does this for text files
    named .jpg; here it is every kind of bad file.)"""
    from tfdeblur import models

    def no_models(*a, **k):
        raise AssertionError("a model was built before the data was checked")

    monkeypatch.setattr(models, "build_generator", no_models)
    monkeypatch.setattr(models, "build_discriminator", no_models)
    out = tmp_path / "run"
    code, _, err = call(cli.train_main, ["--data-dir", all_bad, "--output-dir", str(out), "-q"], capsys)
    assert code == 2, err
    one_error_line(err, "no usable training images")
    check_all_bad_skips(err, all_bad)
    assert not (out / "checkpoints").exists()


# ------------------------------------------------------------------------------ 2. evaluate.py


class _CentreDetector:
    """Stand-in for MTCNN (whose start-up costs seconds): one centred face per image."""

    name = "centre"

    def detect(self, images):
        from tfdeblur.detectors import Face

        out = []
        for im in images:
            h, w = np.asarray(im).shape[:2]
            box = np.array([w * 0.25, h * 0.25, w * 0.75, h * 0.75], np.float32)
            lm = np.array([[0.4 * w, 0.4 * h], [0.6 * w, 0.4 * h], [0.5 * w, 0.5 * h], [0.42 * w, 0.65 * h],
                           [0.58 * w, 0.65 * h]], np.float32)
            out.append([Face(box, 0.99, lm)])
        return out


def test_evaluate(corpus, small_model_path, tmp_path, monkeypatch, capsys):
    ok, skipped = corpus.expected("rgb")
    monkeypatch.setitem(runner.MTCNN_CACHE, 4, _CentreDetector())
    out = tmp_path / "eval"
    code, stdout, err = call(cli.evaluate_main, [
        "--model", small_model_path, "--data-dir", corpus.root, "--limit", "20", "--batch-size", "4",
        "--independent", "none", "-q", "--output-dir", str(out)], capsys)
    assert code == 1, err
    check_skips(err, corpus, skipped)
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == len(ok)
    assert sorted(os.path.basename(s["path"]) for s in m["skipped"]) == sorted(skipped)
    last = user_lines(stdout)[-1]  # the summary comes last, with the skip count
    assert last.startswith(f"n={len(ok)} ") and last.endswith(f"; {len(skipped)} input(s) skipped"), last


# --------------------------------------------------------------------------- 3. tfdeblur blur


def test_blur(corpus, tmp_path, capsys):
    ok, skipped = corpus.expected("rgb")
    out = tmp_path / "pairs"
    code, _, err = call(cli.main, ["blur", corpus.root, str(out), "--size", "64"], capsys)
    assert code == 1, err
    check_skips(err, corpus, skipped)
    assert user_lines(err)[-1] == f"wrote {len(ok)} pairs to {out}, {len(skipped)} input(s) skipped"
    stems = sorted(os.path.splitext(n)[0] + ".png" for n in ok)
    for side in ("sharp", "blurred"):
        assert sorted(os.listdir(out / side)) == stems
    sharp = np.asarray(Image.open(out / "sharp" / "exif_rot6.png"))
    small = cv2.resize(corpus.upright, (64, 64), interpolation=cv2.INTER_AREA)
    assert _close(sharp, small) < 0.5 * _close(sharp, small[::-1, ::-1])  # displayed orientation
    huge = np.asarray(Image.open(out / "sharp" / "huge.png")).astype(int)
    assert np.abs(huge - COLOUR).max() <= 3


# -------------------------------------------------------------- 4. tfdeblur deblur (real entry)


def test_deblur_real_entry_point(corpus, small_model_path, tmp_path):
    """The console entry point in a subprocess: nothing leaks past it (no traceback on stdout or
    stderr), the EXIF-rotated photo keeps its displayed size and orientation, alpha and gray are
    kept, the 12000x12000 image is refused from its header by --max-megapixels."""
    from tfdeblur.inference import deblur, load_model

    ok, skipped = corpus.expected("deblur")
    out, missing = tmp_path / "out", str(tmp_path / "missing.jpg")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run([sys.executable, "-m", "tfdeblur.cli", "deblur", corpus.root, missing, "-o", str(out), "--model", small_model_path],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    assert r.returncode == 1, r.stderr[-3000:]
    check_skips(r.stderr, corpus, skipped, extra=[(missing, "no such file")])
    assert "raise --max-megapixels" in r.stderr
    assert user_lines(r.stderr)[-1] == f"deblurred {len(ok)} images into {out}; skipped {len(skipped) + 1}"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(ok)

    model = load_model(small_model_path)
    with Image.open(out / "exif_rot6.jpg") as im:
        assert im.size == (130, 210) and im.getexif().get(0x0112, 1) == 1  # displayed size, no double rotation
        got = np.asarray(im.convert("RGB"))
    # exactly the library's result on the displayed image, after the same JPEG encoding (the
    # untrained generator's output is noise-like: JPEG alone moves it by ~30/255)
    assert np.array_equal(got, _jpeg_roundtrip(deblur(model, corpus.upright), tmp_path))
    with Image.open(out / "rgba.png") as im:
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im)[..., 3], corpus.alpha)
    with Image.open(out / "gray16.png") as im:
        assert im.mode == "L" and im.size == (250, 250)
    with Image.open(out / "one_px.png") as im:
        assert im.size == (1, 1)
    with Image.open(out / "cmyk.jpg") as im:
        assert im.mode == "RGB"
        got = np.asarray(im)
    want = deblur(model, read_image(corpus.path("cmyk.jpg"))[0])
    assert np.array_equal(got, _jpeg_roundtrip(want, tmp_path))


# ------------------------------------------------------------------- 5. tfdeblur export int8


def test_export_int8_calibration_from_the_corpus(corpus, small_model_path, tmp_path, capsys):
    ok, skipped = corpus.expected("rgb")
    path = tmp_path / "g_int8.tflite"
    code, stdout, err = call(cli.main, ["export", "--model", small_model_path, "--format", "tflite", "-o", str(path),
                                        "--size", "32", "--quantize", "int8", "--calibration-dir", corpus.root], capsys)
    assert code == 1, err  # written, calibration images skipped
    check_skips(err, corpus, skipped)
    assert user_lines(stdout)[-1] == f"wrote {path}; {len(skipped)} unreadable calibration image(s) skipped"
    assert "restoration PSNR vs sharp" in stdout  # the held-out corpus faces were used for the check
    assert path.stat().st_size > 0 and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
