"""Shared fixtures. Real faces come from ../shared/data (never copied into the repo)."""
import os
import shutil
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from bad_inputs_helpers import COLOUR, HUGE, Corpus

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("TFDEBLUR_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
LFW_DIR = os.path.join(DATA_DIR, "lfw")
MULTIFACE_DIR = os.path.join(DATA_DIR, "multiface")


def _require(path):
    if not os.path.isdir(path):
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def lfw_dir():
    return _require(LFW_DIR)


@pytest.fixture(scope="session")
def multiface_dir():
    return _require(MULTIFACE_DIR)


@pytest.fixture(scope="session")
def multiface_gt(multiface_dir):
    """The hand-labelled boxes of the 5 multiface test photos (testing.xml)."""
    from tfdeblur.evaluation import load_imglab_xml

    return load_imglab_xml(os.path.join(multiface_dir, "testing.xml"))


@pytest.fixture(scope="session")
def lfw_paths(lfw_dir):
    """All LFW image paths, sorted."""
    out = []
    for root, _, files in os.walk(lfw_dir):
        out += [os.path.join(root, f) for f in files if f.lower().endswith(".jpg")]
    return sorted(out)


@pytest.fixture(scope="session")
def small_lfw(tmp_path_factory, lfw_paths):
    """A tiny LFW-layout copy: 12 people, 2 images each where available (24-ish images)."""
    root = tmp_path_factory.mktemp("small_lfw")
    people = {}
    for p in lfw_paths:
        people.setdefault(os.path.basename(os.path.dirname(p)), []).append(p)
    chosen = [name for name in sorted(people) if len(people[name]) >= 2][:12]
    for name in chosen:
        os.makedirs(root / name)
        for p in people[name][:2]:
            shutil.copy(p, root / name / os.path.basename(p))
    return str(root)


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory):
    """A tiny untrained lean generator (ngf 8, one block, space-to-depth x2), saved as .keras."""
    import keras

    from tfdeblur.models import build_generator

    keras.utils.set_random_seed(0)
    model = build_generator(ngf=8, n_blocks=1, pixel_shuffle=2, stem_kernel=3)
    path = tmp_path_factory.mktemp("model") / "generator.keras"
    model.save(path)
    return str(path)


# ------------------------------------------- the bad-input corpus (tests/test_bad_inputs*.py)


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
