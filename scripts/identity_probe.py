"""Measure whether restoration keeps identity: dlib verification on LFW validation persons.

    python scripts/identity_probe.py --data-dir ../shared/data/lfw --genuine 400 \
        --output results/identity_val

Images: the persons that training's default split puts in validation (the same images
``evaluate.py --data-dir ... --split val`` uses), blurred with the "eval" preset (``--seed``),
restored with the shipped model (or ``--model``). Pairs: ``--genuine`` genuine pairs (person-
balanced) and as many impostors, from :func:`tfdeblur.identity.make_pairs`. Only the images that
some pair uses are restored and embedded. Writes metrics.json (``identity`` as in evaluate's
metrics.json, plus ``setup`` and ``timing``), report.md and one ROC figure per protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402


def _parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/lfw")
    p.add_argument("--split", default="val", choices=("val", "train", "all"))
    p.add_argument("--genuine", type=int, default=400, help="genuine pairs (as many impostors)")
    p.add_argument("--seed", type=int, default=0, help="blur and pair seed")
    p.add_argument("--model", default=None, help="generator (default: the shipped one)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--output", default="results/identity_val")
    p.add_argument("--save-embeddings", default=None, help="also save embeddings, pairs, labels (.npz)")
    p.add_argument("--from-embeddings", default=None, help="recompute the outputs from a --save-embeddings file")
    return p


def _stage(timing, name, t0):
    timing[name] = round(time.perf_counter() - t0, 2)
    print(f"{name}: {timing[name]:.1f} s", flush=True)


def _load(data_dir, split):
    """The images ``evaluate.py --data-dir DIR --split SPLIT`` evaluates, in its order (see
    ``tfdeblur.evaluation.load_data_dir``), without blurring them all."""
    from tfdeblur.config import DEFAULTS
    from tfdeblur.data import load_faces, split_by_person
    from tfdeblur.imageio import find_images

    found = find_images(data_dir)
    if split != "all":
        train, val = split_by_person([p for p, _ in found], DEFAULTS["data"]["val_fraction"], DEFAULTS["data"]["split_seed"])
        keep = set(val if split == "val" else train)
        found = [(p, r) for p, r in found if p in keep]
    sharp, kept = load_faces([p for p, _ in found], size=256)
    rel = dict(found)
    return [os.path.splitext(rel[p])[0] for p in kept], list(sharp)


def _blur(sharp_all, used, seed):
    """Eval-preset blur of the used images, each with the kernel evaluation gives it (kernel i
    depends only on (seed, i), and the eval preset adds no noise), so the images match
    ``evaluation.synthesize_blur`` on the whole split."""
    from tfdeblur import blur, data

    kernels = blur.indexed_bank("eval", len(sharp_all), seed=seed)[used]
    return list(data.make_eval_pairs(np.stack([sharp_all[i] for i in used]), kernels, noise_sigma=0.0, seed=seed))


def _measure(args, rec, timing):
    """Load, blur, restore, box and embed: (embeddings, labels, pairs, setup)."""
    from tfdeblur import identity, recognizers
    from tfdeblur.evaluation import deblur_images, load_models

    t = time.perf_counter()
    names, sharp_all = _load(args.data_dir, args.split)
    labels = identity.labels_from_paths([os.path.join(args.data_dir, n) for n in names])
    pairs = identity.make_pairs(labels, max_genuine=args.genuine, seed=args.seed)
    used = np.unique(pairs)  # work on the images some pair uses, re-indexed
    remap = np.full(len(labels), -1, np.int64)
    remap[used] = np.arange(used.size)
    pairs, labels = remap[pairs], [labels[i] for i in used]
    sharp = [sharp_all[i] for i in used]
    blurred = _blur(sharp_all, used, args.seed)
    _stage(timing, "load_blur_pairs_s", t)

    t = time.perf_counter()
    model = next(iter(load_models([args.model]).values()))
    restored, _ = deblur_images(model, blurred, args.batch_size)
    sharp_restored, _ = deblur_images(model, sharp, args.batch_size)
    _stage(timing, "restore_s", t)

    t = time.perf_counter()
    boxes = recognizers.sharp_face_boxes(sharp)
    _stage(timing, "mtcnn_sharp_boxes_s", t)

    t = time.perf_counter()
    conditions = {"sharp": sharp, "blurred": blurred, "restored": restored, "sharp_restored": sharp_restored}
    emb = identity.embed_conditions(rec, conditions, boxes, pairs)
    _stage(timing, "embed_s", t)
    timing["embed_s_per_image"] = round(timing["embed_s"] / (len(conditions) * used.size), 4)
    setup = {
        "data_dir": args.data_dir, "split": args.split, "blur": {"preset": "eval", "seed": args.seed},
        "model": args.model or "shipped", "threshold": rec.threshold, "pair_seed": args.seed,
        "images_in_split": len(names), "images_in_pairs": int(used.size),
        "persons_in_pairs": len(set(labels)),
        "sharp_without_mtcnn_face": int(sum(b is None for b in boxes)),
        "cpu_count": os.cpu_count(),
    }
    return emb, labels, pairs, setup


def _write(output, emb, labels, pairs, rec_name, threshold, setup, timing):
    from tfdeblur import identity

    metrics = identity.identity_metrics(emb, labels, pairs, threshold, rec_name)
    figures = identity.roc_figure(identity.identity_distances(emb, labels, pairs), output)
    write_json(os.path.join(output, "metrics.json"), {"identity": metrics, "setup": setup, "timing": timing}, indent=2)
    lines = identity.report_lines(metrics) + ["", f"Setup: {json.dumps(setup)}", f"Timing: {json.dumps(timing)}", ""]
    lines += [f"![ROC]({os.path.basename(p)})" for p in figures]
    with open(os.path.join(output, "report.md"), "w") as f:
        f.write("# Identity on validation persons\n\n" + "\n".join(lines) + "\n")
    print("\n".join(identity.report_lines(metrics)))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from tfdeblur import recognizers

    os.makedirs(args.output, exist_ok=True)
    if args.from_embeddings:  # recompute metrics, figures and report; keep setup and timing
        saved = np.load(args.from_embeddings)
        emb = {c: saved[c] for c in saved.files if c not in ("pairs", "labels")}
        with open(os.path.join(args.output, "metrics.json")) as f:
            old = json.load(f)
        _write(args.output, emb, [str(x) for x in saved["labels"]], saved["pairs"], old["identity"]["recognizer"],
               old["setup"]["threshold"], old["setup"], old["timing"])
        return 0
    timing, t_all = {}, time.perf_counter()
    try:
        rec = recognizers.get_recognizer("dlib")
    except recognizers.RecognizerUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    emb, labels, pairs, setup = _measure(args, rec, timing)
    if args.save_embeddings:
        np.savez(args.save_embeddings, pairs=pairs, labels=np.asarray(labels), **emb)
    timing["total_s"] = round(time.perf_counter() - t_all, 2)
    _write(args.output, emb, labels, pairs, rec.name, rec.threshold, setup, timing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
