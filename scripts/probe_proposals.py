"""Which looks find the faces that blur hides? Proposal recall per face size on a scene set.

    python scripts/probe_proposals.py runs/scenes_dev --json runs/proposals_dev.json

The frames are blurred as ``evaluate.py --scenes`` blurs them (seed 0, 10-40 px). Each look is
relaxed MTCNN (``faces.proposal_detector``) on one view of the blurred frame: the frame itself,
the frame restored whole at 1x by the default, and the frame upscaled by a factor and restored
whole (``faces.restored_look``) by the look generator (``fast``) or by the default. Sets of looks
are merged as ``deblur_faces`` merges them (NMS, faces under 16 px dropped); a labelled face is
proposed when a proposal overlaps it at IoU >= 0.5. Reports recall per face-height bin, proposals
per frame and the seconds each look costs per frame (shared cores: compare within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BINS = ((0, 32), (32, 64), (64, 128), (128, None))
LOOKS = {  # name: (generator, upscale factor); factor None = the frame at 1x
    "blurred": (None, None),
    "restored_1x": ("default", 1.0),
    "fast_2x": ("fast", 2.0),
    "default_2x": ("default", 2.0),
    "fast_3x": ("fast", 3.0),
}
SETS = {
    "blurred": ["blurred"],
    "three looks (today)": ["blurred", "restored_1x", "fast_2x"],
    "today + default 2x": ["blurred", "restored_1x", "fast_2x", "default_2x"],
    "today + fast 3x": ["blurred", "restored_1x", "fast_2x", "fast_3x"],
    "all five": list(LOOKS),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", help="a scene folder (scripts/make_scenes.py) or an imglab XML")
    p.add_argument("--limit", type=int, default=None, help="the first N frames")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    from tfdeblur import faces as F
    from tfdeblur.inference import deblur, load_model
    from tfdeblur.scene_eval import found_references
    from tfdeblur.scenes import DEFAULT_BLUR_PX, blur_frames, read_scenes

    scenes = read_scenes(a.scenes, limit=a.limit)
    blurred = blur_frames([s.image for s in scenes], seed=0, blur_px=DEFAULT_BLUR_PX)
    models = {"default": load_model(None), "fast": F._proposal_model(None, "fast")}
    detector = F.proposal_detector()
    heights = np.concatenate([[b[3] - b[1] for b in s.boxes] for s in scenes])
    seconds = {k: 0.0 for k in LOOKS}
    found = {k: [] for k in SETS}
    counts = {k: 0 for k in SETS}
    for i, (frame, scene) in enumerate(zip(blurred, scenes)):
        looks = {}
        for name, (gen, factor) in LOOKS.items():
            t = time.perf_counter()
            if factor is None:
                faces = detector.detect([frame])[0]
            elif factor == 1.0:
                faces = detector.detect([deblur(models[gen], frame)])[0]
            else:
                look, scale = F.restored_look(models[gen], frame, scale=factor)
                faces = detector.detect([look])[0]
                for f in faces:
                    f.box = np.asarray(f.box, np.float32) / scale
            seconds[name] += time.perf_counter() - t
            looks[name] = list(faces)
        for set_name, members in SETS.items():
            merged = [f for m in members for f in looks[m]]
            merged = F._nms([f for f in merged if min(F._box(f)[2] - F._box(f)[0], F._box(f)[3] - F._box(f)[1]) >= F.MIN_FACE])
            counts[set_name] += len(merged)
            found[set_name].append(found_references([F._box(f) for f in merged], scene.boxes, [f.confidence for f in merged]))
        print(f"\rframe {i + 1}/{len(scenes)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    out = {"frames": len(scenes), "faces": int(len(heights)), "blur_px": list(DEFAULT_BLUR_PX),
           "seconds_per_frame": {k: v / len(scenes) for k, v in seconds.items()}, "sets": {}}
    for set_name, per_frame in found.items():
        hit = np.concatenate(per_frame)
        row = {"proposals_per_frame": counts[set_name] / len(scenes), "recall": {}}
        for lo, hi in BINS:
            sel = (heights >= lo) & (heights < (hi or np.inf))
            label = f"{lo}-{hi}" if hi else f"{lo}+"
            row["recall"][label] = {"faces": int(sel.sum()), "recall": float(hit[sel].mean()) if sel.any() else None}
        out["sets"][set_name] = row
        cells = "  ".join(f"{k} {v['recall']:.3f} ({v['faces']})" for k, v in row["recall"].items() if v["recall"] is not None)
        print(f"{set_name:>22}: {cells}  proposals/frame {row['proposals_per_frame']:.1f}")
    print("seconds per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in out["seconds_per_frame"].items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
