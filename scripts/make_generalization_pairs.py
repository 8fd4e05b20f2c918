"""Write a held-out blur family as ``--pairs-dir`` pairs, to measure generalization.

The family is never used in training: straight or curved (up to 90° of turn) linear motion of
25-40 px at 256², plus Gaussian noise sigma = 2/255, plus JPEG quality 85.

    python scripts/make_generalization_pairs.py ../shared/data/lfw runs/generalization --split val
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
    kernels = blur.linear_kernel_bank(len(kept), seed=args.seed, length=(25.0, 40.0), curvature=(0.0, np.pi / 2))
    blurred = data.make_eval_pairs(sharp, kernels, noise_sigma=2.0 / 255.0, seed=args.seed, jpeg_quality=85)
    for path, s, b in zip(kept, sharp, blurred):
        stem = os.path.splitext(os.path.basename(path))[0]
        write_image(os.path.join(args.out_dir, "sharp", stem + ".png"), s)
        write_image(os.path.join(args.out_dir, "blurred", stem + ".png"), b)
    blur.save_bank(os.path.join(args.out_dir, "kernels.npz"), kernels,
                   {"family": "linear", "length": [25, 40], "curvature": [0, float(np.pi / 2)],
                    "noise_sigma": 2 / 255, "jpeg_quality": 85, "seed": args.seed},
                   names=np.array([os.path.splitext(os.path.basename(k))[0] for k in kept]))
    print(f"wrote {len(kept)} pairs to {args.out_dir} ({len(log)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
