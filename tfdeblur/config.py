"""Configs are data: YAML files merged over defaults, then overridden by command-line flags."""

from __future__ import annotations

import copy
import os
import re

import yaml

__all__ = ["DEFAULTS", "GAN_LOSSES", "GENERATOR_CHOICES", "PRECISIONS", "ConfigError", "default_config_path", "load_config",
           "load_yaml", "merge", "set_dotted", "validate"]

# The adversarial losses (tfdeblur.gan.GAN_CLASSES maps them to models); kept here, free of
# TensorFlow, so that flag parsing can offer them without importing it.
GAN_LOSSES = ("gan", "lsgan", "wgan-gp")
# The compute precisions a generator can run in (tfdeblur.models.with_precision), for the same reason.
PRECISIONS = ("float32", "bfloat16")

# The generator options that take one of a few values (tfdeblur.models.build_generator checks
# the same lists); the other model options are integers.
GENERATOR_CHOICES = {
    "arch": ("resnet", "naf"),  # DeblurGAN ResNet blocks, or NAFNet blocks in a U-shape (tfdeblur.naf)
    "upsample": ("transpose", "bilinear", "nearest"),
    "block": ("basic", "separable", "inverted"),
    "norm": ("group", "fused"),
    "pixel_shuffle": (1, 2, 4),
}

# Keys that older versions wrote (e.g. into a run's config.yaml): accepted and ignored, so an old
# run can still be resumed with its own config.
_REMOVED_KEYS = {"train.image_every"}

# The configuration ``train.py`` uses without --config: this checkout's configs/cpu.yaml (found
# from the package, so it does not depend on the current folder); absent in an installed copy.
_REPO_DEFAULT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "cpu.yaml")


