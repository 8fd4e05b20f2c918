"""The independent face recognizer (dlib ResNet) on real LFW faces, and its absence."""

import importlib.util
import os
import sys

import numpy as np
import pytest

from tfdeblur import recognizers

LFW = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "lfw")


def _persons(k_multi=1, k_single=1):
    """First person folders (sorted) with >= 2 images, and the next ones with any image."""
    if not os.path.isdir(LFW):
        pytest.skip("../shared/data/lfw not present")
    names = sorted(os.listdir(LFW))
    multi = [n for n in names if len(os.listdir(os.path.join(LFW, n))) >= 2][:k_multi]
    others = [n for n in names if n not in multi][:k_single]
    return multi, others


def _images(person, k):
    from tfdeblur.data import load_faces

    folder = os.path.join(LFW, person)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))[:k]
    images, _ = load_faces(files, size=256)
    return list(images)


@pytest.fixture(scope="module")
def dlib_recognizer():
    try:
        return recognizers.get_recognizer("dlib")
    except recognizers.RecognizerUnavailable as e:
        pytest.skip(str(e))


def test_same_person_is_closer_than_another_person(dlib_recognizer):
    (same,), (other,) = _persons()
    images = _images(same, 2) + _images(other, 1)
    boxes = recognizers.sharp_face_boxes(images)
    assert all(b is not None and b[2] > 20 and b[3] > 20 for b in boxes)  # MTCNN finds each face
    emb = dlib_recognizer.embed(images, boxes)
    assert emb.shape == (3, 128) and emb.dtype == np.float32 and np.isfinite(emb).all()
    genuine = np.linalg.norm(emb[0] - emb[1])
    impostors = [np.linalg.norm(emb[0] - emb[2]), np.linalg.norm(emb[1] - emb[2])]
    assert genuine < min(impostors)
    assert genuine <= dlib_recognizer.threshold < min(impostors)  # and the standard 0.6 tells them apart


def test_embedding_is_the_same_for_the_same_input(dlib_recognizer):
    (same,), _ = _persons()
    image = _images(same, 1)[0]
    box = (60.0, 50.0, 130.0, 150.0)
    a = dlib_recognizer.embed([image, image], [box, None])
    b = dlib_recognizer.embed([image], [box])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], a[1])  # the whole image is a different region from the box


def test_forked_workers_give_the_same_rows_in_the_same_order():
    try:
        one = recognizers.DlibRecognizer(batch_size=2, workers=1)
        two = recognizers.DlibRecognizer(batch_size=2, workers=2)
    except recognizers.RecognizerUnavailable as e:
        pytest.skip(str(e))
    (same,), (other,) = _persons()
    images = _images(same, 2) + _images(other, 1)
    images, boxes = images * 2, [(60.0, 50.0, 130.0, 150.0), None, (70.0, 60.0, 110.0, 130.0)] * 2
    boxes[4] = (300, 300, 40, 40)  # an empty box stays a NaN row in its place
    a, b = one.embed(images, boxes), two.embed(images, boxes)
    np.testing.assert_array_equal(a, b)
    assert np.isnan(b[4]).all() and np.isfinite(np.delete(b, 4, axis=0)).all()
    assert not np.allclose(b[0], b[2])  # rows are per image, not one repeated


def test_empty_box_gives_a_nan_row_and_others_stay(dlib_recognizer):
    (same,), _ = _persons()
    image = _images(same, 1)[0]
    emb = dlib_recognizer.embed([image, image], [(300, 300, 40, 40), (60, 50, 130, 150)])
    assert np.isnan(emb[0]).all() and np.isfinite(emb[1]).all()
    with pytest.raises(ValueError, match="2 images but 1 boxes"):
        dlib_recognizer.embed([image, image], [None])


def test_missing_dlib_is_a_one_line_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    with pytest.raises(recognizers.RecognizerUnavailable) as e:
        recognizers.get_recognizer("dlib")
    assert "\n" not in str(e.value) and "dlib-bin" in str(e.value)


def test_missing_model_package_is_a_one_line_unavailable(monkeypatch):
    pytest.importorskip("dlib")  # dlib is checked first
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(recognizers.RecognizerUnavailable) as e:
        recognizers.get_recognizer("dlib")
    assert "\n" not in str(e.value) and "face-recognition-models" in str(e.value)


def test_unknown_recognizer_name():
    with pytest.raises(ValueError, match="unknown recognizer 'arcface'"):
        recognizers.get_recognizer("arcface")
