"""Verification pairs and identity metrics (tfdeblur.identity), on hand-computed values."""

import json
import os
from collections import Counter

import numpy as np
import pytest

from tfdeblur import identity
from tfdeblur.evaluation import mcnemar_exact, wilson_interval

# Person "big" has 30 images (435 same-person pairs), ten persons 2 each, five persons 1 each.
LABELS = ["big"] * 30 + [f"p{k}" for k in range(10) for _ in range(2)] + [f"solo{k}" for k in range(5)]


def _unordered(pairs):
    return {(min(a, b), max(a, b)) for a, b in pairs}


def test_labels_from_paths_are_person_folders():
    paths = ["/x/lfw/Ann_Lee/Ann_Lee_0001.jpg", "lfw/Bo/Bo_0002.jpg"]
    assert identity.labels_from_paths(paths) == ["Ann_Lee", "Bo"]


def test_pairs_genuine_then_impostor_never_self_never_repeated():
    pairs = identity.make_pairs(LABELS, max_genuine=1000, seed=3)
    lab = np.asarray(LABELS)
    same = lab[pairs[:, 0]] == lab[pairs[:, 1]]
    n_gen = 30 * 29 // 2 + 10
    assert same.sum() == n_gen  # under the cap: every same-person pair
    assert same[:n_gen].all() and not same[n_gen:].any()  # genuine first, then impostors
    assert (~same).sum() == n_gen  # as many impostors
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert len(_unordered(pairs)) == len(pairs)


def test_pairs_are_deterministic_for_a_seed():
    a = identity.make_pairs(LABELS, max_genuine=20, seed=7)
    b = identity.make_pairs(list(LABELS), max_genuine=20, seed=7)
    c = identity.make_pairs(LABELS, max_genuine=20, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_capped_genuine_pairs_are_balanced_by_person():
    pairs = identity.make_pairs(LABELS, max_genuine=20, seed=0)
    lab = np.asarray(LABELS)
    gen = pairs[lab[pairs[:, 0]] == lab[pairs[:, 1]]]
    assert len(gen) == 20 and len(pairs) == 40
    per_person = Counter(lab[gen[:, 0]])
    # round 1 takes one pair from each of the 11 persons, then only "big" has pairs left
    assert all(per_person[f"p{k}"] == 1 for k in range(10)) and per_person["big"] == 10


def test_impostors_take_all_pairs_when_few_exist():
    labels = ["a", "a", "a", "b"]  # 3 genuine pairs, only 3 impostor pairs possible
    pairs = identity.make_pairs(labels, seed=0)
    assert _unordered(pairs[3:]) == {(0, 3), (1, 3), (2, 3)}


def test_single_person_gives_no_impostors():
    pairs = identity.make_pairs(["a", "a", "a"], seed=0)
    assert _unordered(pairs) == {(0, 1), (0, 2), (1, 2)}


# distances: genuine [0.1, 0.3, 0.5, 0.6], impostor [0.2, 0.5, 0.7, 0.9]
D = np.array([0.1, 0.3, 0.5, 0.6, 0.2, 0.5, 0.7, 0.9])
G = np.array([True] * 4 + [False] * 4)


def test_accuracy_auc_tar_by_hand():
    assert identity.accuracy_at(D, G, 0.6) == (6, 8)  # all 4 genuine accepted (<=), 0.7 and 0.9 rejected
    # impostor-above-genuine comparisons: 4 + 3 + (2 + tie 1/2) + 2 = 11.5 of 16
    assert identity.roc_auc(D, G) == pytest.approx(11.5 / 16)
    # FAR 1/4 over 4 impostors: k = 1, threshold 0.5 (second-smallest impostor), genuine < 0.5: 0.1, 0.3
    assert identity.tar_at_far(D, G, 0.25) == pytest.approx(0.5)
    # FAR 1e-3 over 4 impostors: k = 0, threshold 0.2: only 0.1 below it
    assert identity.tar_at_far(D, G, 1e-3) == pytest.approx(0.25)
    assert identity.tar_at_far(D, G, 1.0) == 1.0  # accept everything finite
    m = identity.condition_metrics(D, G, 0.6)  # where the errors are: 2 impostors (0.2, 0.5) accepted
    assert m["accepted"] == {"genuine": 1.0, "impostor": 0.5}
    assert m["median_distance"] == pytest.approx({"genuine": 0.4, "impostor": 0.6})


def test_auc_ties_and_unembedded_pairs():
    assert identity.roc_auc([0.3, 0.3, 0.3], [True, False, False]) == pytest.approx(0.5)
    # a genuine pair that could not be embedded (inf) ranks after every impostor
    assert identity.roc_auc([np.inf, 0.2, 0.5], [True, True, False]) == pytest.approx(0.5)
    assert identity.roc_auc([0.1, 0.2], [True, True]) is None
    assert identity.tar_at_far([0.1, 0.2], [True, True], 0.01) is None


def test_roc_curve_ends_at_one():
    far, tar = identity.roc_curve(D, G)
    assert far[0] == 0 and tar[0] == 0 and far[-1] == 1 and tar[-1] == 1
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)


def test_gap_closed_by_hand():
    assert identity.gap_closed(0.6, 0.8, 1.0) == pytest.approx(0.5)
    assert identity.gap_closed(0.6, 0.5, 1.0) == pytest.approx(-0.25)
    assert identity.gap_closed(0.7, 0.9, 0.7) is None
    assert identity.gap_closed(None, 0.9, 1.0) is None


def _embeddings():
    """1-D positions (padded to 2-D) per image and condition; persons A = 0, 1, B = 2, 3, C = 4."""
    x = {
        "sharp": [0, 0, 10, 10, 20],
        "blurred": [0, 1, 10, 11, 20],  # both genuine pairs drift apart beyond 0.6
        "restored": [0, 0.5, 10, 11, 20],  # restoration brings back one of them
        "sharp_restored": [0, np.nan, 10, 10, 20],  # image 1 could not be embedded
    }
    return {c: np.stack([np.asarray(v, np.float32), np.zeros(5, np.float32)], 1) for c, v in x.items()}


LAB5 = ["A", "A", "B", "B", "C"]
PAIRS5 = np.array([[0, 1], [2, 3], [0, 2], [1, 4]])


def test_identity_metrics_shape_and_values():
    m = identity.identity_metrics(_embeddings(), LAB5, PAIRS5, 0.6, "dlib")
    assert set(m) == {"recognizer", "pairs", "protocols", "self_distance"}
    # probe images 1, 2, 3, 4 against their own sharp positions; the unembedded one is left out
    assert m["self_distance"] == {"images": 4, "median": {"blurred": 0.5, "restored": 0.25, "sharp_restored": 0.0}}
    assert m["recognizer"] == "dlib" and m["pairs"] == {"genuine": 2, "impostor": 2}
    assert set(m["protocols"]) == {"probe", "both"}
    for entry in m["protocols"].values():
        assert set(entry) == {"conditions", "gap_closed", "mcnemar_p"}
        assert set(entry["gap_closed"]) == {"accuracy", "tar_at_far_0.001"}
        assert set(entry["conditions"]) == set(identity.CONDITIONS)
        for c in entry["conditions"].values():
            assert set(c) == {"accuracy", "accuracy_ci95", "auc", "tar_at_far", "accepted", "median_distance"}
            assert set(c["tar_at_far"]) == {"0.01", "0.001"}
    both = m["protocols"]["both"]["conditions"]
    assert both["sharp"]["accuracy"] == 1.0
    assert both["blurred"]["accuracy"] == 0.5  # both genuine pairs rejected, impostors right
    assert both["restored"]["accuracy"] == 0.75
    assert both["sharp_restored"]["accuracy"] == 0.75  # the NaN row: (0, 1) rejected, (1, 4) rightly so
    assert both["restored"]["accuracy_ci95"] == pytest.approx(list(wilson_interval(3, 4)))
    assert m["protocols"]["both"]["gap_closed"]["accuracy"] == pytest.approx(0.5)
    # restored genuine distances 0.5 (accepted) and 1 (rejected); impostors at 10 and 19.5
    assert both["restored"]["accepted"] == {"genuine": 0.5, "impostor": 0.0}
    assert both["restored"]["median_distance"] == pytest.approx({"genuine": 0.75, "impostor": 14.75})
    # every genuine distance (<= 1) is below the closest impostor (10): TAR 1 everywhere, gap 0 -> None
    assert m["protocols"]["both"]["gap_closed"]["tar_at_far_0.001"] is None
    assert m["protocols"]["both"]["mcnemar_p"] == pytest.approx(mcnemar_exact(0, 1))
    probe = m["protocols"]["probe"]["conditions"]  # enrolment = sharp image 0 / 2 at 0 / 10
    assert probe["blurred"]["accuracy"] == 0.5 and probe["restored"]["accuracy"] == 0.75
    assert probe["sharp"] == both["sharp"]
    json.dumps(m)  # plain JSON types only


