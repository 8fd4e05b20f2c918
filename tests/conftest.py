"""Shared fixtures. Real faces come from ../shared/data (never copied into the repo)."""
import os
import shutil

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("TFDEBLUR_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
LFW_DIR = os.path.join(DATA_DIR, "lfw")
MULTIFACE_DIR = os.path.join(DATA_DIR, "multiface")


def _require(path):
    if not os.path.isdir(path):
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def lfw_dir():
    return _require(LFW_DIR)


@pytest.fixture(scope="session")
def multiface_dir():
    return _require(MULTIFACE_DIR)


@pytest.fixture(scope="session")
def lfw_paths(lfw_dir):
    """All LFW image paths, sorted."""
    out = []
    for root, _, files in os.walk(lfw_dir):
        out += [os.path.join(root, f) for f in files if f.lower().endswith(".jpg")]
    return sorted(out)


@pytest.fixture(scope="session")
def small_lfw(tmp_path_factory, lfw_paths):
    """A tiny LFW-layout copy: 12 people, 2 images each where available (24-ish images)."""
    root = tmp_path_factory.mktemp("small_lfw")
    people = {}
    for p in lfw_paths:
        people.setdefault(os.path.basename(os.path.dirname(p)), []).append(p)
    chosen = [name for name in sorted(people) if len(people[name]) >= 2][:12]
    for name in chosen:
        os.makedirs(root / name)
        for p in people[name][:2]:
            shutil.copy(p, root / name / os.path.basename(p))
    return str(root)


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory):
    """A tiny untrained lean generator (ngf 8, one block, space-to-depth x2), saved as .keras."""
    import keras

    from tfdeblur.models import build_generator

    keras.utils.set_random_seed(0)
    model = build_generator(ngf=8, n_blocks=1, pixel_shuffle=2, stem_kernel=3)
    path = tmp_path_factory.mktemp("model") / "generator.keras"
    model.save(path)
    return str(path)
