"""The command line: ``--help`` without TensorFlow, no TensorFlow log lines by default, one
``error:`` line and exit 2 for every usage error, and the deblur command's flags."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfdeblur import cli, inference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What TensorFlow, absl and LiteRT print from C++ (none of it may reach the console by default).
NATIVE_LOG = re.compile(r"absl::InitializeLog|^[IWEF]\d{4} \d\d:\d\d:\d\d|cuda|XNNPACK|oneDNN|TensorFlow binary",
                        re.IGNORECASE | re.MULTILINE)


def _env():
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command's own default, not the test runner's
    return env


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "tfdeblur.cli", *map(str, args)], capture_output=True,
                          text=True, env=_env(), cwd=REPO, timeout=timeout)


def user_lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _one_error_line(stderr):
    lines = user_lines(stderr)
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _gradient(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1).astype(np.uint8)


# ------------------------------------------------------------------------------- --help

HELP = [
    ("from tfdeblur.cli import main", "main(['--help'])"),
    ("from tfdeblur.cli import main", "main(['blur', '--help'])"),
    ("from tfdeblur.cli import main", "main(['deblur', '--help'])"),
    ("from tfdeblur.cli import main", "main(['export', '--help'])"),
    ("from tfdeblur.cli import train_main", "train_main(['--help'])"),
    ("from tfdeblur.cli import evaluate_main", "evaluate_main(['--help'])"),
]


@pytest.mark.parametrize("imp,call", HELP, ids=[c for _, c in HELP])
def test_help_imports_no_tensorflow(imp, call):
    """``--help`` (and building every parser) loads neither TensorFlow nor Keras nor NumPy."""
    code = (f"import sys\n{imp}\ntry:\n    {call}\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print('LOADED', sorted(m for m in ('tensorflow', 'keras', 'numpy', 'mtcnn') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout and "LOADED []" in r.stdout, r.stdout[-300:]
    assert r.stderr == ""


def test_help_scripts_list_every_command_and_flag():
    for script, words in (("train.py", ["--gan", "--resume", "--set", "-v, --verbose"]),
                          ("evaluate.py", ["--pairs-dir", "--independent", "--precision", "-v, --verbose"])):
        r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, env=_env(), cwd=REPO,
                           timeout=120)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        for w in words:
            assert w in r.stdout, (script, w)
    top = cli.tfdeblur_parser().format_help()
    assert all(c in top for c in ("blur", "deblur", "export"))


def test_import_tfdeblur_is_light_and_load_model_registers_the_layers(small_model_path):
    code = ("import sys, tfdeblur\nassert 'tensorflow' not in sys.modules\n"
            f"m = tfdeblur.load_model({small_model_path!r})\n"
            "print(type(m).__name__, 'tfdeblur.models' in sys.modules, callable(tfdeblur.deblur))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["True", "True"]


# ------------------------------------------------------------------------------- quiet


def test_a_command_prints_no_native_log_lines_by_default(tmp_path, small_model_path):
    """A real run (TensorFlow, Keras and the model load): stderr holds only our own lines."""
    Image.fromarray(_gradient(24, 30)).save(tmp_path / "a.png")
    r = run_cli("deblur", tmp_path / "a.png", "-o", tmp_path / "out", "--model", small_model_path, "-q")
    assert r.returncode == 0, r.stderr
    assert not NATIVE_LOG.search(r.stderr), r.stderr
    assert user_lines(r.stderr) == [f"deblurred 1 image into {tmp_path / 'out'}; skipped 0"]
    v = run_cli("deblur", tmp_path / "a.png", "-o", tmp_path / "out_v", "--model", small_model_path, "-q", "-v")
    assert v.returncode == 0, v.stderr  # -v: TensorFlow's own lines are let through (if it prints any)
    assert user_lines(v.stderr)[-1] == f"deblurred 1 image into {tmp_path / 'out_v'}; skipped 0"


def test_a_failing_native_import_is_not_hidden():
    """What was captured while importing is replayed when the import fails."""
    code = ("import os, sys\nfrom tfdeblur import quiet\nquiet.configure()\n"
            "try:\n    with quiet.native_stderr_silenced():\n        os.write(2, b'native words\\n')\n"
            "        raise ImportError('boom')\nexcept ImportError:\n    pass\n"
            "with quiet.native_stderr_silenced():\n    os.write(2, b'hidden\\n')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60)
    assert r.returncode == 0 and r.stderr == "native words\n", r.stderr


# ------------------------------------------------------------------------------- errors


def test_cli_unwritable_output_is_one_line(tmp_path, small_model_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder's parent should be")
    Image.fromarray(_gradient(20, 20)).save(tmp_path / "a.png")
    r = run_cli("deblur", tmp_path / "a.png", "-o", blocker / "out", "--model", small_model_path)
    assert r.returncode == 2
    assert "output folder" in _one_error_line(r.stderr)


def test_cli_errors_in_process(tmp_path, capsys, small_model_path, monkeypatch):
    img = tmp_path / "a.png"
    Image.fromarray(_gradient(20, 20)).save(img)
    text_model = tmp_path / "model.keras"
    text_model.write_text("hello")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    cases = [
        (["--model", str(tmp_path / "missing.keras")], "not found"),
        (["--model", str(text_model)], "not a Keras model"),
        (["--model", small_model_path, "--batch-size", "0"], "--batch-size"),
        (["--model", small_model_path, "--tile", "4"], "tile"),
    ]
    for extra, words in cases:
        code = cli.main(["deblur", str(img), "-o", str(tmp_path / "out"), *extra])
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert words in _one_error_line(err), err
    with pytest.raises(SystemExit) as info:  # argparse's choices: its own one-line usage error
        cli.main(["deblur", str(img), "-o", str(tmp_path / "out"), "--precision", "half"])
    assert info.value.code == 2 and "--precision" in _one_error_line(capsys.readouterr().err)
    code = cli.main(["deblur", str(img), "-o", str(blocker), "--model", small_model_path])
    assert code == 2 and "not a folder" in _one_error_line(capsys.readouterr().err)
    monkeypatch.setitem(inference.SHIPPED_MODELS, "default", str(tmp_path / "pretrained" / "generator.keras"))
    code = cli.main(["deblur", str(img), "-o", str(tmp_path / "out_shipped")])  # no --model: the shipped one
    assert code == 2 and "shipped model is not installed" in _one_error_line(capsys.readouterr().err)
    code = cli.main(["export", "--format", "saved_model", "-o", str(tmp_path / "sm")])
    assert code == 2 and "shipped model is not installed" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out_shipped").exists() and not (tmp_path / "sm").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code = cli.main(["deblur", str(empty), str(tmp_path / "nothing.jpg"), "-o", str(tmp_path / "o2"),
                     "--model", small_model_path])
    err = capsys.readouterr().err
    assert code == 2
    assert user_lines(err)[-1] == "error: no images to deblur (inputs: .jpg, .jpeg, .png, .webp, .bmp files or folders)"
    assert f"skipped {tmp_path / 'nothing.jpg'}: no such file or directory" in err
    assert not (tmp_path / "o2").exists()  # refused before anything is written


def test_cli_deblur_quiet_prints_no_progress_bar(tmp_path, lfw_paths, small_model_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["deblur", lfw_paths[0], "-o", str(out), "--model", small_model_path, "-q"])
    captured = capsys.readouterr()
    assert code == 0 and (out / os.path.basename(lfw_paths[0])).is_file()
    assert "image" not in captured.out and "━" not in captured.out  # no Progbar output
    assert "deblurred 1 image into" in captured.err
