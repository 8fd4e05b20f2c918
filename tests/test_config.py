"""Configs (YAML over defaults, dotted overrides) and the train.py command line: every user error
is one line on stderr and exit 2, never a traceback. Nothing here trains a model."""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest

from tfdeblur.cli import train_main, train_parser
from tfdeblur.config import DEFAULTS, ConfigError, load_config, merge, set_dotted, validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------------------------------ library

def test_defaults_are_valid_and_not_mutated():
    before = copy.deepcopy(DEFAULTS)
    cfg = load_config()
    assert cfg == DEFAULTS and cfg is not DEFAULTS
    cfg["train"]["content"]["l1"] = 1.0
    assert DEFAULTS == before


def test_shipped_configs_load():
    cpu = load_config(os.path.join(REPO, "configs", "cpu.yaml"))
    assert cpu["model"]["generator"]["pixel_shuffle"] == 2 and cpu["model"]["generator"]["norm"] == "fused"
    assert cpu["train"]["content"] == {"charbonnier": 1.0, "face": 0.1}  # replaced whole, no vgg19 merged in
    assert cpu["data"]["crop"] == 128 and cpu["train"]["batch_size"] == 8
    paper = load_config(os.path.join(REPO, "configs", "paper.yaml"))
    assert paper["train"]["content"] == {"vgg19": 1.0} and paper["model"]["generator"]["ngf"] == 64
    assert paper["data"]["train_limit"] == 1000 and paper["train"]["content_weight"] == 100.0


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".yaml")) + [f"table1/{g}.yaml" for g in ("gan", "lsgan", "wgan-gp")])
def test_every_config_loads_with_a_valid_blur_and_models(name):
    """What train.py checks only once data is loaded: the blur parameters and the model options."""
    from tfdeblur.models import build_discriminator, build_generator
    from tfdeblur.blur import kernel_params_from_config

    cfg = load_config(os.path.join(REPO, "configs", name))
    params = kernel_params_from_config(cfg["data"]["blur"])
    assert params.length[0] <= params.length[1]
    build_generator(**cfg["model"]["generator"])
    build_discriminator(**cfg["model"]["discriminator"])


def test_distill_config_starts_from_the_previous_fast_generator_and_distils_the_default():
    import keras

    from tfdeblur.models import build_generator
    from tfdeblur.weights import copy_weights_by_name

    cfg = load_config(os.path.join(REPO, "configs", "cpu-fast-distill.yaml"))
    t = cfg["train"]
    assert t["init_from"] == "tfdeblur/pretrained/generator_look.keras"
    assert t["distill_from"] == "tfdeblur/pretrained/generator.keras" and t["distill_weight"] == 1.0
    generator = build_generator(**cfg["model"]["generator"])
    start = keras.models.load_model(os.path.join(REPO, t["init_from"]), compile=False)
    copied, fresh, unused = copy_weights_by_name(start, generator)
    assert fresh == [] and unused == []  # the whole fast generator carries over
    teacher = keras.models.load_model(os.path.join(REPO, t["distill_from"]), compile=False)
    x = np.zeros((1, 64, 64, 3), np.float32)
    assert teacher(x).shape == generator(x).shape


@pytest.mark.parametrize("name", ["cpu-finetune.yaml", "cpu-fast-finetune.yaml"])
def test_finetune_configs_start_from_the_shipped_generator(name):
    """A shipped generator of their width can seed them: its layers and theirs differ by whole
    blocks only. (The ngf-24 configs: the fast model; the default is ngf 32 since stage 5.)"""
    from tfdeblur.inference import SHIPPED_MODELS, load_model
    from tfdeblur.models import build_generator, count_res_blocks
    from tfdeblur.weights import copy_weights_by_name

    cfg = load_config(os.path.join(REPO, "configs", name))
    generator = build_generator(**cfg["model"]["generator"])
    width = generator.get_layer("stem_conv").kernel.shape[-1]
    same_width = [load_model(n) for n in SHIPPED_MODELS]
    same_width = [m for m in same_width if m.get_layer("stem_conv").kernel.shape[-1] == width]
    assert same_width, f"no shipped generator of ngf {width}"
    shipped = same_width[0]
    shipped_blocks = count_res_blocks(shipped)
    n_blocks = cfg["model"]["generator"]["n_blocks"]
    copied, fresh, unused = copy_weights_by_name(shipped, generator)
    # 2 convs + 2 norms per block one model has and the other has not
    assert len(fresh) == 4 * max(0, n_blocks - shipped_blocks)
    assert len(unused) == 4 * max(0, shipped_blocks - n_blocks)
    assert copied == len([layer for layer in generator.layers if layer.weights]) - len(fresh)


