"""The ``faces`` section: a 640x480 camera frame with five faces through ``tfdeblur.deblur_faces``.

Rows (frames/s, so 1 / rate is the seconds per frame the scene issue's 0.3 s goal speaks of):
the whole call (proposals + restoration), its two parts (proposals alone: relaxed MTCNN and tiled
BlazeFace on the frame, MTCNN on the 2x restored look by the look generator, ``faces.LOOK_MODEL``;
restoration of five given faces), the fast mode (``proposal_model=False``: tiled BlazeFace on
the blurred frame only; then restoration), whole-frame ``tfdeblur.deblur`` for comparison, and
``tfdeblur.deblur_frame`` (what ``tfdeblur deblur`` runs on a frame: whole frame plus the proposed
faces restored again at scale; also without the 2x look); each with the default and the fast model,
and the default's fast mode once more computing in bfloat16 (``load_model(precision="bfloat16")``;
fast only on CPUs with native bfloat16, ``meta.cpu_bf16``).
``deblur_faces`` and ``deblur_frame`` also look at the whole-frame restoration (one more pass of
each detector), which the proposals row leaves out.
The frame is built from LFW faces when ``../shared/data/lfw`` is there, else from noise.
"""

from __future__ import annotations

import os

import numpy as np

from bench.common import REPO, guarded, log, measure

FRAME = (480, 640)
FACES = 5


def _frame():
    from tfdeblur.scenes import blur_frames, compose_scene

    lfw = os.path.join(REPO, "..", "shared", "data", "lfw")
    rng = np.random.default_rng(0)
    if os.path.isdir(lfw):
        from tfdeblur.imageio import read_rgb

        people = sorted(os.listdir(lfw))[:20]
        photos = [read_rgb(os.path.join(lfw, p, sorted(os.listdir(os.path.join(lfw, p)))[0]), None) for p in people]
        note = "LFW faces"
    else:
        photos = [np.clip(rng.normal(128, 40, (250, 250, 3)), 0, 255).astype(np.uint8) for _ in range(20)]
        note = "noise stand-ins (no ../shared/data/lfw)"
    boxes = [np.array([75.0, 70.0, 175.0, 190.0], np.float32)] * len(photos)
    scene = compose_scene(rng, photos, boxes, photos, shape=FRAME, heights=(60.0, 110.0), max_faces=FACES, tries=200)
    blurred = blur_frames([scene.image], seed=0, blur_px=(10, 40))[0]
    return blurred, scene.boxes, note


def section_faces(rec, s, quick: bool = False) -> dict:
    from tfdeblur import faces as F
    from tfdeblur.inference import SHIPPED_MODELS, deblur, load_model

    frame, boxes, note = _frame()
    size = f"{FRAME[1]}x{FRAME[0]}"
    note = f"{len(boxes)} faces, {note}"
    log(f"  frame {size} with {len(boxes)} faces")
    detector, fast_detector = F.proposal_detector(), F.proposal_detector(fast_mode=True)
    look_model = load_model(F.LOOK_MODEL)
    rows = {}
    for key, what, fn in (
        ("proposals", "MTCNN + tiled BlazeFace + 2x look (fast)", lambda: F.propose_faces(frame, detector, look_model)),
        ("proposals, fast mode", "tiled BlazeFace on the blurred frame",
         lambda: F.propose_faces(frame, fast_detector)),
    ):
        rows[key] = guarded(rec, "faces", "proposals", what, size, 1,
                            lambda fn=fn, what=what: rec.add("faces", "proposals", what, size, 1,
                                                             measure(fn, 1, s, block=lambda _: None),
                                                             unit="frames/s", note=note))
    fast_rows = ("deblur_faces, fast mode", "restore 5 given faces")
    for label, name, precision, wanted in (("default", "default", "float32", None), ("fast", "fast", "float32", None),
                                           ("default bfloat16", "default", "bfloat16", fast_rows)):
        model = load_model(SHIPPED_MODELS[name], precision=precision)
        for what, fn in (
            ("deblur_faces", lambda: F.deblur_faces(model, frame, detector=detector)),
            ("deblur_faces, fast mode", lambda: F.deblur_faces(model, frame, detector=fast_detector, proposal_model=False)),
            ("restore 5 given faces", lambda: F.deblur_faces(model, frame, faces=boxes)),
            ("whole-frame deblur", lambda: deblur(model, frame)),
            ("deblur_frame (whole frame + faces at scale)", lambda: F.deblur_frame(model, frame, detector=detector)),
            ("deblur_frame, no 2x look", lambda: F.deblur_frame(model, frame, detector=fast_detector, proposal_model=False)),
        ):
            if wanted is not None and what not in wanted:
                continue
            rows[f"{label}: {what}"] = guarded(
                rec, "faces", what, label, size, 1,
                lambda fn=fn, what=what, label=label: rec.add("faces", what, label, size, 1,
                                                              measure(fn, 1, s, block=lambda _: None),
                                                              unit="frames/s", note=note))
    per_frame = {k: (1.0 / r["rate"] if r and r.get("rate") else None) for k, r in rows.items()}
    return {"seconds_per_frame": per_frame, "faces": int(len(boxes)), "frame": size}
