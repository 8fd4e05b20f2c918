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
"""
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from PIL import Image

from tfdeblur import cli
from tfdeblur.evaluation import runner
from tfdeblur.imageio import SkipLog, read_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = 12_000
COLOUR = (200, 120, 60)  # the huge image's solid colour
# TensorFlow prints absl / C++ log lines on import whatever TF_CPP_MIN_LOG_LEVEL says; not ours.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d\d|To enable the following"
                       r"|\s*$)")


# ----------------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    root: str
    good: list
    face: np.ndarray  # the RGB face the derived formats were made from
    upright: np.ndarray  # what the EXIF-rotated photo looks like displayed (decoded, rotated by hand)
    alpha: np.ndarray  # the RGBA file's alpha
    locked_readable: bool  # chmod 000 does not stop root (CI): then the file is simply converted
    skip_always: dict = field(default_factory=dict)  # name -> words of the skip reason

    def path(self, name):
        return os.path.join(self.root, name)

    def expected(self, reader):
        """``(converted names, {skipped name: reason words})`` for ``reader``: ``"rgb"`` (read_rgb:
        loader, blur, evaluate, export; refuses images under 16 px) or ``"deblur"`` (read_image
        with the default --max-megapixels 64; any size from 1x1 up)."""
        ok = set(self.good) | {"cmyk.jpg", "gray16.png", "rgb16.png", "palette.png", "rgba.png", "exif_rot6.jpg"}
        skip = dict(self.skip_always)
        if self.locked_readable:
            ok.add("locked.jpg")
        else:
            skip["locked.jpg"] = "permission denied"
        if reader == "rgb":
            ok.add("huge.jpg")
            skip["one_px.png"] = "too small"
        else:
            ok.add("one_px.png")
            skip["huge.jpg"] = "too large"
        return ok, skip


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, lfw_paths):
    root = tmp_path_factory.mktemp("corpus")
    good = []
    for i, p in enumerate(lfw_paths[:3]):
        good.append(f"good_{i}.jpg")
        shutil.copy(p, root / good[-1])
    data = open(lfw_paths[3], "rb").read()
    with Image.open(lfw_paths[3]) as im:
        face = np.asarray(im.convert("RGB"))

    (root / "zero.jpg").write_bytes(b"")
    (root / "zero.png").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "text.jpg").write_text("this is a text file, not a JPEG\n")
    (root / "notes.txt").write_text("not an image extension: never looked at")
    Image.fromarray(face).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    Image.fromarray(face[..., 1].astype(np.uint16) * 257).save(root / "gray16.png")  # mode I;16
    cv2.imwrite(str(root / "rgb16.png"), face[..., ::-1].astype(np.uint16) * 257)  # 48-bit RGB
    Image.fromarray(face).quantize(64).save(root / "palette.png")
    alpha = np.tile(np.linspace(0, 255, face.shape[1]).astype(np.uint8), (face.shape[0], 1))
    Image.fromarray(np.dstack([face, alpha])).save(root / "rgba.png")
    Image.fromarray(np.full((1, 1, 3), 90, np.uint8)).save(root / "one_px.png")
    t = time.perf_counter()
    Image.new("RGB", (HUGE, HUGE), COLOUR).save(root / "huge.jpg", quality=90)  # ~2 MB on disk
    print(f"12000x12000 JPEG written in {time.perf_counter() - t:.1f} s")
    # A camera photo held sideways: stored rotated 90 degrees counter-clockwise, EXIF Orientation 6
    # (rotate 90 clockwise to display). Non-square, so a missed rotation changes the shape.
    upright_src = np.ascontiguousarray(face[20:230, 60:190])  # 210 high, 130 wide
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright_src, 1))).save(root / "exif_rot6.jpg", quality=95, exif=exif)
    with Image.open(root / "exif_rot6.jpg") as im:
        upright = np.ascontiguousarray(np.rot90(np.asarray(im.convert("RGB")), -1))
    assert upright.shape == (210, 130, 3) and np.abs(upright.astype(int) - upright_src).mean() < 3

    os.symlink("loop.jpg", root / "loop.jpg")  # a symlink to itself
    os.symlink("loop_b.png", root / "loop_a.png")  # two symlinks pointing at each other
    os.symlink("loop_a.png", root / "loop_b.png")
    os.symlink("nowhere.jpg", root / "dangling.jpg")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")  # a folder loop: the walk must not follow it
    os.mkfifo(root / "pipe.jpg")  # opening a FIFO for reading would block forever
    shutil.copy(lfw_paths[4], root / "locked.jpg")
    os.chmod(root / "locked.jpg", 0)
    try:
        with open(root / "locked.jpg", "rb") as f:
            f.read(1)
        locked_readable = True
    except PermissionError:
        locked_readable = False

    c = Corpus(str(root), good, face, upright, alpha, locked_readable)
    c.skip_always = {
        "zero.jpg": "empty file", "zero.png": "empty file", "truncated.jpg": "truncated",
        "text.jpg": "not a readable image", "loop.jpg": "symlink loop", "loop_a.png": "symlink loop",
        "loop_b.png": "symlink loop", "dangling.jpg": "no such file", "pipe.jpg": "not a regular file",
    }
    yield c
    os.chmod(root / "locked.jpg", 0o644)


@pytest.fixture(scope="session")
def empty_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("empty")
    (d / "README.txt").write_text("a folder with no images")
    return str(d)


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


def call(fn, argv, capsys):
    """In-process CLI call: (exit code, stdout, stderr). argparse errors exit via SystemExit."""
    try:
        code = fn(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def user_lines(text):
    return [line for line in text.splitlines() if not _TF_NOISE.match(line)]


def check_skips(err, corpus, skipped, extra=()):
    """Exactly one ``skipped PATH: reason`` line per skipped input, naming it, and none for anything else."""
    lines = [line for line in err.splitlines() if line.startswith(("skipped /", "skipped " + corpus.root))]
    for name, words in skipped.items():
        mine = [line for line in lines if line.startswith(f"skipped {corpus.path(name)}: ")]
        assert len(mine) == 1, (name, lines)
        assert words in mine[0], (name, mine[0])
    for path, words in extra:
        mine = [line for line in lines if line.startswith(f"skipped {path}: ")]
        assert len(mine) == 1 and words in mine[0], (path, lines)
    assert len(lines) == len(skipped) + len(extra), lines


def one_error_line(err, words):
    lines = user_lines(err)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert words in errors[0], errors[0]
    return errors[0]


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


ALL_BAD = {"zero.jpg": "empty file", "truncated.jpg": "truncated", "text.jpg": "not a readable image",
           "loop.jpg": "symlink loop", "dangling.jpg": "no such file", "pipe.jpg": "not a regular file"}


@pytest.fixture(scope="session")
def all_bad(corpus, tmp_path_factory):
    """A folder (LFW layout: one person) holding only bad files: every entry point must refuse it."""
    root = tmp_path_factory.mktemp("all_bad")
    d = root / "Some_Person"
    d.mkdir()
    for name in ("zero.jpg", "truncated.jpg", "text.jpg"):
        shutil.copy(corpus.path(name), d / name)
    os.symlink("loop.jpg", d / "loop.jpg")
    os.symlink("nowhere.jpg", d / "dangling.jpg")
    os.mkfifo(d / "pipe.jpg")
    return str(root)


def check_all_bad_skips(err, folder):
    lines = [line for line in err.splitlines() if line.startswith(f"skipped {folder}")]
    assert len(lines) == len(ALL_BAD), lines
    for name, words in ALL_BAD.items():
        mine = [line for line in lines if line.startswith(f"skipped {os.path.join(folder, 'Some_Person', name)}: ")]
        assert len(mine) == 1 and words in mine[0], (name, lines)


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


# ---------------------------------------------------------- nothing to do, usage errors: exit 2


def _argv(kind, where, model, tmp):
    return {
        "blur": (cli.main, ["blur", where, str(tmp / "o")]),
        "deblur": (cli.main, ["deblur", where, "-o", str(tmp / "o"), "--model", model]),
        "evaluate": (cli.evaluate_main, ["--model", model, "--data-dir", where, "-q", "--output-dir", str(tmp / "o")]),
        "export": (cli.main, ["export", "--model", model, "--format", "tflite", "-o", str(tmp / "g.tflite"),
                              "--size", "32", "--quantize", "int8", "--calibration-dir", where]),
    }[kind]


@pytest.mark.parametrize("kind", ["blur", "deblur", "evaluate", "export"])
@pytest.mark.parametrize("where", ["empty", "missing", "all_bad"])
def test_nothing_to_do_is_exit_2(kind, where, empty_dir, all_bad, small_model_path, tmp_path, capsys):
    """An empty folder, a missing path, a folder of only bad files: exit 2, one ``error:`` line
    last (after one skip line per bad file), no traceback, no output file or folder."""
    from tfdeblur.data import NoImagesError, load_split

    folder = {"empty": empty_dir, "missing": str(tmp_path / "no_such_folder"), "all_bad": all_bad}[where]
    fn, argv = _argv(kind, folder, small_model_path, tmp_path)
    code, out, err = call(fn, argv, capsys)
    assert code == 2, err
    line = one_error_line(err, "")
    words = {"empty": ("no images", "need at least 2"), "missing": ("no such", "not found", "no images"),
             "all_bad": ("none of the", "no pairs written", "need at least 2")}[where]
    assert any(w in line for w in words), line
    if where == "all_bad":
        check_all_bad_skips(err, folder)
    assert not (tmp_path / "g.tflite").exists()
    assert not (tmp_path / "o").exists()  # not even empty folders
    if where != "all_bad":
        with pytest.raises(NoImagesError):  # the training loader says the same
            load_split(folder)


@pytest.fixture(scope="module")
def not_a_model(tmp_path_factory):
    p = tmp_path_factory.mktemp("nm") / "model.keras"
    p.write_text("not a Keras model")
    return str(p)


# Not repeated here (tested elsewhere): missing / non-model --model for deblur and evaluate,
# missing --model and unwritable output for export saved_model (test_inference, test_evaluation,
# test_export), blur OUT_DIR that is a file (test_blur), train.py flags (test_config).
USAGE = [
    ("evaluate --bogus", "evaluate", ["--data-dir", "{faces}", "--bogus"], "unrecognized arguments: --bogus"),
    ("evaluate no source", "evaluate", ["-q"], "one of the arguments --data-dir"),
    ("evaluate output is a file", "evaluate", ["--model", "{model}", "--data-dir", "{faces}",
                                               "--output-dir", "{file}"], "is not a folder"),
    ("evaluate output is under a file", "evaluate", ["--model", "{model}", "--data-dir", "{faces}",
                                                     "--output-dir", "{file}/out"], "cannot write results"),
    ("tfdeblur no command", "tfdeblur", [], "required: command"),
    ("tfdeblur bad command", "tfdeblur", ["sharpen"], "invalid choice: 'sharpen'"),
    ("blur --bogus", "tfdeblur", ["blur", "{faces}", "{tmp}/o", "--bogus"], "unrecognized arguments: --bogus"),
    ("blur --limit x", "tfdeblur", ["blur", "{faces}", "{tmp}/o", "--limit", "x"], "invalid int value: 'x'"),
    ("deblur --bogus", "tfdeblur", ["deblur", "{faces}", "-o", "{tmp}/o", "--bogus"], "unrecognized arguments"),
    ("deblur no -o", "tfdeblur", ["deblur", "{faces}"], "-o/--output"),
    ("deblur --max-megapixels 0", "tfdeblur", ["deblur", "{faces}", "-o", "{tmp}/o", "--model", "{model}",
                                               "--max-megapixels", "0"], "--max-megapixels"),
    ("export --bogus", "tfdeblur", ["export", "--format", "tflite", "-o", "{tmp}/g.tflite", "--bogus"],
     "unrecognized arguments"),
    ("export --format pb", "tfdeblur", ["export", "--format", "pb", "-o", "{tmp}/g"], "invalid choice: 'pb'"),
    ("export non-model --model", "tfdeblur", ["export", "--model", "{not_a_model}", "--format", "tflite", "-o",
                                              "{tmp}/g.tflite"], "not a Keras model"),
    ("export tflite output under a file", "tfdeblur", ["export", "--model", "{model}", "--format", "tflite", "-o",
                                                       "{file}/g.tflite"], "cannot write"),
    ("export tflite output is a folder", "tfdeblur", ["export", "--model", "{model}", "--format", "tflite", "-o",
                                                      "{tmp}"], "is a folder"),
]


@pytest.mark.parametrize("label,entry,argv,words", USAGE, ids=[u[0] for u in USAGE])
def test_usage_errors_are_one_line_exit_2(label, entry, argv, words, corpus, small_model_path, not_a_model,
                                          tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a folder should be")
    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(corpus.path(corpus.good[0]), faces / corpus.good[0])
    subs = {"model": small_model_path, "faces": str(faces), "tmp": str(tmp_path), "file": str(blocker),
            "not_a_model": not_a_model}
    argv = [a.format(**subs) for a in argv]
    fn = cli.evaluate_main if entry == "evaluate" else cli.main
    before = sorted(os.listdir(tmp_path))
    code, out, err = call(fn, argv, capsys)
    assert code == 2, (label, err)
    assert user_lines(out) == [], out
    assert len(user_lines(err)) == 1, err  # not argparse's usage block
    one_error_line(err, words)
    assert sorted(os.listdir(tmp_path)) == before  # nothing created