def test_merge_is_deep_except_free_form_maps():
    out = merge(DEFAULTS, {"model": {"generator": {"ngf": 8}}, "train": {"content": {"l1": 1.0}},
                           "data": {"blur": {"length": [5, 10]}}})
    assert out["model"]["generator"]["ngf"] == 8 and out["model"]["generator"]["n_blocks"] == 6
    assert out["train"]["content"] == {"l1": 1.0}
    assert out["data"]["blur"] == {"length": [5, 10]}


def test_overrides_and_set_dotted():
    cfg = load_config(None, {"train.steps": 7, "train.gan": None, "train.content.face": 0.5})
    assert cfg["train"]["steps"] == 7 and cfg["train"]["gan"] == "lsgan"  # None: not given
    assert cfg["train"]["content"] == {"vgg19": 1.0, "face": 0.5}  # free-form maps take new keys
    set_dotted(cfg, "data.blur.length", [1, 2])
    assert cfg["data"]["blur"]["length"] == [1, 2]
    for key in ("train.bogus", "model.generator.width", "nosuch.key", "train.steps.deeper"):
        with pytest.raises(ConfigError, match="unknown config key"):
            set_dotted(cfg, key, 1)
    with pytest.raises(ConfigError, match="is a section"):
        set_dotted(cfg, "train", 5)


def test_exponent_floats_without_a_dot_are_numbers(tmp_path, monkeypatch):
    # plain YAML 1.1 reads "1e-4" as a string, and validation would then reject a learning rate
    cfg = load_config(_write(tmp_path, "train:\n  g_lr: 1e-4\n  d_lr: 2E-4\n"))
    assert cfg["train"]["g_lr"] == pytest.approx(1e-4) and cfg["train"]["d_lr"] == pytest.approx(2e-4)
    seen = {}

    def fake_train(cfg, output_dir, **kw):
        seen["cfg"] = cfg
        return {"steps": 1, "best_val_psnr": 0.0}

    monkeypatch.setattr("tfdeblur.training.train", fake_train)
    assert train_main(["--set", "train.g_lr=5e-5", "--set", "train.gan=wgan-gp", "--data-dir", str(tmp_path),
                       "--output-dir", str(tmp_path / "run"), "-q"]) == 0
    assert seen["cfg"]["train"]["g_lr"] == pytest.approx(5e-5) and seen["cfg"]["train"]["gan"] == "wgan-gp"


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "train: {steps: 3\n  gan: [\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, "train: {stepz: 3}\nmodel: {generator: {width: 3}}\nextra: 1\n"))
    for key in ("train.stepz", "model.generator.width", "extra"):
        assert key in str(e.value)
    assert load_config(_write(tmp_path, ""))["train"]["gan"] == "lsgan"  # empty file = defaults


