"""Face-detection evaluation (issue 4): MTCNN against hand-labelled boxes,
pairs matching, deterministic blur, the independent detector, and a small end-to-end run."""
import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfdeblur import cli  # noqa: E402
from tfdeblur import evaluation as ev  # noqa: E402
from tfdeblur.imageio import SkipLog, read_rgb  # noqa: E402

@pytest.fixture(scope="module")
def mtcnn():
    from tfdeblur.detectors import MTCNNDetector

    return MTCNNDetector()


def test_mtcnn_recall_on_multiface_ground_truth(multiface_gt, mtcnn):
    """Observed on the 5 testing images (25 boxes): MTCNN recall 1.0 with 0 false positives
    (IoUs 0.56-0.81); we accept recall >= 0.85 and at most 2 false positives."""
    images = [read_rgb(e["path"]) for e in multiface_gt]
    faces = mtcnn.detect(images)
    tp = fp = fn = 0
    for dets, e in zip(faces, multiface_gt):
        t, f, m = ev.match_detections([d.box for d in dets], e["boxes"], 0.5, [d.confidence for d in dets])
        tp, fp, fn = tp + t, fp + f, fn + m
    assert tp + fn == 25
    assert tp / 25 >= 0.85
    assert fp <= 2


def test_independent_detector(multiface_gt, small_lfw):
    """BlazeFace (full range) on the same 25 boxes: observed recall 1.0, 1 false positive."""
    from tfdeblur import detectors

    det = detectors.get("blazeface-full")
    assert det.name == "blazeface-full"
    images = [read_rgb(e["path"]) for e in multiface_gt]
    tp = fp = 0
    for dets, e in zip(det.detect(images), multiface_gt):
        t, f, _ = ev.match_detections([d.box for d in dets], e["boxes"], 0.5, [d.confidence for d in dets])
        tp, fp = tp + t, fp + f
    assert tp / 25 >= 0.8 and fp <= 3

    # short-range model on LFW crops: a face in each, batched results equal one-at-a-time ones
    from tfdeblur.data import load_faces
    from tfdeblur.imageio import find_images

    faces_uint8, _ = load_faces([p for p, _ in find_images(small_lfw)], size=256, limit=6)
    short = detectors.get("blazeface", batch_size=4)
    batched = short.detect(faces_uint8)
    assert len(batched) == 6 and all(batched)
    for im, dets in zip(faces_uint8[:3], batched[:3]):
        single = short.detect([im])[0]
        assert len(single) == len(dets)
        np.testing.assert_allclose(single[0].box, dets[0].box, atol=1e-3)
        assert dets[0].landmarks.shape == (6, 2)
        x1, y1, x2, y2 = dets[0].box
        assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256
        # the eyes lie inside the box, left eye left of the right one (image coordinates)
        (lx, ly), (rx, ry) = dets[0].landmarks[:2]
        assert x1 < lx < rx < x2 and y1 < ly < y2
    with pytest.raises(ValueError):
        detectors.get("no-such-detector")
    if "haar" not in detectors.available():
        with pytest.raises(detectors.DetectorUnavailable, match="OpenCV"):
            detectors.get("haar")


# ------------------------------------------------------------------------------- data


def _png(path, value=0, size=(40, 40)):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def test_match_pairs(tmp_path):
    d = tmp_path / "pairs"
    for stem in ("b", "a", "sub/c"):
        _png(str(d / "sharp" / f"{stem}.png"), 10)
        _png(str(d / "blurred" / f"{stem}.jpg"), 20)
    pairs = ev.match_pairs(d)
    assert [p[0] for p in pairs] == ["a", "b", "sub/c"]
    assert pairs[0][1].endswith(os.path.join("sharp", "a.png"))
    assert pairs[0][2].endswith(os.path.join("blurred", "a.jpg"))

    _png(str(d / "sharp" / "only_sharp.png"))
    _png(str(d / "blurred" / "only_blurred.png"))
    with pytest.raises(ev.EvaluationError) as e:
        ev.match_pairs(d)
    msg = str(e.value)
    assert "\n" not in msg and "only_sharp" in msg and "only_blurred" in msg and "2 unmatched" in msg

    with pytest.raises(ev.EvaluationError, match="no blurred/ folder"):
        os.makedirs(tmp_path / "half" / "sharp")
        ev.match_pairs(tmp_path / "half")
    with pytest.raises(ev.EvaluationError, match="no such folder"):
        ev.match_pairs(tmp_path / "missing")


