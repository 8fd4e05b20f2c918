"""Does a second pass through the model help faces under 64 px? A paired probe on a scene set.

    python scripts/probe_small_face_passes.py runs/scenes_val --json results/small_face_passes_val.json

One whole-frame shake in frame pixels blurs a small face relatively more (resized to the training
height, a 40 px face's 25 px shake becomes 70 px), so a second pass might remove what the first
left. The frames are blurred as ``evaluate.py --scenes`` blurs them (seed 0, 10-40 px); every
labelled face is restored at scale with its true box (``deblur_faces(model, frame, faces=boxes)``)
once, and again with faces under ``--small`` px passed through the model a second time. Per face:
found by MTCNN and by BlazeFace (full range) at IoU >= 0.5, and PSNR inside the face box against
the sharp frame. Paired: exact sign test on the discordant faces, Wilcoxon on the PSNR differences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402

BINS = ((0, 32), (32, 64), (64, None))


def _parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", help="a scene folder (scripts/make_scenes.py) or an imglab XML")
    p.add_argument("--model", default="default", help="generator (default: the shipped default)")
    p.add_argument("--small", type=float, default=64.0, help="faces under this height get the second pass")
    p.add_argument("--json", default=None, help="write the measures here")
    return p


def _restore_twice_if_small(small):
    """A stand-in for faces._restore_at_scale that passes faces under ``small`` px twice."""
    from tfdeblur import faces as F
    from tfdeblur.inference import deblur

    def restore(model, rgb, boxes, work_size, batch_size):
        squares = [F._context_square(box, work_size) for box in boxes]
        crops = np.stack([F._resize(F._crop_padded(rgb, x0, y0, side), work_size, work_size) for x0, y0, side in squares])
        out = deblur(model, crops, tile=None, batch_size=batch_size)
        sel = np.array([b[3] - b[1] < small for b in boxes])
        if sel.any():
            out[sel] = deblur(model, out[sel], tile=None, batch_size=batch_size)
        return [(x0, y0, F._resize(o, side, side)) for (x0, y0, side), o in zip(squares, out)]

    return restore


def _psnr(a, b):
    return float(10 * np.log10(255.0 ** 2 / max(1e-10, np.mean((a.astype(float) - b.astype(float)) ** 2))))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from scipy.stats import binomtest, wilcoxon

    from tfdeblur import faces as F
    from tfdeblur.detectors import MTCNNDetector, get
    from tfdeblur.inference import load_model
    from tfdeblur.scene_eval import found_references
    from tfdeblur.scenes import DEFAULT_BLUR_PX, blur_frames, read_scenes

    scenes = read_scenes(args.scenes)
    blurred = blur_frames([s.image for s in scenes], seed=0, blur_px=DEFAULT_BLUR_PX)
    model = load_model(args.model)
    detectors = {"mtcnn": MTCNNDetector(batch_size=8), "blazeface-full": get("blazeface-full")}
    once = F._restore_at_scale
    per_face = {}
    for name, restore in (("one_pass", once), ("two_passes", _restore_twice_if_small(args.small))):
        F._restore_at_scale = restore
        try:
            images = [F.deblur_faces(model, b, faces=list(s.boxes))[0] for b, s in zip(blurred, scenes)]
        finally:
            F._restore_at_scale = once
        r = {k: np.concatenate([found_references([f.box for f in fs], s.boxes, [f.confidence for f in fs])
                                for fs, s in zip(d.detect(images), scenes)]) for k, d in detectors.items()}
        r["psnr"] = np.array([_psnr(im[y1:y2, x1:x2], s.image[y1:y2, x1:x2])
                              for im, s in zip(images, scenes) for x1, y1, x2, y2 in s.boxes.astype(int)])
        per_face[name] = r
    heights = np.concatenate([s.boxes[:, 3] - s.boxes[:, 1] for s in scenes])
    out = {"scenes": args.scenes, "frames": len(scenes), "faces": int(len(heights)), "small": args.small,
           "blur_px": list(DEFAULT_BLUR_PX), "bins": {}}
    for lo, hi in BINS:
        sel = (heights >= lo) & (heights < (np.inf if hi is None else hi))
        label = f"{lo}+" if hi is None else f"{lo}-{hi}"
        row = {"faces": int(sel.sum())}
        for k in detectors:
            a, b = per_face["one_pass"][k][sel], per_face["two_passes"][k][sel]
            gained, lost = int((~a & b).sum()), int((a & ~b).sum())
            row[k] = {"recall_one_pass": float(a.mean()), "recall_two_passes": float(b.mean()), "gained": gained,
                      "lost": lost, "p": float(binomtest(gained, gained + lost).pvalue) if gained + lost else 1.0}
        d = per_face["two_passes"]["psnr"][sel] - per_face["one_pass"]["psnr"][sel]
        row["psnr"] = {"one_pass": float(per_face["one_pass"]["psnr"][sel].mean()),
                       "two_passes": float(per_face["two_passes"]["psnr"][sel].mean()), "mean_diff": float(d.mean()),
                       "p": float(wilcoxon(d).pvalue) if np.any(d) else 1.0}
        out["bins"][label] = row
        print(label, json.dumps(row))
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