@pytest.mark.parametrize("key,value,match", [
    ("train.gan", "hinge", "train.gan"),
    ("train.steps", 0, "train.steps"),
    ("train.batch_size", 2.5, "train.batch_size"),
    ("train.batch_size", True, "train.batch_size"),
    ("train.epochs", 0, "train.epochs"),
    ("train.on_nonfinite", "ignore", "on_nonfinite"),
    ("train.content", {}, "train.content"),
    ("train.g_lr", -1.0, "train.g_lr"),
    ("train.distill_weight", -0.5, "train.distill_weight"),
    ("train.distill_from", "runs/x/checkpoints", "train.distill_from"),
    ("train.init_grow", "yes", "train.init_grow"),
    ("train.keep_generators", "yes", "train.keep_generators must be true or false"),
    ("train.init_grow", True, "train.init_grow needs train.init_from"),  # init_from is null
    ("train.g_lr", "1e-4", "train.g_lr"),  # YAML 1.1 reads 1e-4 as a string (1.0e-4 is a float)
    ("data.crop", 300, "data.crop"),
    ("data.crop", 8, "data.crop"),
    ("data.image_size", "big", "data.image_size"),
    ("data.val_fraction", 1.0, "data.val_fraction"),
    ("data.train_limit", 0, "data.train_limit"),
    ("train.decay_start", 1.5, "train.decay_start"),
    ("train.beta_1", 1.0, "train.beta_1"),
    ("train.seed", "x", "train.seed"),
    ("train.debug_nan_at_step", 0, "train.debug_nan_at_step"),
    ("model.generator.ngf", "8", "model.generator.ngf must be a positive integer"),
    ("model.generator.n_blocks", -1, "model.generator.n_blocks must be an integer >= 0"),
    ("model.generator.stem_kernel", 4, "model.generator.stem_kernel must be an odd positive integer"),
    ("model.generator.block", "fancy", "model.generator.block must be one of basic, separable, inverted"),
    ("model.generator.pixel_shuffle", 3, "model.generator.pixel_shuffle must be one of 1, 2, 4"),
    ("model.generator.norm", "batch", "model.generator.norm"),
    ("model.discriminator.n_layers", 0, "model.discriminator.n_layers"),
    ("model.discriminator.ndf", 1.5, "model.discriminator.ndf"),
])
def test_validate_rejects(key, value, match):
    cfg = copy.deepcopy(DEFAULTS)
    set_dotted(cfg, key, value)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


# ---------------------------------------------------------------------------------------- CLI

TRAIN_FLAGS = ["--gan", "--config", "--data-dir", "--output-dir", "--steps", "--epochs", "--batch-size",
               "--resume", "--checkpoint-every", "--seed", "--strategy", "--mixed-precision"]


def test_help_lists_the_flags():
    text = train_parser().format_help()
    for flag in TRAIN_FLAGS:
        assert flag in text, flag
    assert "{gan,lsgan,wgan-gp}" in text and "{default,mirrored,multiworker}" in text
    assert "--steps STEPS | --epochs EPOCHS" in text  # mutually exclusive


def test_train_py_help_subprocess():
    r = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True,
                       timeout=180, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0, r.stderr
    for flag in TRAIN_FLAGS:
        assert flag in r.stdout, flag
    assert "Traceback" not in r.stderr


