"""tfdeblur.files: files written whole or not at all."""

import json
import os

import pytest

from tfdeblur.files import atomic_path, write_json


def test_write_json_makes_the_folder_and_writes_the_object(tmp_path):
    path = tmp_path / "new" / "folder" / "out.json"
    assert write_json(path, {"a": [1, 2], "b": None}) == str(path)
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": None}
    write_json(path, {"when": tmp_path}, default=str)  # dump keywords pass through
    assert json.loads(path.read_text()) == {"when": str(tmp_path)}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"good": 1})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})  # not JSON: fails halfway through the dump
    assert json.loads(path.read_text()) == {"good": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_path_replaces_only_on_success(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.bin"]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
