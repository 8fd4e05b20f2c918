"""Write a held-out blur family as ``--pairs-dir`` pairs, to measure generalization.

Neither family is used in training:

* ``linear`` (default): straight or curved (up to 90° of turn) linear motion of 25-40 px at 256²,
  plus Gaussian noise sigma = 2/255, plus JPEG quality 85.
* ``knotty``: the ``eval-knotty`` preset (camera shake of 35-55 px with 2-4 sharp turns, 1-3 dwell
  points, uneven speed, defocus of 0.5-1.5 px), plus noise sigma = 0.01, plus JPEG quality 60.

    python scripts/make_generalization_pairs.py ../shared/data/lfw runs/generalization --split val
    python scripts/make_generalization_pairs.py ../shared/data/lfw runs/knotty --split val --family knotty
"""
import argparse
import os
import sys

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src_dir")
    p.add_argument("out_dir")
    p.add_argument("--split", choices=["all", "train", "val"], default="val")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--family", choices=["linear", "knotty"], default="linear")
    args = p.parse_args(argv)

    from tfdeblur import blur, data
    from tfdeblur.config import DEFAULTS
    from tfdeblur.imageio import SkipLog, find_images, write_image

    found = [f for f, _ in find_images(args.src_dir)]
    if args.split != "all":
        train, val = data.split_by_person(found, DEFAULTS["data"]["val_fraction"], DEFAULTS["data"]["split_seed"])
        found = val if args.split == "val" else train
    log = SkipLog()
    sharp, kept = data.load_faces(sorted(found), 256, log=log, limit=args.limit)
    if not kept:
        print("error: no images", file=sys.stderr)
        return 2
    if args.family == "knotty":
        kernels = blur.preset_bank("eval-knotty", len(kept), seed=args.seed)
        noise, jpeg = 0.01, 60
        meta = {"family": "knotty", "preset": "eval-knotty", "kernel_params": blur.PRESETS["eval-knotty"].to_dict()}
    else:
        kernels = blur.linear_kernel_bank(len(kept), seed=args.seed, length=(25.0, 40.0), curvature=(0.0, np.pi / 2))
        noise, jpeg = 2.0 / 255.0, 85
        meta = {"family": "linear", "length": [25, 40], "curvature": [0, float(np.pi / 2)]}
    blurred = data.make_eval_pairs(sharp, kernels, noise_sigma=noise, seed=args.seed, jpeg_quality=jpeg)
    for path, s, b in zip(kept, sharp, blurred):
        stem = os.path.splitext(os.path.basename(path))[0]
        write_image(os.path.join(args.out_dir, "sharp", stem + ".png"), s)
        write_image(os.path.join(args.out_dir, "blurred", stem + ".png"), b)
    blur.save_bank(os.path.join(args.out_dir, "kernels.npz"), kernels,
                   {**meta, "noise_sigma": noise, "jpeg_quality": jpeg, "seed": args.seed},
                   names=np.array([os.path.splitext(os.path.basename(k))[0] for k in kept]))
    print(f"wrote {len(kept)} pairs to {args.out_dir} ({len(log)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
