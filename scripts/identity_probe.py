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


def _parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/lfw")
    p.add_argument("--split", default="val", choices=("val", "train", "all"))
    p.add_argument("--genuine", type=int, default=400, help="genuine pairs (as many impostors)")
    p.add_argument("--seed", type=int, default=0, help="blur and pair seed")
    p.add_argument("--model", default=None, help="generator (default: the shipped one)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--output", default="results/identity_val")
    return p


def _stage(timing, name, t0):
    timing[name] = round(time.perf_counter() - t0, 2)
    print(f"{name}: {timing[name]:.1f} s", flush=True)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from tfdeblur import identity, recognizers
    from tfdeblur.evaluation import deblur_images, load_data_dir, load_models

    timing, t_all = {}, time.perf_counter()
    try:
        rec = recognizers.get_recognizer("dlib")
    except recognizers.RecognizerUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    t = time.perf_counter()
    data = load_data_dir(args.data_dir, seed=args.seed, split=args.split)  # eval-preset blur, image-indexed kernels
    labels = identity.labels_from_paths([os.path.join(args.data_dir, n) for n in data.names])
    pairs = identity.make_pairs(labels, max_genuine=args.genuine, seed=args.seed)
    used = np.unique(pairs)  # work on the images some pair uses, re-indexed
    remap = np.full(len(labels), -1, np.int64)
    remap[used] = np.arange(used.size)
    pairs, labels = remap[pairs], [labels[i] for i in used]
    sharp, blurred = [data.sharp[i] for i in used], [data.blurred[i] for i in used]
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

    metrics = identity.identity_metrics(emb, labels, pairs, rec.threshold, rec.name)
    os.makedirs(args.output, exist_ok=True)
    figures = identity.roc_figure(identity.identity_distances(emb, labels, pairs), args.output)
    timing["total_s"] = round(time.perf_counter() - t_all, 2)
    setup = {
        "data_dir": args.data_dir, "split": args.split, "blur": {"preset": "eval", "seed": args.seed},
        "model": args.model or "shipped", "threshold": rec.threshold, "pair_seed": args.seed,
        "images_in_split": len(data.names), "images_in_pairs": int(used.size),
        "persons_in_pairs": len(set(labels)),
        "sharp_without_mtcnn_face": int(sum(b is None for b in boxes)),
        "cpu_count": os.cpu_count(),
    }
    out = {"identity": metrics, "setup": setup, "timing": timing}
    with open(os.path.join(args.output, "metrics.json"), "w") as f:
        json.dump(out, f, indent=2)
    lines = identity.report_lines(metrics) + ["", f"Setup: {json.dumps(setup)}", f"Timing: {json.dumps(timing)}"]
    lines += [f"![ROC]({os.path.basename(p)})" for p in figures]
    with open(os.path.join(args.output, "report.md"), "w") as f:
        f.write("# Identity on validation persons\n\n" + "\n".join(lines) + "\n")
    print("\n".join(identity.report_lines(metrics)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
