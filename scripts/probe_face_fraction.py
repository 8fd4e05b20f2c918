"""At what scale should a small face be restored? A paired probe on a scene set, with true boxes.

    python scripts/probe_face_fraction.py runs/scenes_dev60 --json runs/face_fraction_dev60.json

``deblur_faces`` resizes a face's square context so the face fills ``FACE_FRACTION`` (0.45) of a
256 px crop, its training height. A whole-frame shake then grows with the face: a 40 px face's
30 px shake becomes 86 px at that scale, past the 5-65 px the model was trained on. A smaller
fraction keeps the shake in range at the price of a smaller face. The frames are blurred as
``evaluate.py --scenes`` blurs them (seed 0, 10-40 px); faces under ``--small`` px are restored with
their true boxes at each fraction (larger faces at 0.45). Per face: found by MTCNN and by tiled
BlazeFace at IoU >= 0.5, and PSNR inside the face box against the sharp frame; each fraction is
compared with 0.45 face by face (exact McNemar on the discordant faces, Wilcoxon on the PSNR).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402

BINS = ((0, 32), (32, 64))


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", help="a scene folder (scripts/make_scenes.py) or an imglab XML")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.45, 0.38, 0.32, 0.26])
    p.add_argument("--small", type=float, default=64.0, help="faces under this height get the other fractions")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    from keras.utils import Progbar
    from scipy.stats import wilcoxon

    from tfdeblur import faces as F
    from tfdeblur.detectors import MTCNNDetector, get
    from tfdeblur.evaluation.statistics import mcnemar_test
    from tfdeblur.inference import load_model
    from tfdeblur.scene_eval import _detect_found
    from tfdeblur.scenes import DEFAULT_BLUR_PX, blur_frames, read_scenes

    scenes = read_scenes(a.scenes, limit=a.limit)
    blurred = blur_frames([s.image for s in scenes], seed=0, blur_px=DEFAULT_BLUR_PX)
    model = load_model(None)
    judges = {"mtcnn": MTCNNDetector(batch_size=8), "blazeface-tiled": get("blazeface-tiled")}
    original = F._context_square
    found = {f: {j: [] for j in judges} for f in a.fractions}
    psnr = {f: [] for f in a.fractions}
    heights = []
    bar = Progbar(len(scenes) * len(a.fractions), unit_name="frame")
    try:
        for frame, scene in zip(blurred, scenes):
            boxes = scene.boxes
            heights.append(boxes[:, 3] - boxes[:, 1])
            for frac in a.fractions:
                def square(box, work_size=F.WORK_SIZE, face_fraction=F.FACE_FRACTION, frac=frac):
                    small = box[3] - box[1] < a.small
                    return original(box, work_size, frac if small else face_fraction)

                F._context_square = square
                out = F.deblur_faces(model, frame, faces=boxes)[0]
                for j, det in judges.items():
                    found[frac][j] += _detect_found(det, [out], [boxes])
                for b in boxes.astype(int):
                    face = (slice(max(0, b[1]), b[3]), slice(max(0, b[0]), b[2]))
                    psnr[frac].append(_psnr(out[face], scene.image[face]))
                bar.add(1)
    finally:
        F._context_square = original
    h = np.concatenate(heights)
    base = a.fractions[0]
    out = {"frames": len(scenes), "faces": int(len(h)), "small": a.small, "baseline": base, "per_size": {}}
    for lo, hi in BINS:
        sel = (h >= lo) & (h < hi)
        label = f"{lo}-{hi}"
        rows = {}
        for frac in a.fractions:
            row = {"psnr": float(np.mean(np.asarray(psnr[frac])[sel]))}
            for j in judges:
                flags = np.concatenate(found[frac][j])[sel]
                row[j] = float(flags.mean())
                if frac != base:
                    t = mcnemar_test(np.concatenate(found[base][j])[sel], flags)
                    row[f"{j}_only_baseline"], row[f"{j}_only_this"], row[f"{j}_p"] = t["b"], t["c"], t["p"]
            if frac != base:
                d = np.asarray(psnr[frac])[sel] - np.asarray(psnr[base])[sel]
                row["psnr_diff"], row["psnr_p"] = float(np.mean(d)), float(wilcoxon(d).pvalue)
            rows[str(frac)] = row
            extra = ("" if frac == base else
                     f"  vs {base}: MTCNN {row['mtcnn_only_baseline']}/{row['mtcnn_only_this']} (p {row['mtcnn_p']:.2g}), "
                     f"BlazeFace {row['blazeface-tiled_only_baseline']}/{row['blazeface-tiled_only_this']} "
                     f"(p {row['blazeface-tiled_p']:.2g}), PSNR {row['psnr_diff']:+.2f} dB (p {row['psnr_p']:.2g})")
            print(f"{label:>6} ({int(sel.sum())}) fraction {frac:.2f}: MTCNN {row['mtcnn']:.3f}  "
                  f"BlazeFace {row['blazeface-tiled']:.3f}  PSNR {row['psnr']:.2f}{extra}")
        out["per_size"][label] = {"faces": int(sel.sum()), "fractions": rows}
    if a.json:
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
