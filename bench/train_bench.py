"""The ``train`` section: GAN training-step img/s for each loss, float32 and mixed_bfloat16,
with the models training builds (:func:`tfdeblur.training.build_models`)."""

from __future__ import annotations

import gc
import os

from bench.common import BF16_NOTE, CPU_CONFIG, REPO, cpu_scope, gen_desc, gmac, load_cfg, measure, random_images

_CONTENT_CACHE = {}


def _content_loss(terms: dict):
    """The configured content loss; VGG19 without its weights (offline) -> Charbonnier, noted."""
    from tfdeblur.losses import ContentLossUnavailable, build_content_loss

    key = tuple(sorted(terms.items()))
    if key not in _CONTENT_CACHE:
        note = ""
        try:
            loss = build_content_loss(terms)
        except ContentLossUnavailable:
            fallback = {k: v for k, v in terms.items() if k != "vgg19"} or {"charbonnier": 1.0}
            loss = build_content_loss(fallback)
            note = "VGG19 weights unavailable: content loss " + "+".join(f"{k}{v:g}" for k, v in fallback.items())
        _CONTENT_CACHE[key] = (loss, note)
    return _CONTENT_CACHE[key]


def build_gan(kind, cfg, gen_overrides=None, mixed_precision=False):
    """The GAN training builds for config ``cfg`` (:func:`tfdeblur.training.build_models`) with
    loss ``kind`` and generator options ``gen_overrides``, seeded with 0, compiled and ready to
    step: ``(gan, generator config, content-loss note)``."""
    import keras

    from tfdeblur.training import build_models

    keras.utils.set_random_seed(0)
    gen_cfg = {**cfg["model"]["generator"], **(gen_overrides or {})}
    content, note = _content_loss(cfg["train"]["content"])
    cfg = {**cfg, "model": {**cfg["model"], "generator": gen_cfg}, "train": {**cfg["train"], "gan": kind, "seed": 0}}
    gan = build_models(cfg, "mixed_float16" if mixed_precision else None, content_loss=content)
    return gan, gen_cfg, note


def train_gmac(gan, kind, size, n_critic):
    """Estimated MACs per training image: G step 3G + 2D (backward ~ 2x forward; D's weight
    gradients are not needed), each D step G + 6D (two D passes), the gradient penalty ~ 4D.
    Content-loss networks (MTCNN, VGG19) are not counted."""
    g = gmac(gan.generator, size)
    d = gmac(gan.discriminator, size)
    d_step = g + 6 * d + (4 * d if kind == "wgan-gp" else 0)
    steps = n_critic if kind == "wgan-gp" else 1
    return steps * d_step + 3 * g + 2 * d


def train_desc(cfg, gen_cfg, content_note=""):
    t = cfg["train"]
    content = content_note.split(": content loss ")[-1] if content_note else "+".join(
        f"{k}{v:g}" for k, v in t["content"].items())
    return f"G {gen_desc(gen_cfg)}, D ndf{cfg['model']['discriminator']['ndf']}, {content}"


def time_train_step(rec, section, kind, cfg, size, batch, s, what=None, gen_overrides=None, xla=False,
                    device="CPU", mixed_precision=False, note="", **extra):
    import tensorflow as tf

    gan, gen_cfg, content_note = build_gan(kind, cfg, gen_overrides, mixed_precision=mixed_precision)
    config = train_desc(cfg, gen_cfg, content_note)
    n_critic = int(cfg["train"]["n_critic"])
    if kind == "wgan-gp":
        config += f", n_critic {n_critic}"
    step = tf.function(gan.train_step, jit_compile=xla)
    data = (random_images(batch, size, 1), random_images(batch, size, 2))
    timing = measure(lambda: step(data), batch, s)
    notes = "; ".join(n for n in (note, content_note) if n)
    return rec.add(section, what or f"train step {kind}", config, size, batch, timing,
                   gmac=train_gmac(gan, kind, size, n_critic), note=notes, device=device, **extra)


def section_train(rec, s, sizes, kinds):
    """Each GAN loss at each size in float32, then under ``mixed_bfloat16`` (``train.py
    --mixed-precision bfloat16``: G, D and the content loss's networks built under that policy)."""
    import keras

    cfg = load_cfg(CPU_CONFIG)
    batch = int(cfg["train"]["batch_size"])
    note = "random batch; GMAC/img is the fwd+bwd estimate (see docs)"
    for kind in kinds:
        for size in sizes:
            rows = {}
            for policy in ("float32", "mixed_bfloat16"):
                what = f"train step {kind}" + (" bfloat16" if policy != "float32" else "")
                _CONTENT_CACHE.clear()  # the content loss's networks follow the policy, as in training
                keras.mixed_precision.set_global_policy(policy)
                try:
                    with cpu_scope():
                        rows[policy] = time_train_step(
                            rec, "train", kind, cfg, size, batch, s, what=what, precision=policy,
                            note=note + ("; " + BF16_NOTE if policy != "float32" else ""))
                except Exception as e:  # noqa: BLE001
                    rows[policy] = rec.fail("train", what, "configs/cpu.yaml", size, batch, e, precision=policy)
                finally:
                    keras.mixed_precision.set_global_policy("float32")
                    _CONTENT_CACHE.clear()
                gc.collect()
            rec.speedup("train", f"mixed_bfloat16 vs float32, train step {kind}, {size}x{size}",
                        rows["float32"], rows["mixed_bfloat16"])
    return {"config": os.path.relpath(CPU_CONFIG, REPO), "batch": batch, "sizes": list(sizes), "losses": list(kinds),
            "precisions": ["float32", "mixed_bfloat16"]}
