"""Select a training checkpoint by identity beside PSNR (issue 18), without the judge.

A run with ``train.keep_generators: true`` keeps ``generator_<step>.keras`` at every validation.
This scores each on the 200 model-selection images that training validates on (validation
persons, the ``eval`` blur with the fixed model-selection seed): PSNR, and the identity drift, the
mean cosine distance between the frozen face embedder's embeddings (``models/identity``, trained on
the training persons only; never dlib, which judges identity) of the restored and the sharp
image's centre crop, where the aligned face is. The selected generator has the smallest drift among
those within ``--psnr-tolerance`` dB of the best PSNR.

    python scripts/select_by_identity.py runs/lsgan_identity_aligned --data-dir ../shared/data/lfw \
        [--model default] [--json runs/lsgan_identity_aligned/selection.json]
"""
import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402

EMBEDDER = "models/identity/face_embedder.keras"


def score(restored, sharp_embeddings, sharp, embedder):
    """``(mean PSNR in dB, mean identity drift)`` of uint8 restorations against the sharp images."""
    import numpy as np

    import tfdeblur.evaluation as ev
    from tfdeblur import face_embedder as fe

    psnr = ev.image_quality(restored, sharp)[0]
    drift = 1.0 - np.sum(fe.embed_crops(embedder, np.stack(restored)) * sharp_embeddings, axis=1)
    return float(np.mean(psnr)), float(np.mean(drift))


def select(rows, tolerance):
    """The name of the row with the smallest drift among those within ``tolerance`` dB of the best PSNR."""
    best = max(r["psnr"] for r in rows)
    near = [r for r in rows if r["psnr"] >= best - tolerance]
    return min(near, key=lambda r: r["identity_drift"])["name"]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--data-dir", default="../shared/data/lfw")
    p.add_argument("--embedder", default=EMBEDDER)
    p.add_argument("--model", nargs="*", default=[], help="other generators to score beside the run's (e.g. default)")
    p.add_argument("--psnr-tolerance", type=float, default=0.05, help="dB below the best PSNR still eligible")
    p.add_argument("--json", default=None, help="default: RUN_DIR/selection_by_identity.json")
    a = p.parse_args(argv[1:])
    candidates = sorted(glob.glob(os.path.join(a.run_dir, "generator_[0-9]*.keras")))
    if not candidates:
        sys.exit(f"error: no generator_<step>.keras in {a.run_dir!r} (train with train.keep_generators: true)")
    if not os.path.isfile(a.embedder):
        sys.exit(f"error: face embedder {a.embedder!r} not found (scripts/train_face_embedder.py)")

    import keras

    import tfdeblur.evaluation as ev
    from tfdeblur import face_embedder as fe
    from tfdeblur.config import DEFAULTS
    from tfdeblur.data import load_faces, load_split, model_selection_pairs
    from tfdeblur.inference import load_model

    d = DEFAULTS["data"]
    split = load_split(a.data_dir, d["val_fraction"], d["split_seed"])
    sharp, _ = load_faces(split.val, 256, limit=d["val_images"])
    blurred = list(model_selection_pairs(sharp))
    embedder = keras.models.load_model(a.embedder, compile=False)
    sharp_emb = fe.embed_crops(embedder, sharp)
    psnr, drift = score(blurred, sharp_emb, list(sharp), embedder)
    rows = [{"name": "blurred", "psnr": psnr, "identity_drift": drift}]
    print(f"{'blurred':>40}: PSNR {psnr:.3f} dB, identity drift {drift:.4f}")
    for path in a.model + candidates:
        restored, _ = ev.deblur_images(load_model(None if path == "default" else path), blurred, 16, None)
        psnr, drift = score(restored, sharp_emb, list(sharp), embedder)
        rows.append({"name": path, "psnr": psnr, "identity_drift": drift})
        print(f"{os.path.basename(path):>40}: PSNR {psnr:.3f} dB, identity drift {drift:.4f}", flush=True)
    chosen = select([r for r in rows if r["name"] in candidates], a.psnr_tolerance)
    print(f"selected: {chosen}")
    out = a.json or os.path.join(a.run_dir, "selection_by_identity.json")
    write_json(out, {"images": len(sharp), "embedder": a.embedder, "psnr_tolerance": a.psnr_tolerance,
                   "rows": rows, "selected": chosen}, indent=1)


if __name__ == "__main__":
    main(sys.argv)
