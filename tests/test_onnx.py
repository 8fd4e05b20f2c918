"""ONNX export (tf2onnx) checked with onnxruntime against Keras on real blurred LFW faces, any H x W."""
import os
import sys

import numpy as np
import pytest

from tfdeblur import cli
from tfdeblur.inference import deblur, load_model

pytest.importorskip("tf2onnx")
ort = pytest.importorskip("onnxruntime")

from tfdeblur import onnx_export  # noqa: E402

SIZES = ((256, 256), (200, 264))  # square, and non-square (both multiples of the generators' 8)


@pytest.fixture(scope="module")
def fast_model():
    return load_model("fast")


@pytest.fixture(scope="module")
def face_batches(small_lfw):
    """Real LFW faces blurred with the project's training blur, at each size in SIZES."""
    batches = onnx_export.parity_images(small_lfw, sizes=SIZES, n=4)
    assert [b.shape for b in batches] == [(4, h, w, 3) for h, w in SIZES]
    return batches


def _psnr(a, b):
    import tensorflow as tf

    return float(tf.image.psnr(tf.constant(a), tf.constant(b), max_val=255))


def _check_parity(model, path, batches):
    """Run the written file with onnxruntime (independently of the export's own check)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, out.name, out.type) == ("images", "tensor(uint8)", "restored", "tensor(uint8)")
    assert inp.shape[3] == 3 and not any(isinstance(d, int) for d in inp.shape[:3])  # N, H, W dynamic
    worst = 0
    for batch in batches:
        got = sess.run(["restored"], {"images": batch})[0]
        want = deblur(model, batch, tile=None)
        assert got.shape == batch.shape and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.max() <= 1, (batch.shape, diff.max())
        assert min(_psnr(g, w) for g, w in zip(got, want)) > 60
        assert np.abs(got.astype(int) - batch).mean() > 1  # the generator did change the faces
        worst = max(worst, int(diff.max()))
    return worst


def test_fast_generator_matches_keras_on_faces(tmp_path, fast_model, face_batches):
    path = tmp_path / "fast.onnx"
    lines = []
    report = onnx_export.export_onnx(fast_model, path, batches=face_batches, log=lines.append)
    assert report["ok"] and report["max_abs_diff"] <= onnx_export.PARITY_TOLERANCE
    assert report["size_bytes"] == os.path.getsize(path) > 1_000_000
    assert report["checked"] == ["4x256x256", "4x200x264"]
    assert report["max_abs_diff"] == _check_parity(fast_model, path, face_batches)
    assert "max |diff|" in "\n".join(lines)
    assert os.listdir(tmp_path) == ["fast.onnx"]  # no temporary file left beside it


def test_default_generator_matches_keras_on_faces(tmp_path, face_batches):
    model = load_model()
    path = tmp_path / "default.onnx"
    report = onnx_export.export_onnx(model, path, verify=False, log=lambda *a: None)
    assert report["size_bytes"] == os.path.getsize(path)
    _check_parity(model, path, face_batches)


def test_cli_writes_onnx(tmp_path, small_model_path, capsys):
    path = tmp_path / "x.onnx"
    code = cli.main(["export", "--model", small_model_path, "--format", "onnx", "-o", str(path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "max |diff|" in printed and f"wrote {path}" in printed
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    img = np.full((1, 37, 50, 3), 120, np.uint8)
    assert sess.run(None, {"images": img})[0].shape == img.shape


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_bad_output_path(tmp_path, small_model_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    code = cli.main(["export", "--model", small_model_path, "--format", "onnx", "-o", str(blocker / "x.onnx")])
    assert code == 2
    assert "cannot write" in _one_error_line(capsys)
    (tmp_path / "folder").mkdir()
    assert cli.main(["export", "--model", small_model_path, "--format", "onnx", "-o", str(tmp_path / "folder")]) == 2
    assert "is a folder" in _one_error_line(capsys)
    assert cli.main(["export", "--model", small_model_path, "--format", "onnx", "--quantize", "int8",
                     "-o", str(tmp_path / "q.onnx")]) == 2
    assert "--quantize" in _one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["blocker", "folder"]


def test_cli_without_tf2onnx(tmp_path, small_model_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    code = cli.main(["export", "--model", small_model_path, "--format", "onnx", "-o", str(tmp_path / "x.onnx")])
    assert code == 2
    assert "tf2onnx" in _one_error_line(capsys)
    assert os.listdir(tmp_path) == []


def test_failed_conversion_is_typed_and_leaves_nothing(tmp_path, small_model_path, monkeypatch):
    import tf2onnx

    def unsupported(*args, **kwargs):
        raise ValueError("tf2onnx: op FooBar is not supported\n(long traceback text)")

    monkeypatch.setattr(tf2onnx.convert, "from_function", unsupported)
    path = tmp_path / "x.onnx"
    with pytest.raises(onnx_export.OnnxExportError, match="could not convert.*FooBar") as e:
        onnx_export.export_onnx(load_model(small_model_path), path, log=lambda *a: None)
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []
