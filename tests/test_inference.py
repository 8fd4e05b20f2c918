"""Inference: ``deblur`` on any size, tiling with whole-image normalisation, model loading errors,
the ``tfdeblur deblur`` command's outputs (files, folders, grayscale, RGBA, bfloat16) and ``--faces``
(its errors and flags: tests/test_cli.py)."""
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from tfdeblur import cli, faces, inference
from tfdeblur.inference import ModelLoadError, ModelNotFoundError, deblur, load_model, tile_starts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TensorFlow 2.21 prints absl lines on import whatever TF_CPP_MIN_LOG_LEVEL says; they are not ours.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d\d|To enable the following"
                       r"|\s*$)")


def user_lines(stderr):
    return [line for line in stderr.splitlines() if not _TF_NOISE.match(line)]


def run_cli(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tfdeblur.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def model(small_model_path):
    return load_model(small_model_path)


def smooth_image(h, w, seed=0):
    """Photo-like content: smooth colour fields, a disc, some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([np.sin(0.03 * (c + 1) * xx + 0.02 * (3 - c) * yy + c) for c in range(3)], -1) * 80 + 128
    img[(xx - 0.6 * w) ** 2 + (yy - 0.4 * h) ** 2 < (min(h, w) / 4) ** 2] -= 70
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------- library


def test_deblur_is_the_model_in_uint8(model):
    img = smooth_image(37, 53)
    out = deblur(model, img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    ref = model(img[None].astype(np.float32) / 127.5 - 1.0, training=False).numpy()[0]
    ref = np.rint(np.clip((ref + 1.0) * 127.5, 0, 255)).astype(int)
    assert np.abs(out.astype(int) - ref).max() <= 1  # graph vs eager float rounding only
    assert np.abs(out.astype(int) - img).mean() > 1  # an untrained generator does change the image


def test_deblur_any_shape(model):
    for h, w in [(5, 7), (1, 1), (16, 3), (33, 250)]:  # tiny ones are edge-padded inside
        img = smooth_image(h, w)
        out = deblur(model, img)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
    batch = np.stack([smooth_image(20, 30, s) for s in range(3)])
    out = deblur(model, batch)
    assert out.shape == batch.shape
    assert np.abs(out[1].astype(int) - deblur(model, batch[1])).max() <= 1  # batching changes nothing (but float noise)
    gray = smooth_image(24, 40)[..., 0]
    assert deblur(model, gray).shape == gray.shape
    rgba = np.dstack([smooth_image(24, 40), np.arange(24 * 40, dtype=np.uint8).reshape(24, 40)])
    out = deblur(model, rgba)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    with pytest.raises(TypeError, match="uint8"):
        deblur(model, img.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        deblur(model, np.zeros((2, 3, 4, 5, 3), np.uint8))


def test_tile_layout_covers_with_overlap():
    for length, tile, overlap, m in [(1000, 512, 64, 8), (264, 96, 32, 8), (96, 96, 32, 8), (528, 512, 64, 16), (4000, 512, 64, 8)]:
        starts = tile_starts(length, tile, overlap, m)
        assert starts[0] == 0 and starts[-1] + tile >= length and starts[-1] + tile <= max(length, tile)
        assert all(s % m == 0 for s in starts)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def _distance_to_seams(shape, tile, overlap, m):
    """Per pixel, distance to the nearest tile edge that lies inside the image."""
    h, w = shape
    dist = np.full((h, w), 10**6)
    for axis, n in ((0, h), (1, w)):
        canvas = -(-n // m) * m
        starts = tile_starts(canvas, min(tile, canvas), overlap, m)
        edges = [s for s in starts if s > 0] + [s + tile for s in starts if s + tile < canvas]
        if edges:
            d = np.abs(np.arange(n)[:, None] - np.array(edges)[None, :]).min(1)
            dist = np.minimum(dist, d[:, None] if axis == 0 else d[None, :])
    return dist


def test_tiled_equals_whole_image_away_from_seams(small_model_path, model):
    img = smooth_image(300, 380, seed=3)
    whole = deblur(model, img, tile=None).astype(int)
    tiled = deblur(model, img, tile=160, overlap=64, batch_size=3).astype(int)  # 2 x 3 tiles
    diff = np.abs(tiled - whole).max(-1)
    far = _distance_to_seams(img.shape[:2], 160, 64, 8) >= 40  # beyond this small net's receptive field
    assert far.mean() > 0.02
    assert diff[far].max() <= 2, diff[far].max()
    assert diff.mean() <= 1.0, diff.mean()
    # Recomputing tiles instead of caching their activations gives the same pixels.
    assert np.array_equal(deblur(model, img, tile=160, overlap=64, batch_size=3, cache_bytes=0), tiled)
    # Why the statistics pass exists: tiles normalised with their own statistics are far off.
    naive_model = load_model(small_model_path)
    object.__setattr__(naive_model, "_tfdeblur_graph", False)
    naive = deblur(naive_model, img, tile=160, overlap=64).astype(int)
    assert np.abs(naive - whole).max(-1).mean() > 10 * max(diff.mean(), 0.5)


def test_bfloat16_model_deblurs_like_float32_whole_and_tiled(small_model_path, model):
    bf16 = load_model(small_model_path, "bfloat16")
    assert bf16.get_layer("stem_conv").compute_dtype == "bfloat16"
    img = smooth_image(200, 260, seed=4)
    want = deblur(model, img, tile=None).astype(int)
    whole = deblur(bf16, img, tile=None)
    assert whole.dtype == np.uint8 and whole.shape == img.shape
    # an untrained net's output is far from the identity, so bfloat16 rounding shows; a trained one
    # restores validation faces to the same PSNR (README, Performance)
    assert np.abs(whole.astype(int) - want).mean() < 2.0
    tiled = deblur(bf16, img, tile=128, overlap=48, batch_size=2).astype(int)  # whole-image norm statistics
    assert np.abs(tiled - whole.astype(int)).mean() < 1.0
    with pytest.raises(ModelLoadError, match="precision must be one of float32, bfloat16"):
        load_model(small_model_path, "float16")


def test_cli_deblur_precision_bfloat16(tmp_path, small_model_path, model):
    img = smooth_image(40, 56, seed=6)
    Image.fromarray(img).save(tmp_path / "a.png")
    assert cli.main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", small_model_path,
                     "--precision", "bfloat16", "-q"]) == 0
    with Image.open(tmp_path / "out" / "a.png") as im:
        got = np.asarray(im).astype(int)
    want = deblur(model, img).astype(int)
    assert got.shape == want.shape and 0 < np.abs(got - want).mean() < 2.0  # bfloat16: close, not identical


def test_load_model_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFoundError, match="not found"):
        load_model(tmp_path / "nope.keras")
    text = tmp_path / "model.keras"
    text.write_text("this is not a model\n")
    with pytest.raises(ModelLoadError, match="not a Keras model") as info:
        load_model(text)
    assert "\n" not in str(info.value)
    fake = tmp_path / "fake.keras"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("config.json", "{not json")
    with pytest.raises(ModelLoadError) as info:
        load_model(fake)
    assert "\n" not in str(info.value)
    monkeypatch.setitem(inference.SHIPPED_MODELS, "default", str(tmp_path / "pretrained" / "generator.keras"))
    with pytest.raises(ModelNotFoundError, match="shipped model"):
        load_model()


def test_shipped_models_by_name(tmp_path, monkeypatch):
    from tfdeblur.models import count_macs, count_res_blocks

    default, fast = load_model(), load_model("fast")
    assert count_res_blocks(default) == 6 and count_res_blocks(fast) == 4
    from tfdeblur.faces import LOOK_MODEL

    shipped = [*inference.SHIPPED_MODELS.values(), LOOK_MODEL]  # the proposal look ships too
    assert sum(os.path.getsize(f) for f in shipped) <= 25e6  # the budget
    assert count_macs(fast) < 0.8 * count_macs(default)
    face = smooth_image(64, 64)
    out = deblur(fast, face)
    assert out.shape == face.shape and out.dtype == np.uint8
    # the same name works wherever a --model is taken
    from tfdeblur.evaluation import load_models

    assert list(load_models(["fast"])) == ["fast"]
    src = tmp_path / "face.png"
    Image.fromarray(smooth_image(64, 80)).save(src)
    assert cli.main(["deblur", str(src), "-o", str(tmp_path / "out"), "--model", "fast", "-q"]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "face.png")).shape == (64, 80, 3)
    # a file or folder that happens to be called "fast" is a path, not the shipped name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fast").write_text("not a model")
    with pytest.raises(ModelLoadError, match="not a Keras model"):
        load_model("fast")


# ------------------------------------------------------------------------------- CLI


def _write_inputs(root):
    rng = np.random.default_rng(0)
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(smooth_image(37, 53)).save(root / "odd.png")
    Image.fromarray(smooth_image(5, 7)).save(root / "tiny.bmp")
    Image.fromarray(smooth_image(150, 131)).save(root / "sub" / "photo.jpg", quality=95)
    Image.fromarray(smooth_image(64, 40)[..., 1]).save(root / "sub" / "gray.png")
    alpha = rng.integers(0, 256, (30, 45), dtype=np.uint8)
    Image.fromarray(np.dstack([smooth_image(30, 45), alpha])).save(root / "sub" / "deeper" / "rgba.png")
    Image.fromarray(np.dstack([smooth_image(30, 45), alpha])).save(root / "sub" / "rgba.webp", lossless=True)
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return alpha


def test_cli_folder_sizes_names_gray_alpha(tmp_path, small_model_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    alpha = _write_inputs(src)
    r = run_cli("deblur", src, "-o", out, "--model", small_model_path, "--tile", 64, "--batch-size", 2)
    assert r.returncode == 1, r.stderr  # one input skipped
    lines = user_lines(r.stderr)
    assert "Traceback" not in r.stderr
    assert [line for line in lines if line.startswith("skipped")] == [
        f"skipped {src / 'broken.jpg'}: not a readable image (unknown format)"
    ]
    assert lines[-1] == f"deblurred 6 images into {out}; skipped 1"
    expect = {"odd.png": ((53, 37), "RGB"), "tiny.bmp": ((7, 5), "RGB"), "sub/photo.jpg": ((131, 150), "RGB"),
              "sub/gray.png": ((40, 64), "L"), "sub/deeper/rgba.png": ((45, 30), "RGBA"),
              "sub/rgba.webp": ((45, 30), "RGBA")}
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(expect)
    for rel, (size, mode) in expect.items():
        with Image.open(out / rel) as im:
            assert (im.size, im.mode) == (size, mode), rel
            if mode == "RGBA":
                assert np.array_equal(np.asarray(im)[..., 3], alpha), rel
    # A lossless output is exactly the library's result (the photo is tiled: 150 > --tile 64).
    with Image.open(src / "odd.png") as im:
        want = deblur(load_model(small_model_path), np.asarray(im.convert("RGB")))
    with Image.open(out / "odd.png") as im:
        assert np.array_equal(np.asarray(im), want)


def test_cli_faces_only_changes_face_regions(tmp_path, multiface_dir, small_model_path):
    from tfdeblur.detectors import MTCNNDetector
    from tfdeblur.faces import face_regions

    names = ["2007_007763", "2008_001009"]
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for n in names:  # PNG copies: a lossless output shows every unchanged pixel exactly
        Image.open(os.path.join(multiface_dir, f"{n}.jpg")).convert("RGB").save(src / f"{n}.png")
    r = run_cli("deblur", src, "-o", out, "--model", small_model_path, "--faces")
    assert r.returncode == 0, r.stderr
    # The regions deblur_faces restores: its proposals (relaxed MTCNN on the photo, on the photo
    # restored whole by the model and on the look generator's 2x restored look), recomputed here.
    proposer = faces.proposal_detector()
    look, model = load_model(faces.LOOK_MODEL), load_model(small_model_path)
    plain = MTCNNDetector()
    for n in names:
        before = np.asarray(Image.open(src / f"{n}.png"))
        after = np.asarray(Image.open(out / f"{n}.png"))
        assert after.shape == before.shape
        proposals = faces.propose_faces(before, proposer, look, restored=deblur(model, before, batch_size=8))
        regions = face_regions(proposals, before.shape)
        assert len(regions) >= len(plain.detect([before])[0])  # at least the faces plain MTCNN finds
        assert len(regions) >= 2
        inside = np.zeros(before.shape[:2], bool)
        for x0, y0, x1, y1 in regions:
            inside[y0:y1, x0:x1] = True
        changed = np.any(after != before, axis=-1)
        assert not changed[~inside].any(), f"{n}: {changed[~inside].sum()} pixels changed outside the faces"
        assert changed[inside].mean() > 0.3  # the faces were processed


def test_cli_frames_get_the_face_guard_unless_told_not_to(tmp_path, multiface_dir, small_model_path):
    """A frame larger than a face crop goes through deblur_frame (the faces MTCNN finds in it are
    restored again at the model's scale); --no-face-guard restores the whole frame only."""
    src = tmp_path / "in"
    src.mkdir()
    Image.open(os.path.join(multiface_dir, "2007_007763.jpg")).convert("RGB").save(src / "frame.png")
    before = np.asarray(Image.open(src / "frame.png"))
    assert max(before.shape[:2]) > faces.WORK_SIZE
    model = load_model(small_model_path)
    guarded, plain = faces.deblur_frame(model, before, detector=faces.proposal_detector())[0], deblur(model, before)
    assert (np.abs(guarded.astype(int) - plain) > 1).any()  # the guard changed the face regions
    for extra, want in (((), guarded), (("--no-face-guard",), plain)):
        out = tmp_path / f"out{len(extra)}"
        r = run_cli("deblur", src, "-o", out, "--model", small_model_path, "-q", *extra)
        assert r.returncode == 0, r.stderr
        got = np.asarray(Image.open(out / "frame.png")).astype(int)
        assert np.abs(got - want).max() <= 1, extra  # batch composition may round differently
        assert (got != want).mean() < 0.01, extra


def test_deblur_faces_blend_is_feathered(model):
    img = smooth_image(120, 160)
    out, regions = faces.deblur_faces(model, img, faces=[[50, 30, 90, 80]], margin=0.25)
    assert regions == [(37, 17, 103, 93)]  # the box grown by a quarter of its longer side
    x0, y0, x1, y1 = regions[0]
    changed = np.any(out != img, axis=-1)
    assert not changed[:y0].any() and not changed[y1:].any() and not changed[:, :x0].any() and not changed[:, x1:].any()
    # Full weight in the middle: there the output is the face restored at the model's scale (its
    # context square resized to the working size, restored, resized back), not a blend with the input.
    from PIL import Image as _Image

    side = int(np.ceil(50 / faces.FACE_FRACTION))
    sx, sy = int(round(70 - side / 2)), int(round(55 - side / 2))
    square = np.pad(img, [(side, side), (side, side), (0, 0)], mode="reflect")[sy + side:sy + 2 * side, sx + side:sx + 2 * side]
    work = np.asarray(_Image.fromarray(square).resize((faces.WORK_SIZE,) * 2, _Image.BICUBIC))
    back = np.asarray(_Image.fromarray(deblur(model, work, tile=None)).resize((side, side), _Image.BICUBIC))
    centre = (slice(y0 + 20, y1 - 20), slice(x0 + 20, x1 - 20))
    assert np.abs(out[centre].astype(int) - back[y0 + 20 - sy:y1 - 20 - sy, x0 + 20 - sx:x1 - 20 - sx]).max() <= 1
    edge = np.abs(out[y0, x0:x1].astype(int) - img[y0, x0:x1]).mean()
    assert edge < np.abs(out[centre].astype(int) - img[centre]).mean() / 3  # faded out at the border


def test_cli_fast_proposals_skip_the_2x_look(tmp_path, multiface_dir, small_model_path):
    """--faces --fast-proposals is deblur_faces(proposal_model=False): faces proposed from the
    blurred photo alone (MTCNN and tiled BlazeFace), no restored look."""
    src = tmp_path / "in"
    src.mkdir()
    Image.open(os.path.join(multiface_dir, "2007_007763.jpg")).convert("RGB").save(src / "frame.png")
    before = np.asarray(Image.open(src / "frame.png"))
    want, regions = faces.deblur_faces(load_model(small_model_path), before, proposal_model=False)
    assert len(regions) >= 2
    r = run_cli("deblur", src, "-o", tmp_path / "out", "--model", small_model_path, "--faces", "--fast-proposals", "-q")
    assert r.returncode == 0, r.stderr
    got = np.asarray(Image.open(tmp_path / "out" / "frame.png")).astype(int)
    assert np.abs(got - want).max() <= 1 and (got != want).mean() < 0.01
