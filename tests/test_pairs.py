"""``tfdeblur blur`` and :mod:`tfdeblur.pairs`: blurred/sharp pairs from a folder of sharp images,
with bad inputs skipped one line each and usage errors as one ``error:`` line."""
import json
import os
import shutil

import numpy as np
import pytest

from tfdeblur import blur, pairs
from tfdeblur.cli import main
from tfdeblur.data import make_eval_pairs


def _bad_folder(root, lfw_paths):
    """Good faces (two sharing a file name in different folders) plus every kind of bad input."""
    from PIL import Image

    os.makedirs(root / "a")
    os.makedirs(root / "b")
    shutil.copy(lfw_paths[0], root / "a" / "face.jpg")
    shutil.copy(lfw_paths[1], root / "b" / "face.jpg")
    shutil.copy(lfw_paths[2], root / "good.jpg")
    rgb = np.asarray(Image.open(lfw_paths[0]).convert("RGB"))
    Image.fromarray(rgb.mean(axis=2).astype(np.uint8)).save(root / "gray.png")  # mode L
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(root / "rgba.png")
    g16 = np.tile(np.linspace(0, 65535, 200).astype(np.uint16), (120, 1))  # 16-bit grayscale PNG
    Image.fromarray(g16).save(root / "deep16.png")
    (root / "empty.jpg").write_bytes(b"")
    data = open(lfw_paths[3], "rb").read()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "text.jpg").write_text("this is not an image\n")
    os.symlink(root / "nowhere.jpg", root / "dangling.jpg")
    (root / "notes.txt").write_text("not an image extension: ignored, not reported\n")
    return {"empty.jpg": "empty file", "truncated.jpg": "truncated", "text.jpg": "not a readable image",
            "dangling.jpg": "no such file"}


def test_blur_cli_on_a_folder_with_bad_inputs(tmp_path, lfw_paths, capsys):
    from PIL import Image


    src, out = tmp_path / "src", tmp_path / "out"
    bad = _bad_folder(src, lfw_paths)
    rc = main(["blur", str(src), str(out), "--seed", "3"])
    cap = capsys.readouterr()
    err = cap.out + cap.err
    assert rc == 1, err
    assert "Traceback" not in err
    skip_lines = [line for line in cap.err.splitlines() if line.startswith("skipped ")]
    assert len(skip_lines) == len(bad)
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in skip_lines), (name, skip_lines)
    assert "wrote 6 pairs" in cap.err and "4 input(s) skipped" in cap.err

    stems = ["a__face", "b__face", "deep16", "good", "gray", "rgba"]
    for side in ("sharp", "blurred"):
        assert sorted(os.listdir(out / side)) == [s + ".png" for s in stems]
    with np.load(out / "kernels.npz") as z:
        assert list(z["names"]) == stems  # sorted stem order
        assert list(z["sources"]) == ["a/face.jpg", "b/face.jpg", "deep16.png", "good.jpg", "gray.png", "rgba.png"]
        kernels = z["kernels"]
        params = json.loads(str(z["params"]))
    assert np.array_equal(kernels, blur.indexed_bank("eval", 6, seed=3))  # what evaluate.py uses
    assert params["seed"] == 3 and params["preset"] == "eval" and params["noise_sigma"] == 0.0
    assert params["kernel_params"]["length"] == list(blur.PRESETS["eval"].length)

    for i, s in enumerate(stems):
        sharp = np.asarray(Image.open(out / "sharp" / f"{s}.png"))
        blurred = np.asarray(Image.open(out / "blurred" / f"{s}.png"))
        assert sharp.shape == blurred.shape == (256, 256, 3) and sharp.dtype == np.uint8
        # --noise 0: exactly the blur of the written sharp image, nothing else
        assert np.array_equal(blurred, make_eval_pairs(sharp[None], kernels[i : i + 1])[0])
    deep = np.asarray(Image.open(out / "sharp" / "deep16.png")).astype(int)
    assert deep[:, 0].max() <= 2 and deep[:, -1].min() >= 253  # 16-bit range mapped onto 0..255
    gray = np.asarray(Image.open(out / "sharp" / "gray.png"))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_blur_cli_options_and_usage_errors(tmp_path, lfw_paths, capsys):
    from PIL import Image


    src = tmp_path / "src"
    os.makedirs(src)
    for p in lfw_paths[:3]:
        shutil.copy(p, src / os.path.basename(p))
    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in lfw_paths[:3])

    # --limit, --size 0 (keep LFW's 250x250), --kernels BANK, --noise
    bank = blur.kernel_bank(5, seed=1, length=(5.0, 10.0))
    blur.save_bank(tmp_path / "bank.npz", bank, {"note": "test"})
    out = tmp_path / "o1"
    assert main(["blur", str(src), str(out), "--limit", "2", "--size", "0", "--kernels", str(tmp_path / "bank.npz"),
                 "--noise", "0.02", "--seed", "4"]) == 0
    assert "2/2" in capsys.readouterr().out  # the progress bar
    with np.load(out / "kernels.npz") as z:
        assert list(z["names"]) == names[:2]
        assert all(any(np.array_equal(k, b) for b in bank) for k in z["kernels"])
        assert np.array_equal(z["kernels"], bank[z["bank_index"]])
    s = np.asarray(Image.open(out / "sharp" / f"{names[0]}.png"))
    b = np.asarray(Image.open(out / "blurred" / f"{names[0]}.png"))
    assert s.shape == b.shape == (250, 250, 3)
    with np.load(out / "kernels.npz") as z:
        clean = make_eval_pairs(s[None], z["kernels"][:1])[0]
    diff = b.astype(float) - clean
    assert 3.0 < diff.std() < 7.0  # sigma 0.02 -> ~5 gray levels
    out2 = tmp_path / "o2"  # same seed, same everything: same bytes
    assert main(["blur", str(src), str(out2), "--limit", "2", "--size", "0", "--kernels", str(tmp_path / "bank.npz"),
                 "--noise", "0.02", "--seed", "4", "-q"]) == 0
    assert np.array_equal(b, np.asarray(Image.open(out2 / "blurred" / f"{names[0]}.png")))
    quiet = capsys.readouterr()
    assert "2/2" not in quiet.out and "wrote 2 pairs" in quiet.err  # -q: no bar, the summary stays

    # usage errors: one "error:" line, exit 2, no traceback
    empty = tmp_path / "empty"
    os.makedirs(empty)
    (empty / "readme.txt").write_text("no images here")
    (tmp_path / "bank.txt").write_text("not a bank")
    (tmp_path / "afile").write_text("x")
    allbad = tmp_path / "allbad"
    os.makedirs(allbad)
    (allbad / "x.jpg").write_bytes(b"")
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "o3")], "no such folder"),
        ([str(empty), str(tmp_path / "o4")], "no images"),
        ([str(src), str(tmp_path / "o5"), "--kernels", str(tmp_path / "bank.txt")], "not a readable kernel bank"),
        ([str(src), str(tmp_path / "o6"), "--kernels", str(tmp_path / "nope.npz")], "no such file"),
        ([str(src), str(tmp_path / "afile")], "not a folder"),
        ([str(src), str(tmp_path / "o7"), "--noise", "-1"], "--noise"),
        ([str(src), str(tmp_path / "o8"), "--preset", "nope"], "--preset"),
        ([str(src), str(tmp_path / "o10"), "--jpeg", "0"], "--jpeg"),
        ([str(allbad), str(tmp_path / "o9")], "no pairs written"),
    ]
    for args, message in cases:
        assert main(["blur", *args]) == 2, args
        cap = capsys.readouterr()
        errors = [line for line in cap.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], (args, cap.err)
        assert "Traceback" not in cap.err + cap.out


