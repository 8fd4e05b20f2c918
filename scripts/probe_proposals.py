"""Which looks find the faces that blur hides? Proposal recall per face size on a scene set.

    python scripts/probe_proposals.py runs/scenes_dev60 --cache runs/looks_dev60.pkl --json runs/proposals_dev60.json

The frames are blurred as ``evaluate.py --scenes`` blurs them (seed 0, 10-40 px). A *look* is one
detector on one view of the blurred frame: relaxed MTCNN (``faces.proposal_detector``) or tiled
BlazeFace (``faces.blazeface_proposal_detector``, detections from score 0.1 kept) on the frame
itself, on the frame restored whole at 1x by the default, or on the 2x look of the look generator
(``faces.restored_look``). Sets of looks are merged as ``deblur_faces`` merges them (NMS over each
detector's own boxes, BlazeFace's then mapped to MTCNN's convention, faces under 16 px dropped); a
labelled face is proposed when a proposal overlaps it at IoU >= 0.5. Reports recall per
face-height bin, proposals per frame and the seconds each look costs per frame (compare within one
run). ``--cache`` keeps the raw detections, so new sets cost no detection.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402

BINS = ((0, 32), (32, 64), (64, 128), (128, None))
VIEWS = ("blurred", "restored_1x", "fast_2x")
DETECTORS = ("mtcnn", "blazeface")
SETS = {
    "mtcnn blurred": ["mtcnn/blurred"],
    "mtcnn three views (before)": ["mtcnn/blurred", "mtcnn/restored_1x", "mtcnn/fast_2x"],
    "blazeface blurred, score 0.5": ["blazeface/blurred@0.5"],
    "blazeface blurred, score 0.3": ["blazeface/blurred@0.3"],
    "blazeface blurred, score 0.2": ["blazeface/blurred@0.2"],
    "blazeface blurred, score 0.1": ["blazeface/blurred@0.1"],
    "blazeface 2x, score 0.3": ["blazeface/fast_2x@0.3"],
    "mtcnn blurred + blazeface blurred 0.3 (deblur_faces fast, before)": ["mtcnn/blurred", "blazeface/blurred@0.3"],
    "mtcnn blurred + blazeface blurred 0.2": ["mtcnn/blurred", "blazeface/blurred@0.2"],
    "mtcnn blurred, 1x + blazeface blurred 0.3": ["mtcnn/blurred", "mtcnn/restored_1x", "blazeface/blurred@0.3"],
    "mtcnn, blazeface blurred, 1x 0.3 (deblur_frame fast, before)": ["mtcnn/blurred", "mtcnn/restored_1x",
                                                                     "blazeface/blurred@0.3", "blazeface/restored_1x@0.3"],
    "mtcnn 1x + blazeface blurred, 1x 0.3 (deblur_frame fast, today)": ["mtcnn/restored_1x", "blazeface/blurred@0.3",
                                                                        "blazeface/restored_1x@0.3"],
    "mtcnn three + blazeface blurred 0.3": ["mtcnn/blurred", "mtcnn/restored_1x", "mtcnn/fast_2x", "blazeface/blurred@0.3"],
    "mtcnn three + blazeface blurred 0.2": ["mtcnn/blurred", "mtcnn/restored_1x", "mtcnn/fast_2x", "blazeface/blurred@0.2"],
    "mtcnn three + blazeface blurred, 1x 0.3 (until 2026-12-07)": [
        "mtcnn/blurred", "mtcnn/restored_1x", "mtcnn/fast_2x", "blazeface/blurred@0.3", "blazeface/restored_1x@0.3"],
    "mtcnn 1x, 2x + blazeface blurred, 1x 0.3 (today)": ["mtcnn/restored_1x", "mtcnn/fast_2x",
                                                         "blazeface/blurred@0.3", "blazeface/restored_1x@0.3"],
    "blazeface blurred 0.3 (today's fast mode)": ["blazeface/blurred@0.3"],
    "mtcnn three + blazeface blurred, 1x, 2x 0.3": ["mtcnn/blurred", "mtcnn/restored_1x", "mtcnn/fast_2x",
                                                    "blazeface/blurred@0.3", "blazeface/restored_1x@0.3",
                                                    "blazeface/fast_2x@0.3"],
    "all, blazeface 0.2": ["mtcnn/blurred", "mtcnn/restored_1x", "mtcnn/fast_2x", "blazeface/blurred@0.2",
                           "blazeface/restored_1x@0.2", "blazeface/fast_2x@0.2"],
}


def detect_looks(scenes, blurred, look_path=None):
    """Raw detections ``[{look: [(box, score, detector)]}]`` per frame and seconds per look."""
    from tfdeblur import faces as F
    from tfdeblur.inference import deblur, load_model

    default = load_model(None)
    look_model = load_model(look_path) if look_path else F._proposal_model(None, "fast")
    detectors = {"mtcnn": F.proposal_detector(), "blazeface": F.blazeface_proposal_detector(min_score=0.1)}
    seconds: dict = {}
    frames = []
    for i, frame in enumerate(blurred):
        views = {}
        t = time.perf_counter()
        views["blurred"] = (frame, 1.0)
        views["restored_1x"] = (deblur(default, frame), 1.0)
        seconds["restore_1x"] = seconds.get("restore_1x", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        views["fast_2x"] = F.restored_look(look_model, frame)
        seconds["restore_fast_2x"] = seconds.get("restore_fast_2x", 0.0) + time.perf_counter() - t
        looks = {}
        for det_name, det in detectors.items():
            for view in VIEWS:
                image, scale = views[view]
                t = time.perf_counter()
                found = det.detect([image])[0]
                key = f"{det_name}/{view}"
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t
                looks[key] = [(np.asarray(f.box, np.float64) / scale, float(f.confidence)) for f in found]
        frames.append(looks)
        print(f"\rframe {i + 1}/{len(blurred)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return frames, {k: v / len(blurred) for k, v in seconds.items()}


def merged(looks, members, min_face):
    """The looks' detections merged as ``faces.propose_faces`` merges them (``faces.merge_proposals``)."""
    from tfdeblur import faces as F
    from tfdeblur.detectors import Face

    boxes = []
    for m in members:  # "look@0.7": that look's detections scoring at least 0.7
        look, _, thr = m.partition("@")
        maker = F._BlazeFaceProposal if look.startswith("blazeface/") else Face
        boxes += [maker(b, s) for b, s in looks[look] if s >= float(thr or 0)]
    return F.merge_proposals(boxes, min_face)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", help="a scene folder (scripts/make_scenes.py) or an imglab XML")
    p.add_argument("--limit", type=int, default=None, help="the first N frames")
    p.add_argument("--cache", default=None, help="pickle of the raw detections (read if present, else written)")
    p.add_argument("--look-model", default=None,
                   help="generator .keras for the 2x look (default: the shipped look generator, faces.LOOK_MODEL)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    from tfdeblur import faces as F
    from tfdeblur.scene_eval import found_references
    from tfdeblur.scenes import DEFAULT_BLUR_PX, blur_frames, read_scenes

    scenes = read_scenes(a.scenes, limit=a.limit)
    if a.cache and os.path.exists(a.cache):
        with open(a.cache, "rb") as f:
            frames, seconds = pickle.load(f)
    else:
        blurred = blur_frames([s.image for s in scenes], seed=0, blur_px=DEFAULT_BLUR_PX)
        frames, seconds = detect_looks(scenes, blurred, a.look_model)
        if a.cache:
            with open(a.cache, "wb") as f:
                pickle.dump((frames, seconds), f)
    heights = np.concatenate([[b[3] - b[1] for b in s.boxes] for s in scenes])
    out = {"frames": len(scenes), "faces": int(len(heights)), "blur_px": list(DEFAULT_BLUR_PX),
           "seconds_per_frame": seconds, "sets": {}}
    for set_name, members in SETS.items():
        found, count = [], 0
        for looks, scene in zip(frames, scenes):
            props = merged(looks, members, F.MIN_FACE)
            count += len(props)
            found.append(found_references([F._box(f) for f in props], scene.boxes, [F._score(f) for f in props]))
        hit = np.concatenate(found)
        row = {"looks": members, "proposals_per_frame": count / len(scenes), "recall": {}}
        for lo, hi in BINS:
            sel = (heights >= lo) & (heights < (hi or np.inf))
            label = f"{lo}-{hi}" if hi else f"{lo}+"
            row["recall"][label] = {"faces": int(sel.sum()), "recall": float(hit[sel].mean()) if sel.any() else None}
        out["sets"][set_name] = row
        cells = "  ".join(f"{k} {v['recall']:.3f} ({v['faces']})" for k, v in row["recall"].items() if v["recall"] is not None)
        print(f"{set_name:>42}: {cells}  proposals/frame {row['proposals_per_frame']:.1f}")
    print("seconds per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))
    if a.json:
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
