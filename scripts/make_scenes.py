"""Build a reproducible scene set: camera frames of validation persons' faces with their boxes.

    python scripts/make_scenes.py --data-dir ../shared/data/lfw --out scenes/val --frames 150 --seed 0

Writes ``OUT/frames/frame_NNNN.png`` (sharp frames), ``OUT/scenes.xml`` (dlib imglab boxes, which
``evaluate.py --scenes OUT`` reads) and ``OUT/manifest.json`` (settings and the photo behind each
box). The same arguments give the same frames, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/lfw", help="LFW-layout folder (one folder per person)")
    p.add_argument("--split", choices=["val", "train", "all"], default="val", help="which persons (training's split)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="640x480", help="frame WxH")
    p.add_argument("--photos", type=int, default=None, help="use the first N photos of the split (sorted)")
    args = p.parse_args(argv)

    from tfdeblur.errors import output_folder_problem
    from tfdeblur.imageio import SkipLog, write_image
    from tfdeblur.scenes import SceneError, face_photos, make_scenes, write_imglab_xml

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size {args.size!r}: expected WxH, e.g. 640x480", file=sys.stderr)
        return 2
    problem = output_folder_problem(os.path.join(args.out, "frames"), create=True)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    log = SkipLog()
    try:
        photos, boxes, paths = face_photos(args.data_dir, args.split, args.photos, log=log)
        scenes = make_scenes(photos, boxes, args.frames, seed=args.seed, shape=(h, w))
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    entries, manifest = [], []
    for s in scenes:
        rel = f"frames/{s.name}.png"
        write_image(os.path.join(args.out, rel), s.image)
        entries.append((rel, s.boxes))
        manifest.append({"file": rel, "boxes": s.boxes.round(1).tolist(),
                         "photos": [os.path.relpath(paths[i], args.data_dir) for i in s.sources]})
    write_imglab_xml(os.path.join(args.out, "scenes.xml"), entries)
    write_json(os.path.join(args.out, "manifest.json"), {"data_dir": args.data_dir, "split": args.split, "seed": args.seed, "size": [w, h],
                   "photos": len(photos), "frames": manifest}, indent=1)
    n_faces = sum(len(s.boxes) for s in scenes)
    print(f"{len(scenes)} frames, {n_faces} faces from {len(photos)} photos -> {args.out}"
          + (f" ({len(log.skipped)} photos skipped)" if log.skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
