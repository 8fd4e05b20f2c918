"""Paired, face by face: does a change of the proposals help ``deblur_faces`` on a scene set?

    python scripts/compare_proposals.py runs/scenes_val --json results/proposals_paired_val.json
    python scripts/compare_proposals.py runs/scenes_val --compare fast-mode --json results/fast_mode_paired_val.json

The frames are blurred as ``evaluate.py --scenes`` blurs them (seed 0, 10-40 px) and restored by
``deblur_faces`` with the shipped default twice: with MTCNN's looks alone (``blazeface=False``,
the proposals before 2026-12-07) and with tiled BlazeFace added; with ``--compare fast-mode``, in
the full mode and in the fast mode; with ``--compare mtcnn-blurred`` (``-fast``: in the fast mode),
with MTCNN looking at the blurred frame too (before 2026-12-07, second session) and at the
restorations only (today's); with ``--compare look-model --look-model PATH``, with the shipped 2x
look generator and with the generator at PATH. Each labelled face is
then found or not (IoU >= 0.5) by MTCNN and by tiled BlazeFace in both outputs; per face-size bin
the script reports both recalls and McNemar's exact test on the faces only one of them found.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402

COMPARISONS = {  # name: (before, after), each deblur_faces keyword arguments
    "blazeface": ({"blazeface": False}, {"blazeface": True}),
    "fast-mode": ({}, {"proposal_model": False}),  # the full mode against the fast mode
    # MTCNN on the blurred frame too (before 2026-12-07) against restorations only (today)
    "mtcnn-blurred": ({"mtcnn_on_blurred": True}, {}),
    "mtcnn-blurred-fast": ({"proposal_model": False, "mtcnn_on_blurred": True}, {"proposal_model": False}),
    "look-model": ({}, {"proposal_model": "--look-model"}),  # the shipped 2x look generator against another
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", help="a scene folder (scripts/make_scenes.py) or an imglab XML")
    p.add_argument("--limit", type=int, default=None, help="the first N frames")
    p.add_argument("--compare", choices=sorted(COMPARISONS), default="blazeface",
                   help="blazeface: MTCNN's looks alone -> with tiled BlazeFace (default); fast-mode: full -> fast "
                        "mode; mtcnn-blurred(-fast): MTCNN on the blurred frame too -> on the restorations only "
                        "(full or fast mode); look-model: the shipped 2x look generator -> --look-model")
    p.add_argument("--look-model", default=None, help="with --compare look-model: the generator .keras to compare")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if (a.compare == "look-model") != (a.look_model is not None):
        p.error("--compare look-model and --look-model go together")
    variants = {name: dict(kwargs) for name, kwargs in zip(("before", "after"), COMPARISONS[a.compare])}

    from keras.utils import Progbar

    from tfdeblur.detectors import MTCNNDetector, get
    from tfdeblur.faces import deblur_faces
    from tfdeblur.inference import load_model
    from tfdeblur.scene_eval import SIZE_BINS, _detect_found, bin_label, paired_per_size
    from tfdeblur.scenes import DEFAULT_BLUR_PX, blur_frames, read_scenes

    scenes = read_scenes(a.scenes, limit=a.limit)
    blurred = blur_frames([s.image for s in scenes], seed=0, blur_px=DEFAULT_BLUR_PX)
    model = load_model(None)
    for kwargs in variants.values():  # "--look-model": the generator it names
        if kwargs.get("proposal_model") == "--look-model":
            kwargs["proposal_model"] = load_model(a.look_model)
    judges = {"mtcnn": MTCNNDetector(batch_size=8), "blazeface-tiled": get("blazeface-tiled")}
    found = {j: {v: [] for v in variants} for j in judges}
    bar = Progbar(len(scenes) * len(variants), unit_name="frame")
    for frame, scene in zip(blurred, scenes):
        for name, kwargs in variants.items():
            out = deblur_faces(model, frame, **kwargs)[0]
            for j, det in judges.items():
                found[j][name] += _detect_found(det, [out], [scene.boxes])
            bar.add(1)
    heights = np.concatenate([s.boxes[:, 3] - s.boxes[:, 1] for s in scenes])
    out = {"frames": len(scenes), "faces": int(len(heights)), "blur_px": list(DEFAULT_BLUR_PX),
           "compare": a.compare, "look_model": a.look_model,
           "variants": {k: {n: str(v) for n, v in kw.items()} for k, kw in variants.items()},
           "per_size": {}}
    paired = {j: paired_per_size(*(found[j][v] for v in variants), [s.boxes[:, 3] - s.boxes[:, 1] for s in scenes])
              for j in judges}
    for lo, hi in SIZE_BINS:
        sel = (heights >= lo) & (heights < (hi if hi is not None else np.inf))
        label = bin_label(lo, hi)
        row = {"faces": int(sel.sum())}
        for j in judges:
            before, after = (np.concatenate(found[j][v])[sel] for v in variants)
            test = paired[j][label] if sel.any() else None
            row[j] = {"recall": {v: float(x.mean()) if sel.any() else None for v, x in zip(variants, (before, after))},
                      "only_before": test and test["only_a"], "only_after": test and test["only_b"],
                      "p": test and test["p"]}
            if sel.any():
                print(f"{label:>8} {j:>15}: {before.mean():.3f} -> {after.mean():.3f} "
                      f"(only before {test['only_a']}, only after {test['only_b']}, p = {test['p']:.3g})")
        out["per_size"][label] = row
    if a.json:
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
