"""Issue 8, the exit-2 half of the bad-input contract: nothing to do (an empty folder, a missing
path, a folder of only bad files) and usage errors, for ``evaluate.py``, ``tfdeblur blur``,
``tfdeblur deblur`` and ``tfdeblur export``: exit 2, one ``error:`` line last, no traceback,
nothing written. The corpus fixtures are in tests/conftest.py, the checks in
tests/bad_inputs_helpers.py; tests/test_bad_inputs.py runs the corpus through each entry point.
"""
import os
import shutil

import pytest

from bad_inputs_helpers import call, check_all_bad_skips, one_error_line, user_lines
from tfdeblur import cli


# ---------------------------------------------------------- nothing to do, usage errors: exit 2


def _argv(kind, where, model, tmp):
    return {
        "blur": (cli.main, ["blur", where, str(tmp / "o")]),
        "deblur": (cli.main, ["deblur", where, "-o", str(tmp / "o"), "--model", model]),
        "evaluate": (cli.evaluate_main, ["--model", model, "--data-dir", where, "-q", "--output-dir", str(tmp / "o")]),
        "export": (cli.main, ["export", "--model", model, "--format", "tflite", "-o", str(tmp / "g.tflite"),
                              "--size", "32", "--quantize", "int8", "--calibration-dir", where]),
    }[kind]


@pytest.mark.parametrize("kind", ["blur", "deblur", "evaluate", "export"])
@pytest.mark.parametrize("where", ["empty", "missing", "all_bad"])
def test_nothing_to_do_is_exit_2(kind, where, empty_dir, all_bad, small_model_path, tmp_path, capsys):
    """An empty folder, a missing path, a folder of only bad files: exit 2, one ``error:`` line
    last (after one skip line per bad file), no traceback, no output file or folder."""
    from tfdeblur.data import NoImagesError, load_split

    folder = {"empty": empty_dir, "missing": str(tmp_path / "no_such_folder"), "all_bad": all_bad}[where]
    fn, argv = _argv(kind, folder, small_model_path, tmp_path)
    code, out, err = call(fn, argv, capsys)
    assert code == 2, err
    line = one_error_line(err, "")
    words = {"empty": ("no images", "need at least 2"), "missing": ("no such", "not found", "no images"),
             "all_bad": ("none of the", "no pairs written", "need at least 2")}[where]
    assert any(w in line for w in words), line
    if where == "all_bad":
        check_all_bad_skips(err, folder)
    assert not (tmp_path / "g.tflite").exists()
    assert not (tmp_path / "o").exists()  # not even empty folders
    if where != "all_bad":
        with pytest.raises(NoImagesError):  # the training loader says the same
            load_split(folder)


@pytest.fixture(scope="module")
def not_a_model(tmp_path_factory):
    p = tmp_path_factory.mktemp("nm") / "model.keras"
    p.write_text("not a Keras model")
    return str(p)


# Not repeated here (tested elsewhere): missing / non-model --model for deblur and evaluate,
# missing --model and unwritable output for export saved_model (test_inference, test_evaluation,
# test_export), blur OUT_DIR that is a file (test_blur), train.py flags (test_config).
USAGE = [
    ("evaluate --bogus", "evaluate", ["--data-dir", "{faces}", "--bogus"], "unrecognized arguments: --bogus"),
    ("evaluate no source", "evaluate", ["-q"], "one of the arguments --data-dir"),
    ("evaluate output is a file", "evaluate", ["--model", "{model}", "--data-dir", "{faces}",
                                               "--output-dir", "{file}"], "is not a folder"),
    ("evaluate output is under a file", "evaluate", ["--model", "{model}", "--data-dir", "{faces}",
                                                     "--output-dir", "{file}/out"], "cannot write results"),
    ("evaluate --fast-proposals without --scenes", "evaluate", ["--model", "{model}", "--data-dir", "{faces}",
                                                                "--fast-proposals"], "--fast-proposals needs --scenes"),
    ("tfdeblur no command", "tfdeblur", [], "required: command"),
    ("tfdeblur bad command", "tfdeblur", ["sharpen"], "invalid choice: 'sharpen'"),
    ("blur --bogus", "tfdeblur", ["blur", "{faces}", "{tmp}/o", "--bogus"], "unrecognized arguments: --bogus"),
    ("blur --limit x", "tfdeblur", ["blur", "{faces}", "{tmp}/o", "--limit", "x"], "invalid int value: 'x'"),
    ("deblur --bogus", "tfdeblur", ["deblur", "{faces}", "-o", "{tmp}/o", "--bogus"], "unrecognized arguments"),
    ("deblur no -o", "tfdeblur", ["deblur", "{faces}"], "-o/--output"),
    ("deblur --max-megapixels 0", "tfdeblur", ["deblur", "{faces}", "-o", "{tmp}/o", "--model", "{model}",
                                               "--max-megapixels", "0"], "--max-megapixels"),
    ("export --bogus", "tfdeblur", ["export", "--format", "tflite", "-o", "{tmp}/g.tflite", "--bogus"],
     "unrecognized arguments"),
    ("export --format pb", "tfdeblur", ["export", "--format", "pb", "-o", "{tmp}/g"], "invalid choice: 'pb'"),
    ("export non-model --model", "tfdeblur", ["export", "--model", "{not_a_model}", "--format", "tflite", "-o",
                                              "{tmp}/g.tflite"], "not a Keras model"),
    ("export tflite output under a file", "tfdeblur", ["export", "--model", "{model}", "--format", "tflite", "-o",
                                                       "{file}/g.tflite"], "cannot write"),
    ("export tflite output is a folder", "tfdeblur", ["export", "--model", "{model}", "--format", "tflite", "-o",
                                                      "{tmp}"], "is a folder"),
]


@pytest.mark.parametrize("label,entry,argv,words", USAGE, ids=[u[0] for u in USAGE])
def test_usage_errors_are_one_line_exit_2(label, entry, argv, words, corpus, small_model_path, not_a_model,
                                          tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a folder should be")
    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(corpus.path(corpus.good[0]), faces / corpus.good[0])
    subs = {"model": small_model_path, "faces": str(faces), "tmp": str(tmp_path), "file": str(blocker),
            "not_a_model": not_a_model}
    argv = [a.format(**subs) for a in argv]
    fn = cli.evaluate_main if entry == "evaluate" else cli.main
    before = sorted(os.listdir(tmp_path))
    code, out, err = call(fn, argv, capsys)
    assert code == 2, (label, err)
    assert user_lines(out) == [], out
    assert len(user_lines(err)) == 1, err  # not argparse's usage block
    one_error_line(err, words)
    assert sorted(os.listdir(tmp_path)) == before  # nothing created