def test_embed_conditions_embeds_used_images_once_per_condition():
    class MeanColour:  # a real (if weak) recognizer: the mean RGB of the box
        calls = []

        def embed(self, images, boxes=None):
            self.calls.append(len(images))
            return np.asarray([im.reshape(-1, 3).mean(0) for im in images], np.float32)

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(6)]
    rec = MeanColour()
    pairs = np.array([[0, 1], [1, 3], [0, 3]])
    emb = identity.embed_conditions(rec, {"sharp": images, "blurred": images[::-1]}, None, pairs)
    assert rec.calls == [3, 3]  # images 0, 1, 3, once per condition
    assert np.isnan(emb["sharp"][[2, 4, 5]]).all()
    np.testing.assert_allclose(emb["blurred"][1], images[4].reshape(-1, 3).mean(0))


def test_roc_figure_and_report(tmp_path):
    emb = _embeddings()
    m = identity.identity_metrics(emb, LAB5, PAIRS5, 0.6, "dlib")
    paths = identity.roc_figure(identity.identity_distances(emb, LAB5, PAIRS5), tmp_path)
    assert [os.path.basename(p) for p in paths] == ["identity_roc_probe.png", "identity_roc_both.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    lines = identity.report_lines(m)
    rows = [ln for ln in lines if ln.startswith("| probe") or ln.startswith("| both")]
    assert len(rows) == 8
    assert any("| both | Restored | 75.0%" in r and "| 50.0% / 0.0% | 0.750 / 14.750 |" in r for r in rows)
    assert any(ln.startswith("Meaning:") for ln in lines)
    assert "- Median distance of a probe to its own sharp photo (4 images): blurred 0.500, restored 0.250, " \
           "sharp-restored 0.000." in lines


def test_identity_between_models_is_paired_over_the_same_pairs():
    from types import SimpleNamespace

    from tfdeblur.evaluation.identity_measure import identity_between_models
    from tfdeblur.evaluation.statistics import mcnemar_test

    genuine = np.array([True, True, True, False, False])
    measure = SimpleNamespace(recognizer=SimpleNamespace(threshold=0.6), distances={
        "A": {"genuine": genuine, "probe": {"restored": np.array([0.5, 0.7, 0.7, 0.9, 0.5])}},
        "B": {"genuine": genuine, "probe": {"restored": np.array([0.5, 0.5, 0.5, 0.9, 0.9])}},
    })
    out = identity_between_models(measure, ["A", "B"])["A vs B"]
    assert out["probe_restored_accuracy"] == [pytest.approx(2 / 5), pytest.approx(5 / 5)]
    # B is right on two genuine pairs and one impostor pair where A is wrong; never the reverse
    assert (out["correct"]["b"], out["correct"]["c"]) == (0, 3)
    assert (out["genuine_accepted"]["b"], out["genuine_accepted"]["c"]) == (0, 2)
    assert out["correct"] == mcnemar_test([True, False, False, True, False], [True] * 5)


def test_saved_distances_load_back_per_model_protocol_and_condition(tmp_path):
    from tfdeblur.evaluation.identity_measure import save_distances

    dist = identity.identity_distances(_embeddings(), LAB5, PAIRS5)
    path = save_distances({"m1": dist}, tmp_path)
    with np.load(path) as z:
        np.testing.assert_array_equal(z["genuine"], [True, True, False, False])
        np.testing.assert_allclose(z["m1|probe|restored"], dist["probe"]["restored"])
        np.testing.assert_allclose(z["m1|both|blurred"], [1.0, 1.0, 10.0, 19.0])
        assert len([k for k in z.files if k.startswith("m1|")]) == 8  # 2 protocols x 4 conditions