def test_load_pairs_dir_skips_unreadable(tmp_path):
    d = tmp_path / "pairs"
    for stem in ("a", "b", "c"):
        _png(str(d / "sharp" / f"{stem}.png"), 100)
        _png(str(d / "blurred" / f"{stem}.png"), 50)
    (d / "blurred" / "b.png").write_bytes(b"not an image")
    log = SkipLog(stream=open(os.devnull, "w"))
    data = ev.load_pairs_dir(d, log=log)
    assert data.names == ["a", "c"]
    assert data.sharp[0].shape == (256, 256, 3) and data.blurred[1].shape == (256, 256, 3)
    assert int(data.sharp[0][0, 0, 0]) == 100 and int(data.blurred[0][0, 0, 0]) == 50
    skipped = [p for p, _ in log.skipped]
    assert any(p.endswith(os.path.join("blurred", "b.png")) for p in skipped)
    assert ev.load_pairs_dir(d, limit=1, log=log).names == ["a"]


def test_data_dir_blur_is_deterministic(small_lfw):
    a = ev.load_data_dir(small_lfw, limit=6, seed=0)
    b = ev.load_data_dir(small_lfw, limit=6, seed=0)
    c = ev.load_data_dir(small_lfw, limit=6, seed=1)
    assert len(a) == 6 and a.names == b.names == sorted(a.names)
    np.testing.assert_array_equal(np.stack(a.sharp), np.stack(b.sharp))
    np.testing.assert_array_equal(np.stack(a.blurred), np.stack(b.blurred))
    assert a.blurred[0].shape == (256, 256, 3) and a.blurred[0].dtype == np.uint8
    assert not np.array_equal(np.stack(a.blurred), np.stack(a.sharp))
    assert not np.array_equal(np.stack(a.blurred), np.stack(c.blurred))
    assert a.source["blur"] == {"preset": "eval", "seed": 0}


# ------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import keras

    from tfdeblur.models import build_generator

    d = tmp_path_factory.mktemp("models")
    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        g = build_generator(ngf=8, n_blocks=1, pixel_shuffle=2, stem_kernel=3)
        paths.append(str(d / f"tiny{seed}.keras"))
        g.save(paths[-1])
    return paths


CONDITION_KEYS = {"failure_rate", "failure_rate_ci95", "confidence_mean", "recall", "false_positives",
                  "landmark_nme", "psnr", "psnr_ci95", "ssim", "ssim_ci95"}


def _check_conditions(conds):
    assert set(conds) == {"sharp", "blurred", "restored", "sharp_restored"}
    for name, c in conds.items():
        assert CONDITION_KEYS <= set(c), name
        assert 0.0 <= c["failure_rate"] <= 1.0
        lo, hi = c["failure_rate_ci95"]
        assert 0.0 <= lo <= c["failure_rate"] <= hi <= 1.0
        assert isinstance(c["false_positives"], int)
        assert c["confidence_mean"] is None or 0.0 < c["confidence_mean"] <= 1.0
    assert conds["sharp"]["psnr"] is None and conds["sharp"]["ssim"] is None
    assert conds["sharp"]["recall"] in (1.0, None)  # reference = its own best detection
    for name in ("blurred", "restored", "sharp_restored"):
        assert isinstance(conds[name]["psnr"], float) and -1.0 <= conds[name]["ssim"] <= 1.0
        for q in ("psnr", "ssim"):
            lo, hi = conds[name][f"{q}_ci95"]
            assert lo <= conds[name][q] <= hi


