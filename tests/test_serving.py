"""The exported SavedModel's serving signature under malformed requests: each one gets a clear
error, and the next good request still works (what TensorFlow Serving runs, loaded the same way)."""
import numpy as np
import pytest

from tfdeblur.export import MAX_SERVE_PIXELS, export_saved_model
from tfdeblur.inference import deblur, load_model


@pytest.fixture(scope="module")
def fast_model():
    return load_model("fast")


@pytest.fixture(scope="module")
def signature(tmp_path_factory, fast_model):
    import tensorflow as tf

    base = tmp_path_factory.mktemp("serving") / "tfdeblur"
    export_saved_model(fast_model, base / "1", verify=False)  # TF Serving's <base>/<version> layout
    return tf.saved_model.load(str(base / "1")).signatures["serving_default"]


@pytest.fixture(scope="module")
def good(signature, lfw_paths, fast_model):
    """A real face (odd size: 250x250 is no multiple of 8) and the signature's answer to it."""
    from tfdeblur.data import load_faces

    faces, _ = load_faces(lfw_paths[:2], size=250)
    restored = signature(images=faces)["restored"].numpy()
    assert np.abs(restored.astype(int) - deblur(fast_model, faces, tile=None)).max() <= 1  # as Keras
    return faces, restored


def test_signature_names_and_types(signature):
    import tensorflow as tf

    spec = signature.structured_input_signature[1]
    assert list(spec) == ["images"]
    assert spec["images"].dtype == tf.uint8 and spec["images"].shape.as_list() == [None, None, None, 3]
    out = signature.structured_outputs
    assert list(out) == ["restored"] and out["restored"].dtype == tf.uint8


def _malformed():
    zeros = np.zeros
    return {
        "float32 pixels": (lambda: zeros((1, 64, 64, 3), np.float32), "uint8"),
        "int32 pixels": (lambda: zeros((1, 64, 64, 3), np.int32), "uint8"),
        "rank 3 (no batch axis)": (lambda: zeros((64, 64, 3), np.uint8), "[batch, height, width, 3]"),
        "rank 5": (lambda: zeros((1, 1, 64, 64, 3), np.uint8), "[batch, height, width, 3]"),
        "RGBA": (lambda: zeros((1, 64, 64, 4), np.uint8), "3 channels"),
        "grayscale": (lambda: zeros((1, 64, 64, 1), np.uint8), "3 channels"),
        "empty batch": (lambda: zeros((0, 64, 64, 3), np.uint8), "not be empty"),
        "zero height": (lambda: zeros((1, 0, 64, 3), np.uint8), "not be empty"),
        "zero width": (lambda: zeros((2, 64, 0, 3), np.uint8), "not be empty"),
        "huge": (lambda: zeros((1, 4096, MAX_SERVE_PIXELS // 4096 + 1, 3), np.uint8), f"at most {MAX_SERVE_PIXELS}"),
    }


@pytest.mark.parametrize("case", list(_malformed()))
def test_malformed_request_then_good_request(signature, good, case):
    import tensorflow as tf

    make, words = _malformed()[case]
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError)) as e:
        signature(images=tf.constant(make()))
    assert words in str(e.value), str(e.value)[:500]
    faces, want = good
    out = signature(images=tf.constant(faces))["restored"]
    assert out.dtype == tf.uint8 and tuple(out.shape) == faces.shape
    np.testing.assert_array_equal(out.numpy(), want)  # the same answer as before the bad request
