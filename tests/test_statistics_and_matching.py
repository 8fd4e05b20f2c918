"""Evaluation statistics and box matching (issue 4): Wilson and McNemar against known values,
IoU and landmark error, imglab XML, and greedy matching of detections to hand-labelled boxes."""
import os

import numpy as np
import pytest

from tfdeblur import evaluation as ev

# ------------------------------------------------------------------------------- statistics


def test_wilson_interval_known_values():
    lo, hi = ev.wilson_interval(10, 100)
    assert lo == pytest.approx(0.0552, abs=1e-4)
    assert hi == pytest.approx(0.1744, abs=1e-4)
    # k = 0 and k = n: closed-form Wilson bounds z^2 / (n + z^2)
    z2 = 1.959963984540054**2
    assert ev.wilson_interval(0, 12) == pytest.approx((0.0, z2 / (12 + z2)))
    assert ev.wilson_interval(12, 12) == pytest.approx((12 / (12 + z2), 1.0))
    # symmetric in successes / failures
    lo2, hi2 = ev.wilson_interval(90, 100)
    assert (lo2, hi2) == pytest.approx((1 - hi, 1 - lo))
    assert ev.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        ev.wilson_interval(5, 3)


def test_mcnemar_exact_known_values():
    # b=10, c=2: two-sided exact p = 2 * P(X <= 2), X ~ Binom(12, 1/2) = 2 * 79 / 4096
    assert ev.mcnemar_exact(10, 2) == pytest.approx(0.0386, abs=1e-4)
    assert ev.mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096, rel=1e-12)
    assert ev.mcnemar_exact(2, 10) == ev.mcnemar_exact(10, 2)
    assert ev.mcnemar_exact(0, 0) == 1.0
    assert ev.mcnemar_exact(5, 5) == 1.0
    assert ev.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    a = [True] * 10 + [False] * 2 + [True] * 5 + [False] * 3
    b = [False] * 10 + [True] * 2 + [True] * 5 + [False] * 3
    t = ev.mcnemar_test(a, b)
    assert (t["b"], t["c"], t["n"]) == (10, 2, 20)
    assert t["p"] == pytest.approx(2 * 79 / 4096)


# ------------------------------------------------------------------------------- geometry


def test_iou_values():
    assert ev.iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert ev.iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert ev.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert ev.iou([0, 0, 10, 10], [0, 0, 5, 5]) == pytest.approx(0.25)
    assert ev.iou([0, 0, 0, 10], [0, 0, 0, 10]) == 0.0  # degenerate box
    assert ev.iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_landmark_nme():
    ref = np.array([[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]], float)
    assert ev.landmark_nme(ref, ref) == 0.0
    assert ev.landmark_nme(ref + [2, 0], ref) == pytest.approx(2 / 20)
    assert ev.landmark_nme(None, ref) is None
    assert ev.landmark_nme(ref, np.zeros((5, 2))) is None  # eyes coincide: undefined


def test_load_imglab_xml(multiface_dir, multiface_gt):
    assert len(multiface_gt) == 5
    assert sum(len(e["boxes"]) for e in multiface_gt) == 25
    train = ev.load_imglab_xml(os.path.join(multiface_dir, "training.xml"))
    assert (len(train), sum(len(e["boxes"]) for e in train)) == (4, 18)
    first = multiface_gt[0]
    assert os.path.basename(first["path"]) == "2008_002470.jpg" and os.path.isfile(first["path"])
    # <box top='181' left='274' width='52' height='53'/> -> [x1, y1, x2, y2]
    assert first["boxes"][0].tolist() == [274, 181, 326, 234]


def test_match_detections_against_ground_truth(multiface_gt):
    for e in multiface_gt:
        gt = e["boxes"]
        n = len(gt)
        # the labelled boxes themselves: every face found, nothing spurious
        assert ev.match_detections(gt, gt) == (n, 0, 0)
        # shifted right by half a width: IoU = 1/3 < 0.5 -> every box a false positive and a miss
        w = gt[:, 2] - gt[:, 0]
        half = gt + np.stack([w / 2, 0 * w, w / 2, 0 * w], axis=1)
        assert ev.iou(half[0], gt[0]) == pytest.approx(1 / 3, abs=0.02)
        assert ev.match_detections(half, gt) == (0, n, n)
        # shifted by a tenth of a width: IoU ~0.82 -> all still matched
        tenth = gt + np.stack([w / 10, 0 * w, w / 10, 0 * w], axis=1)
        assert ev.match_detections(tenth, gt) == (n, 0, 0)
        # a duplicate detection of one face is a false positive; nothing detected -> all missed
        assert ev.match_detections(np.concatenate([gt, gt[:1]]), gt) == (n, 1, 0)
        assert ev.match_detections([], gt) == (0, 0, n)
        assert ev.match_detections(gt, []) == (0, n, 0)


def test_match_detections_prefers_higher_scores():
    ref = [[0, 0, 10, 10]]
    pred = [[1, 0, 11, 10], [0, 0, 10, 10]]
    assert ev.match_detections(pred, ref, scores=[0.2, 0.9]) == (1, 1, 0)
    pairs = ev.greedy_match(pred, ref, 0.5, scores=[0.2, 0.9])
    assert pairs == [(1, 0)]