def test_end_to_end(tmp_path, small_lfw, tiny_models, capsys):
    out = tmp_path / "eval"
    rc = cli.evaluate_main(["--model", tiny_models[0], "--data-dir", small_lfw, "--limit", "10",
                           "--output-dir", str(out), "--batch-size", "8"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 10 and m["detector"] == "mtcnn" and m["independent_detector"] == "blazeface"
    _check_conditions(m["conditions"])
    _check_conditions(m["independent"])
    assert 0.0 <= m["mcnemar_p"] <= 1.0
    assert m["deblur_fps"] > 0 and m["detector_fps"] > 0 and m["independent_detector_fps"] > 0
    assert m["models"] == tiny_models[:1]
    assert m["per_model"][tiny_models[0]]["conditions"] == m["conditions"]
    assert m["conditions"]["sharp"]["failure_rate"] <= 0.2  # LFW faces, sharp
    # McNemar p is recomputed from the discordant counts it reports
    t = m["mcnemar"]["mtcnn_blurred_vs_restored"]
    assert m["mcnemar_p"] == pytest.approx(ev.mcnemar_exact(t["b"], t["c"]))
    report = (out / "report.md").read_text()
    for row in ("| Blurred |", "| Restored |", "| Sharp-restored |", "| Sharp |", "21.90%", "3.23%", "McNemar"):
        assert row in report
    for png in ("failure_rates.png", "examples.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


class _DetailDetector:
    """A cheap stand-in detector: "finds" a centred face when the centre has enough fine detail
    (mean absolute horizontal gradient), which blur removes. Exercises the bookkeeping without
    MTCNN's cost."""

    name = "detail"

    def __init__(self, threshold=3.0):
        self.threshold = threshold
        self.calls = 0

    def detect(self, images):
        from tfdeblur.detectors import Face

        self.calls += 1
        out = []
        for im in images:
            g = np.asarray(im, np.float32).mean(-1)[64:192, 64:192]
            detail = float(np.abs(np.diff(g, axis=1)).mean())
            lm = np.array([[100, 110], [156, 110], [128, 140], [108, 170], [148, 170]], np.float32) + detail / 10
            face = Face(np.array([64, 64, 192, 192], np.float32), min(1.0, detail / 20), lm)
            out.append([face] if detail > self.threshold else [])
        return out


def test_two_models_compared(tmp_path, small_lfw, tiny_models):
    models = ev.load_models(tiny_models)
    data = ev.load_data_dir(small_lfw, limit=4, seed=0)
    det = _DetailDetector()
    details = {}
    m = ev.evaluate_models(models, data, detector=det, independent=_DetailDetector(2.0), batch_size=4,
                           verbose=0, details=details)
    assert m["models"] == tiny_models and set(m["per_model"]) == set(tiny_models)
    a, b = (m["per_model"][k] for k in tiny_models)
    assert m["conditions"] == a["conditions"]  # top level = first model
    for k in ("sharp", "blurred"):  # shared conditions
        assert a["conditions"][k] == b["conditions"][k]
    pair = m["mcnemar_models"][f"{tiny_models[0]} vs {tiny_models[1]}"]
    ok = {name: [bool(f) for f in details["faces"]["mtcnn"][f"restored@{name}"]] for name in tiny_models}
    assert pair["restored"] == ev.mcnemar_test(ok[tiny_models[0]], ok[tiny_models[1]])
    ind_ok = {name: [bool(f) for f in details["faces"]["independent"][f"restored@{name}"]] for name in tiny_models}
    assert pair["independent_restored"] == ev.mcnemar_test(ind_ok[tiny_models[0]], ind_ok[tiny_models[1]])
    # the stand-in detector's failures are what the metrics count
    blurred_fail = [not f for f in details["faces"]["mtcnn"]["blurred"]]
    assert m["conditions"]["blurred"]["failures"] == sum(blurred_fail)
    assert m["conditions"]["blurred"]["failure_rate_ci95"] == pytest.approx(
        list(ev.wilson_interval(sum(blurred_fail), 4)))
    assert m["conditions"]["sharp"]["failure_rate"] == 0.0  # sharp LFW faces are full of detail
    written = ev.write_report(m, tmp_path / "cmp", details)
    names = {os.path.basename(p) for p in written}
    assert {"metrics.json", "report.md", "failure_rates.png", "examples.png", "examples_tiny2.png"} <= names
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "Between models" in report and report.count("| Sharp-restored |") == 3  # 2 models + paper
    json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    # PSNR gain and the difference between models are paired per image: a mean of differences
    # is the difference of the means, with an interval around it
    for per in (a, b):
        gain = per["psnr_gain"]
        c = per["conditions"]
        assert gain["n"] == 4
        assert gain["mean"] == pytest.approx(c["restored"]["psnr"] - c["blurred"]["psnr"], abs=1e-4)
        assert gain["ci95"][0] <= gain["mean"] <= gain["ci95"][1]
    assert m["psnr_gain"] == a["psnr_gain"]
    diff = pair["restored_psnr_difference"]
    assert diff["mean"] == pytest.approx(b["conditions"]["restored"]["psnr"] - a["conditions"]["restored"]["psnr"],
                                         abs=1e-4)
    assert f"{diff['mean']:+.2f}" in report and "PSNR changes by" in report


def test_mean_ci95_is_the_student_t_interval():
    from scipy import stats

    x = np.array([20.0, 21.0, 23.0, 24.0, 22.5])
    mean, (lo, hi) = ev.mean_ci95(x)
    assert mean == pytest.approx(22.1)
    half = stats.t.ppf(0.975, 4) * x.std(ddof=1) / np.sqrt(5)
    assert (lo, hi) == pytest.approx((22.1 - half, 22.1 + half))
    assert ev.mean_ci95([3.0, 3.0]) == (3.0, [3.0, 3.0])
    assert ev.mean_ci95([5.0]) == (5.0, None)
    assert ev.mean_ci95([1.0, np.inf]) == (None, None)  # an unchanged image: PSNR has no mean
    assert ev.mean_ci95([]) == (None, None)
    d = ev.paired_difference([20.0, 21.0, 22.0], [23.0, 23.5, 25.5])
    assert d["n"] == 3 and d["mean"] == pytest.approx(3.0) and d["ci95"][0] < 3.0 < d["ci95"][1]


def test_metrics_are_deterministic(small_lfw, tiny_models):
    """Two runs over the same folder and seed give bit-identical blurred and restored images and
    identical metrics. (The stand-in detector's confidences and landmarks are continuous functions
    of the pixels, so equal metrics mean equal images, not just equal counts.)"""
    models = ev.load_models(tiny_models[:1])
    runs = []
    for _ in range(2):
        data = ev.load_data_dir(small_lfw, limit=4, seed=3)
        details = {}
        m = ev.evaluate_models(models, data, detector=_DetailDetector(), independent=None, batch_size=4,
                               verbose=0, details=details)
        runs.append((m, details))
    (m0, d0), (m1, d1) = runs
    np.testing.assert_array_equal(np.stack(d0["blurred"]), np.stack(d1["blurred"]))
    for a, b in zip(d0["restored"][tiny_models[0]], d1["restored"][tiny_models[0]]):
        np.testing.assert_array_equal(np.stack(a), np.stack(b))
    for key in ("conditions", "mcnemar_p", "mcnemar", "n"):
        assert m0[key] == m1[key], key
    assert m0["conditions"]["blurred"]["landmark_nme"] is not None
    assert m0["independent"] is None and m0["independent_detector"] is None


def test_ground_truth_mode(tmp_path, multiface_dir, tiny_models):
    out = tmp_path / "gt"
    rc = cli.evaluate_main(["--model", tiny_models[0], "--ground-truth", os.path.join(multiface_dir, "testing.xml"),
                           "--limit", "1", "-q", "--output-dir", str(out), "--precision", "bfloat16"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["precision"] == "bfloat16" and "(computing in bfloat16)" in (out / "report.md").read_text()
    assert m["reference"] == "ground_truth_boxes" and m["n"] == 1
    assert m["independent_detector"] == "blazeface-tiled"
    sharp = m["conditions"]["sharp"]
    assert sharp["n_reference_boxes"] == 6  # labelled faces in 2008_002470.jpg
    assert sharp["recall"] >= 0.85 and sharp["false_positives"] <= 1


def test_scenes_compare_two_models_face_by_face(tmp_path, multiface_dir, tiny_models):
    """--scenes with two models: metrics.json gets ``paired`` (the second model against the first,
    per detector, condition and size bin), whose counts of faces found by only one of them agree
    with the two models' recalls, and report.md a table of it."""
    out = tmp_path / "scenes"
    rc = cli.evaluate_main(["--model", *tiny_models, "--scenes", os.path.join(multiface_dir, "testing.xml"),
                            "--limit", "2", "-q", "--output-dir", str(out), "--independent", "none"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    a, b = (m["per_model"][name]["mtcnn"]["per_size"] for name in tiny_models)
    pair = m["paired"][f"{tiny_models[1]} vs {tiny_models[0]}"]
    assert list(pair) == ["mtcnn"] and list(pair["mtcnn"]) == ["restored", "restored_faces"]
    for cond, per_size in pair["mtcnn"].items():
        assert list(per_size) == list(a)
        for label, row in per_size.items():
            assert row["faces"] == a[label]["faces"]
            if row["faces"]:
                diff = (b[label]["recall"][cond] - a[label]["recall"][cond]) * row["faces"]
                assert round(diff) == row["only_b"] - row["only_a"], (cond, label)
                assert 0.0 < row["p"] <= 1.0
            else:
                assert row["p"] is None
    assert f"## Paired: {tiny_models[1]} vs {tiny_models[0]}" in (out / "report.md").read_text()


# ------------------------------------------------------------------------------- bad input


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ")
    assert not any("Traceback" in line for line in err)
    return err[-1]


def test_bad_inputs(tmp_path, small_lfw, tiny_models, capsys):
    out = str(tmp_path / "o")
    assert cli.evaluate_main(["--model", str(tmp_path / "nope.keras"), "--data-dir", small_lfw, "--output-dir", out]) == 2
    assert "no such file" in _one_line_error(capsys)
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    assert cli.evaluate_main(["--model", str(bad), "--data-dir", small_lfw, "--output-dir", out]) == 2
    assert "bad.keras" in _one_line_error(capsys)
    assert cli.evaluate_main(["--model", tiny_models[0], "--data-dir", str(tmp_path / "missing"), "--output-dir", out]) == 2
    assert "no such folder" in _one_line_error(capsys)
    os.makedirs(tmp_path / "empty")
    assert cli.evaluate_main(["--model", tiny_models[0], "--data-dir", str(tmp_path / "empty"), "--output-dir", out]) == 2
    assert "no images" in _one_line_error(capsys)
    pairs = tmp_path / "pairs"
    _png(str(pairs / "sharp" / "x1.png"))
    _png(str(pairs / "blurred" / "y1.png"))
    assert cli.evaluate_main(["--model", tiny_models[0], "--pairs-dir", str(pairs), "--output-dir", out]) == 2
    line = _one_line_error(capsys)
    assert "x1" in line and "y1" in line and "unmatched" in line
    assert cli.evaluate_main(["--model", tiny_models[0]]) == 2  # neither --data-dir nor --pairs-dir
    assert not os.path.exists(out)


def test_corrupt_image_is_skipped_exit_1(tmp_path, lfw_paths, tiny_models, capsys):
    import shutil

    d = tmp_path / "faces"
    os.makedirs(d)
    for p in lfw_paths[:2]:
        shutil.copy(p, d / os.path.basename(p))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "o"
    rc = cli.evaluate_main(["--model", tiny_models[0], "--data-dir", str(d), "-q", "--output-dir", str(out),
                           "--independent", "none"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "skipped" in err and "broken.jpg" in err and "Traceback" not in err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 2 and len(m["skipped"]) == 1


def test_ground_truth_images_over_the_pixel_cap_are_skipped(multiface_dir, monkeypatch):
    """--ground-truth keeps each image's own size, so it shares deblur's megapixel cap (lowered
    here to 1 pixel: every image is refused from its header, none is decoded)."""
    from tfdeblur.evaluation import datasets

    monkeypatch.setattr(datasets, "DEFAULT_MAX_PIXELS", 1)
    log = SkipLog()
    with pytest.raises(ev.EvaluationError, match="none of the images"):
        ev.load_ground_truth(os.path.join(multiface_dir, "testing.xml"), limit=2, log=log)
    assert len(log) >= 1 and all("image too large" in reason for _, reason in log.skipped)