def test_blur_size_0_shares_deblurs_megapixel_cap(lfw_paths, tmp_path, monkeypatch, capsys):
    """--size 0 keeps each image's own size, so a huge photo is refused from its header (the cap
    is lowered to 1,000 pixels here; LFW images have 62,500); resized runs are not capped."""
    src = tmp_path / "src"
    os.makedirs(src)
    for p in lfw_paths[:2]:
        shutil.copy(p, src / os.path.basename(p))
    monkeypatch.setattr(pairs, "DEFAULT_MAX_PIXELS", 1000)
    with pytest.raises(pairs.PairsError, match="no pairs written"):
        pairs.write_pairs(src, tmp_path / "o", size=0, progress=False)
    assert capsys.readouterr().err.count("image too large (250x250") == 2
    assert not (tmp_path / "o").exists()
    summary = pairs.write_pairs(src, tmp_path / "o256", size=64, progress=False)
    assert (summary.written, summary.skipped, summary.stale) == (2, 0, 0)


def test_blur_cli_jpeg_compresses_only_the_blurred_images(tmp_path, lfw_paths):
    from tfdeblur.imageio import read_rgb

    src = tmp_path / "src"
    os.makedirs(src)
    shutil.copy(lfw_paths[0], src / "a.jpg")
    assert main(["blur", str(src), str(tmp_path / "plain"), "--seed", "1", "-q"]) == 0
    assert main(["blur", str(src), str(tmp_path / "jpeg"), "--seed", "1", "--jpeg", "30", "-q"]) == 0
    sharp = [read_rgb(str(tmp_path / d / "sharp" / "a.png"), None) for d in ("plain", "jpeg")]
    blurred = [read_rgb(str(tmp_path / d / "blurred" / "a.png"), None).astype(int) for d in ("plain", "jpeg")]
    assert np.array_equal(sharp[0], sharp[1])
    assert 0.5 < np.abs(blurred[0] - blurred[1]).mean() < 10
    with np.load(tmp_path / "jpeg" / "kernels.npz") as z:
        assert json.loads(str(z["params"]))["jpeg_quality"] == 30