def default_config_path() -> str | None:
    """configs/cpu.yaml of this checkout if it exists (None: the built-in DEFAULTS alone)."""
    return _REPO_DEFAULT if os.path.isfile(_REPO_DEFAULT) else None


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-4 as a float (YAML 1.1 insists on 1.0e-4 and gives a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_yaml(text_or_stream):
    """yaml.safe_load, but with 1e-4 read as a number."""
    return yaml.load(text_or_stream, Loader=_Loader)


class ConfigError(ValueError):
    """A config file or override is invalid; str() is a one-line explanation."""


DEFAULTS: dict = {
    "model": {
        "generator": {
            "arch": "resnet", "ngf": 64, "n_blocks": 6, "n_down": 2, "upsample": "transpose", "block": "basic",
            "stem_kernel": 7, "pixel_shuffle": 1, "norm": "group",
        },
        "discriminator": {"ndf": 64, "n_layers": 3},
    },
    "data": {
        "data_dir": None,  # -> $TFDEBLUR_DATA -> data/lfw
        "image_size": 256,
        "crop": 256,
        "val_fraction": 0.25,
        "split_seed": 0,
        "train_limit": None,  # e.g. 1000 pairs as in the paper
        "val_images": 200,  # validated each epoch
        "blur": {"preset": "train"},  # or KernelParams fields
        "kernel_bank": None,  # a fixed .npz bank instead of fresh kernels
        "noise_sigma": [0.0, 0.0],
        # share of training crops that may reach the image edge (blurred with reflected borders,
        # as evaluation blurs full images); the rest are interior crops with real-pixel margins
        "border_fraction": 0.0,
        # JPEG round trip of this share of blurred training crops, quality drawn per crop
        "jpeg": {"prob": 0.0, "quality": [50, 95]},
        # Camera frames (tfdeblur.frame_data): this share of every batch is cut from frames composed
        # from training persons' photos, faces of face_heights px anywhere, the whole frame blurred
        # with one shake in frame pixels (data.frames.blur: a preset plus KernelParams fields).
        "frames": {"fraction": 0.0, "count": 600, "size": 256, "face_heights": [24.0, 160.0], "max_faces": 6,
                   "blur": {"preset": "train-knotty", "length": [10.0, 45.0]}, "seed": 1},
        # Small faces as deblur_faces restores them (tfdeblur.frame_data.small_face_dataset): this share
        # of every batch is a crop-scale image shrunk until its face is face_heights px tall, blurred there
        # (data.small_faces.blur, lengths in the shrunk image's pixels), noised, JPEG'd, resized back up.
        "small_faces": {"fraction": 0.0, "face_heights": [24.0, 100.0],
                        "blur": {"preset": "train-knotty", "length": [10.0, 40.0]}},
    },
    "train": {
        "gan": "lsgan",
        "steps": 10000,
        "epochs": None,
        "steps_per_epoch": 500,
        "batch_size": 1,
        "g_lr": 1.0e-4,
        "d_lr": 1.0e-4,
        "beta_1": 0.5,
        "beta_2": 0.999,
        "decay_start": 0.5,  # constant LR, then linear decay to 0 from this fraction of steps
        "content": {"vgg19": 1.0},
        "vgg19_weights": None,
        "content_weight": 100.0,
        "adv_weight": 1.0,
        "gp_weight": 10.0,
        "n_critic": 5,
        "checkpoint_every": 500,
        "keep_checkpoints": 3,
        "keep_generators": False,  # also write generator_<step>.keras at every validation (checkpoint selection)
        "seed": 0,
        "on_nonfinite": "stop",  # or "skip": skip the step and halve the learning rates
        "init_from": None,  # fine-tune: start G and D from this checkpoint (dir or prefix)
        "init_grow": False,  # init_from a narrower/shallower generator .keras: start as its function
        "distill_from": None,  # a larger generator (.keras) whose restorations G also imitates
        "distill_weight": 1.0,  # Charbonnier to the teacher's restoration; used with distill_from
        "identity_model": None,  # face embedder (.keras) for the "identity" content term (scripts/train_face_embedder.py)
        "debug_nan_at_step": None,  # test hook: feed a NaN batch at this step
    },
}


def merge(base: dict, override: dict, _prefix: str = "") -> dict:
    """Deep-merge ``override`` into a copy of ``base`` (free-form maps are replaced whole)."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        key = f"{_prefix}{k}"
        if isinstance(v, dict) and isinstance(out.get(k), dict) and key not in _FREE_FORM:
            out[k] = merge(out[k], v, key + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_dotted(cfg: dict, key: str, value) -> None:
    """``set_dotted(cfg, "train.steps", 100)``."""
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise ConfigError(f"unknown config key {key!r}")
        node = node[p]
    # only the free-form maps (train.content, data.blur) take new keys
    if parts[-1] not in node and ".".join(parts[:-1]) not in _FREE_FORM:
        raise ConfigError(f"unknown config key {key!r}")
    if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
        raise ConfigError(f"config key {key!r} is a section: set its keys ({key}.NAME=VALUE) or a mapping")
    node[parts[-1]] = value


def load_config(path: str | None = None, overrides: dict | None = None) -> dict:
    """Defaults, merged with the YAML at ``path``, then dotted ``overrides`` (None values ignored)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path!r} not found")
        try:
            with open(path) as f:
                loaded = load_yaml(f) or {}
        except yaml.YAMLError as e:
            from tfdeblur.errors import one_line

            raise ConfigError(f"config file {path!r} is not valid YAML: {one_line(e)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path!r} must hold a mapping")
        _drop_removed_keys(loaded)
        unknown = _unknown_keys(DEFAULTS, loaded)
        if unknown:
            raise ConfigError(f"config file {path!r}: unknown key(s) {', '.join(unknown)}")
        cfg = merge(cfg, loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(cfg, key, value)
    validate(cfg)
    return cfg


_FREE_FORM = {"data.blur", "data.frames.blur", "data.small_faces.blur", "train.content"}


def _drop_removed_keys(loaded: dict) -> None:
    for key in _REMOVED_KEYS:
        section, name = key.split(".")
        if isinstance(loaded.get(section), dict):
            loaded[section].pop(name, None)


def _unknown_keys(ref: dict, d: dict, prefix="") -> list:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k not in ref:
            out.append(key)
        elif isinstance(v, dict) and isinstance(ref[k], dict) and key not in _FREE_FORM:
            out.extend(_unknown_keys(ref[k], v, key + "."))
    return out


def validate(cfg: dict) -> None:
    """Raise a one-line ConfigError for the first invalid value (checked before any data or model
    is touched, so a typo never surfaces as a late TypeError)."""
    t, d = cfg["train"], cfg["data"]
    if t["gan"] not in GAN_LOSSES:
        raise ConfigError(f"train.gan must be {', '.join(GAN_LOSSES[:-1])} or {GAN_LOSSES[-1]}, got {t['gan']!r}")
    for key in ("steps", "batch_size", "checkpoint_every", "steps_per_epoch", "n_critic", "keep_checkpoints"):
        v = t[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"train.{key} must be a positive integer, got {v!r}")
    if t["epochs"] is not None and (not isinstance(t["epochs"], int) or t["epochs"] < 1):
        raise ConfigError(f"train.epochs must be a positive integer, got {t['epochs']!r}")
    if t["on_nonfinite"] not in ("stop", "skip"):
        raise ConfigError(f"train.on_nonfinite must be 'stop' or 'skip', got {t['on_nonfinite']!r}")
    if not isinstance(t["content"], dict) or not t["content"]:
        raise ConfigError("train.content must map content terms to weights, e.g. {charbonnier: 1.0}")
    for key in ("g_lr", "d_lr", "content_weight", "adv_weight", "gp_weight", "distill_weight"):
        if not isinstance(t[key], (int, float)) or t[key] < 0:
            raise ConfigError(f"train.{key} must be a non-negative number, got {t[key]!r}")
    if not isinstance(t["keep_generators"], bool):
        raise ConfigError(f"train.keep_generators must be true or false, got {t['keep_generators']!r}")
    if not isinstance(t["init_grow"], bool):
        raise ConfigError(f"train.init_grow must be true or false, got {t['init_grow']!r}")
    if t["init_grow"] and not str(t["init_from"] or "").endswith(".keras"):
        raise ConfigError("train.init_grow needs train.init_from to be a generator .keras file")
    if t["distill_from"] is not None and not str(t["distill_from"]).endswith(".keras"):
        raise ConfigError(f"train.distill_from must be a generator .keras file or null, got {t['distill_from']!r}")
    if "identity" in t["content"] and not str(t["identity_model"] or "").endswith(".keras"):
        raise ConfigError("the identity content term needs train.identity_model: a face embedder .keras file "
                          "(scripts/train_face_embedder.py)")
    # the rest would otherwise fail later with a traceback (TypeError / ValueError mid-setup)
    if not _is_int(d["image_size"]) or d["image_size"] < 16:
        raise ConfigError(f"data.image_size must be an integer >= 16, got {d['image_size']!r}")
    for name, v in (("data.train_limit", d["train_limit"]), ("data.val_images", d["val_images"]),
                    ("train.debug_nan_at_step", t["debug_nan_at_step"])):
        if v is not None and (not _is_int(v) or v < 1):
            raise ConfigError(f"{name} must be a positive integer or null, got {v!r}")
    for name, v in (("train.seed", t["seed"]), ("data.split_seed", d["split_seed"])):
        if not _is_int(v):
            raise ConfigError(f"{name} must be an integer, got {v!r}")
    for name, v, hi in (("data.val_fraction", d["val_fraction"], "1)"), ("train.decay_start", t["decay_start"], "1]"),
                        ("train.beta_1", t["beta_1"], "1)"), ("train.beta_2", t["beta_2"], "1)")):
        if not _is_number(v) or v < 0 or v > 1 or (v == 1 and hi == "1)"):
            raise ConfigError(f"{name} must be a number in [0, {hi}, got {v!r}")
    if not _is_number(d["border_fraction"]) or not 0 <= d["border_fraction"] <= 1:
        raise ConfigError(f"data.border_fraction must be a number in [0, 1], got {d['border_fraction']!r}")
    _validate_jpeg_and_frames(d)
    if not isinstance(d["crop"], int) or d["crop"] < 16 or d["crop"] > d["image_size"]:
        raise ConfigError(f"data.crop must be an integer in [16, data.image_size], got {d['crop']!r}")
    _validate_model(cfg["model"])


def _pair(v, lo, hi) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v)
            and lo <= v[0] <= v[1] <= hi)


