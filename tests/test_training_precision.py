"""Mixed-precision training (mixed_float16 with loss scaling, mixed_bfloat16 without), on CPU.

Tiny models on 32x32 crops of 64x64 faces from the ``small_lfw`` fixture, as in
tests/test_training.py; shared helpers live in tests/training_helpers.py.
"""
import numpy as np
import pytest

import keras
import tensorflow as tf

from tfdeblur import models as tfmodels
from tfdeblur.training import TrainingError, train
from training_helpers import ckpt_arrays, tiny_cfg


# ------------------------------------------------------------------------------ mixed precision

def test_mixed_precision_trains_on_cpu(small_lfw, tmp_path):
    """mixed_float16 works on CPU (slowly). The content weight is large, as in the paper config
    (100 x VGG feature MSE): at the initial loss scale 2^15 the float16 gradients of the scaled
    loss overflow, which the LossScaleOptimizer must absorb (skip, halve its scale), not the
    trainer's non-finite guard (which would stop the run at step 1)."""
    out = tmp_path / "mp"
    try:
        summary = train(tiny_cfg(small_lfw, steps=2, checkpoint_every=2, content_weight=1e4), str(out),
                        mixed_precision=True, verbose=0)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        d = tfmodels.build_discriminator(ndf=8)
        assert d.get_layer("conv1").compute_dtype == "float16"
        assert d.get_layer("norm1").compute_dtype == "float32" and d.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_psnr"])
    g = keras.models.load_model(str(out / "generator.keras"))  # saved with per-layer policies
    assert g.get_layer("stem_conv").dtype_policy.name == "mixed_float16"
    for layer in g.layers:
        if isinstance(layer, (tfmodels.FusedInstanceNorm, keras.layers.GroupNormalization)):
            assert layer.dtype_policy.name == "float32", layer.name
    y = g(np.zeros((1, 33, 35, 3), np.float32))
    assert y.dtype == tf.float32 and np.isfinite(y.numpy()).all()
    arrays = ckpt_arrays(str(out / "checkpoints" / "ckpt-2"))
    assert float(arrays["g_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"]) < 2.0**15  # overflow absorbed
    assert int(arrays["d_optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == 2  # D trained
    weights = [v for k, v in arrays.items() if "_trainable_variables/" in k]  # G and D, via the optimizers
    assert len(weights) > 20 and all(v.dtype == np.float32 and np.isfinite(v).all() for v in weights)


def test_bfloat16_mixed_precision_trains_and_saves_a_generator_that_loads_as_float32(small_lfw, tmp_path):
    """mixed_bfloat16 (the CPU fast path): no loss scaling (bfloat16 has float32's exponent range),
    the distillation teacher computes in bfloat16 too, variables stay float32, and the saved
    generator keeps its per-layer policies; tfdeblur's loader makes it float32 unless asked."""
    from tfdeblur.inference import load_model

    out = tmp_path / "bf16"
    teacher = tmp_path / "teacher.keras"
    tfmodels.build_generator(ngf=8, n_blocks=1, pixel_shuffle=2, stem_kernel=3).save(teacher)
    cfg = tiny_cfg(small_lfw, steps=2, checkpoint_every=2)
    cfg["train"]["distill_from"] = str(teacher)
    try:
        summary = train(cfg, str(out), mixed_precision="bfloat16", verbose=0)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_psnr"])
    arrays = ckpt_arrays(str(out / "checkpoints" / "ckpt-2"))
    assert not any("dynamic_scale" in k for k in arrays)  # plain Adam, no loss scaling
    weights = {k: v for k, v in arrays.items() if "_trainable_variables/" in k}  # G and D, via the optimizers
    assert len(weights) > 20 and all(v.dtype == np.float32 and np.isfinite(v).all() for v in weights.values())
    saved = keras.models.load_model(str(out / "generator.keras"))
    assert saved.get_layer("stem_conv").dtype_policy.name == "mixed_bfloat16"
    g = load_model(str(out / "generator.keras"))  # precision="float32"
    assert g.get_layer("stem_conv").compute_dtype == "float32"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(g(x).numpy(), load_model(str(out / "generator.keras"), "float32")(x).numpy())
    assert np.abs(g(x).numpy() - saved(x).numpy()).max() < 0.05  # the same weights, other rounding
    with pytest.raises(TrainingError, match="float16 or bfloat16"):
        train(cfg, str(tmp_path / "bad"), mixed_precision="int8", verbose=0)
