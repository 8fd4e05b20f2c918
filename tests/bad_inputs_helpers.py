"""Shared helpers for the bad-input tests (tests/test_bad_inputs*.py): the corpus description and
the contract checks (one ``skipped PATH: reason`` line per skipped input, one ``error:`` line last,
no traceback). The corpus fixtures themselves are in tests/conftest.py. Not collected by pytest
(the name does not start with ``test_``).
"""
import os
import re
from dataclasses import dataclass, field

import numpy as np

HUGE = 12_000
COLOUR = (200, 120, 60)  # the huge image's solid colour
# TensorFlow prints absl / C++ log lines on import whatever TF_CPP_MIN_LOG_LEVEL says; not ours.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d\d|To enable the following"
                       r"|\s*$)")


@dataclass
class Corpus:
    root: str
    good: list
    face: np.ndarray  # the RGB face the derived formats were made from
    upright: np.ndarray  # what the EXIF-rotated photo looks like displayed (decoded, rotated by hand)
    alpha: np.ndarray  # the RGBA file's alpha
    locked_readable: bool  # chmod 000 does not stop root (CI): then the file is simply converted
    skip_always: dict = field(default_factory=dict)  # name -> words of the skip reason

    def path(self, name):
        return os.path.join(self.root, name)

    def expected(self, reader):
        """``(converted names, {skipped name: reason words})`` for ``reader``: ``"rgb"`` (read_rgb:
        loader, blur, evaluate, export; refuses images under 16 px) or ``"deblur"`` (read_image
        with the default --max-megapixels 64; any size from 1x1 up)."""
        ok = set(self.good) | {"cmyk.jpg", "gray16.png", "rgb16.png", "palette.png", "rgba.png", "exif_rot6.jpg"}
        skip = dict(self.skip_always)
        if self.locked_readable:
            ok.add("locked.jpg")
        else:
            skip["locked.jpg"] = "permission denied"
        if reader == "rgb":
            ok.add("huge.jpg")
            skip["one_px.png"] = "too small"
        else:
            ok.add("one_px.png")
            skip["huge.jpg"] = "too large"
        return ok, skip


def call(fn, argv, capsys):
    """In-process CLI call: (exit code, stdout, stderr). argparse errors exit via SystemExit."""
    try:
        code = fn(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def user_lines(text):
    return [line for line in text.splitlines() if not _TF_NOISE.match(line)]


def check_skips(err, corpus, skipped, extra=()):
    """Exactly one ``skipped PATH: reason`` line per skipped input, naming it, and none for anything else."""
    lines = [line for line in err.splitlines() if line.startswith(("skipped /", "skipped " + corpus.root))]
    for name, words in skipped.items():
        mine = [line for line in lines if line.startswith(f"skipped {corpus.path(name)}: ")]
        assert len(mine) == 1, (name, lines)
        assert words in mine[0], (name, mine[0])
    for path, words in extra:
        mine = [line for line in lines if line.startswith(f"skipped {path}: ")]
        assert len(mine) == 1 and words in mine[0], (path, lines)
    assert len(lines) == len(skipped) + len(extra), lines


def one_error_line(err, words):
    lines = user_lines(err)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert words in errors[0], errors[0]
    return errors[0]


ALL_BAD = {"zero.jpg": "empty file", "truncated.jpg": "truncated", "text.jpg": "not a readable image",
           "loop.jpg": "symlink loop", "dangling.jpg": "no such file", "pipe.jpg": "not a regular file"}


def check_all_bad_skips(err, folder):
    lines = [line for line in err.splitlines() if line.startswith(f"skipped {folder}")]
    assert len(lines) == len(ALL_BAD), lines
    for name, words in ALL_BAD.items():
        mine = [line for line in lines if line.startswith(f"skipped {os.path.join(folder, 'Some_Person', name)}: ")]
        assert len(mine) == 1 and words in mine[0], (name, lines)