def _validate_jpeg_and_frames(d: dict) -> None:
    j, f = d["jpeg"], d["frames"]
    if not _is_number(j["prob"]) or not 0 <= j["prob"] <= 1:
        raise ConfigError(f"data.jpeg.prob must be a number in [0, 1], got {j['prob']!r}")
    if not _pair(j["quality"], 1, 100):
        raise ConfigError(f"data.jpeg.quality must be [min, max] within 1-100, got {j['quality']!r}")
    if not _is_number(f["fraction"]) or not 0 <= f["fraction"] < 1:
        raise ConfigError(f"data.frames.fraction must be a number in [0, 1), got {f['fraction']!r}")
    for key, least in (("count", 1), ("size", 32), ("max_faces", 1)):
        if not _is_int(f[key]) or f[key] < least:
            raise ConfigError(f"data.frames.{key} must be an integer >= {least}, got {f[key]!r}")
    if not _pair(f["face_heights"], 8, f["size"]):
        raise ConfigError(f"data.frames.face_heights must be [min, max] within 8-{f['size']} px, got {f['face_heights']!r}")
    if f["fraction"] > 0 and d["crop"] > f["size"]:
        raise ConfigError(f"data.crop ({d['crop']}) must not exceed data.frames.size ({f['size']})")
    if not _is_int(f["seed"]):
        raise ConfigError(f"data.frames.seed must be an integer, got {f['seed']!r}")
    sf = d["small_faces"]
    if not _is_number(sf["fraction"]) or not 0 <= sf["fraction"] < 1:
        raise ConfigError(f"data.small_faces.fraction must be a number in [0, 1), got {sf['fraction']!r}")
    if not _pair(sf["face_heights"], 4, d["image_size"] if sf["fraction"] else float("inf")):
        raise ConfigError(f"data.small_faces.face_heights must be [min, max] within 4-{d['image_size']} px, "
                          f"got {sf['face_heights']!r}")
    if f["fraction"] + sf["fraction"] >= 1:
        raise ConfigError(f"data.frames.fraction + data.small_faces.fraction must leave room for crops (< 1), "
                          f"got {f['fraction']} + {sf['fraction']}")


# The integer model options and their least value (None: any positive odd number).
_MODEL_INTEGERS = {"generator": {"ngf": 1, "n_blocks": 0, "n_down": 1, "stem_kernel": None},
                   "discriminator": {"ndf": 1, "n_layers": 1}}


def _validate_model(model: dict) -> None:
    if not isinstance(model, dict):
        raise ConfigError(f"model must be a mapping with generator and discriminator, got {model!r}")
    unknown = _unknown_keys(DEFAULTS["model"], model, "model.")
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}")
    for part, ints in _MODEL_INTEGERS.items():
        section = model.get(part) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"model.{part} must be a mapping of options, got {section!r}")
        for key, value in section.items():
            name = f"model.{part}.{key}"
            if key in GENERATOR_CHOICES:
                choices = GENERATOR_CHOICES[key]
                if value not in choices or isinstance(value, bool):
                    raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
            elif ints[key] is None:
                if not _is_int(value) or value < 1 or value % 2 == 0:
                    raise ConfigError(f"{name} must be an odd positive integer, got {value!r}")
            elif not _is_int(value) or value < ints[key]:
                least = "a positive integer" if ints[key] else "an integer >= 0"
                raise ConfigError(f"{name} must be {least}, got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