def _run_cli(capsys, argv):
    """train_main in-process: (exit code, stderr lines). argparse errors exit via SystemExit."""
    try:
        code = train_main(argv)
    except SystemExit as e:
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.mark.parametrize("argv,words", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--gan", "hinge"], "invalid choice: 'hinge'"),
    (["--steps", "5", "--epochs", "2"], "not allowed with argument"),
    (["--steps", "many"], "invalid int value"),
    (["--strategy", "tpu"], "invalid choice: 'tpu'"),
    (["--steps", "0"], "train.steps must be a positive integer"),
    (["--batch-size", "-2"], "train.batch_size"),
    (["--set", "train.steps"], "--set expects KEY=VALUE"),
    (["--set", "train.bogus=1"], "unknown config key 'train.bogus'"),
    (["--set", "model.generator.width=3"], "unknown config key 'model.generator.width'"),
    (["--set", "train.gan=[unclosed"], "cannot parse value"),
    (["--set", "train=5"], "is a section"),
    (["--set", "data.image_size=abc"], "data.image_size"),
    (["--set", "data.val_fraction=1.5"], "data.val_fraction"),
])
def test_cli_usage_errors_are_one_line_exit_2(capsys, argv, words, tmp_path):
    code, err = _run_cli(capsys, argv + ["--config", _write(tmp_path, "{}"), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and words in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("yaml_text,words", [
    ("train: {stepz: 3}\n", "unknown key(s) train.stepz"),
    ("train: [1, 2\n", "not valid YAML"),
    ("model:\n  generator: {ngf: 8, width: 3}\n", "model.generator.width"),
    ("train: {gan: hinge}\n", "train.gan must be"),
])
def test_cli_config_file_errors(capsys, tmp_path, yaml_text, words):
    code, err = _run_cli(capsys, ["--config", _write(tmp_path, yaml_text), "--output-dir", str(tmp_path / "o")])
    assert code == 2 and len(err) == 1 and words in err[0], err


def test_cli_missing_config_file(capsys, tmp_path):
    code, err = _run_cli(capsys, ["--config", str(tmp_path / "nope.yaml")])
    assert code == 2 and len(err) == 1 and "nope.yaml" in err[0] and "not found" in err[0]


def test_wider_config_grows_the_shipped_default_into_the_same_function():
    """configs/cpu-wider.yaml starts from the shipped default grown by train.init_grow: the grown
    generator must compute what the shipped one does, or its training would start from scratch."""
    from tfdeblur.inference import load_model
    from tfdeblur.models import build_generator
    from tfdeblur.weights import copy_weights_by_name

    cfg = load_config(os.path.join(REPO, "configs", "cpu-wider.yaml"))
    t = cfg["train"]
    assert t["init_from"] == "tfdeblur/pretrained/generator.keras" and t["init_grow"] is True
    shipped = load_model("default")
    generator = build_generator(**cfg["model"]["generator"])
    assert generator.get_layer("stem_conv").kernel.shape[-1] >= shipped.get_layer("stem_conv").kernel.shape[-1]
    copy_weights_by_name(shipped, generator, grow=True)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(generator(x, training=False), shipped(x, training=False), atol=1e-4)


def test_model_section_replaced_whole_is_checked_key_by_key():
    # a mapping set whole (--set model.generator={...} or an override dict) can carry any key
    cfg = copy.deepcopy(DEFAULTS)
    set_dotted(cfg, "model.generator", {"ngf": 8, "width": 3})
    with pytest.raises(ConfigError, match="unknown config key.*model.generator.width"):
        validate(cfg)
    set_dotted(cfg, "model.generator", {"ngf": 8, "n_blocks": 1})  # partial: the builder's defaults fill in
    validate(cfg)


def test_old_configs_with_removed_keys_still_load(tmp_path):
    # runs written before train.image_every was removed keep their config.yaml resumable
    cfg = load_config(_write(tmp_path, "train:\n  steps: 3\n  image_every: 1\n"))
    assert cfg["train"]["steps"] == 3 and "image_every" not in cfg["train"]


def test_default_config_is_this_checkouts_cpu_config_from_any_folder(tmp_path, monkeypatch):
    from tfdeblur.config import default_config_path

    monkeypatch.chdir(tmp_path)
    assert default_config_path() == os.path.join(REPO, "configs", "cpu.yaml")
    assert load_config(default_config_path())["model"]["generator"]["pixel_shuffle"] == 2


def test_table1_configs_differ_only_in_the_loss():
    """Issue 19: one recipe, three losses (same weights' seed, data, blur, content and budget)."""
    import os

    from tfdeblur.config import load_config

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "table1")
    cfgs = {g: load_config(os.path.join(root, f"{g}.yaml")) for g in ("gan", "lsgan", "wgan-gp")}
    for g, c in cfgs.items():
        assert c["train"]["gan"] == g
    strip = lambda c: {**c, "train": {k: v for k, v in c["train"].items() if k != "gan"}}  # noqa: E731
    assert strip(cfgs["gan"]) == strip(cfgs["lsgan"]) == strip(cfgs["wgan-gp"])
