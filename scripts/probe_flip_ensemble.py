"""PSNR of a flip self-ensemble: how much test-time averaging adds to a generator (a PSNR probe).

On the 200 model-selection images that ``train.py`` validates on (the first 200 validation-person
images of ``load_split(DATA, 0.25, 0)``, blurred with ``blur.preset_bank("eval", 200, seed=12345)``),
restore each image plainly, as the mean of it and its left-right mirror, and as the mean over the
four flips (none, left-right, up-down, both), undoing each flip on the output.

    python scripts/probe_flip_ensemble.py ../shared/data/lfw --model default fast --json out.json
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--model", nargs="+", default=["default"], help="generator .keras files or shipped names")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--json", default=None, help="write the PSNRs here")
    args = p.parse_args(argv)

    import tensorflow as tf

    from tfdeblur.data import load_faces, load_split, model_selection_pairs
    from tfdeblur.inference import load_model

    sharp, _ = load_faces(load_split(args.data_dir, 0.25, 0).val, 256, limit=args.images)
    blurred = model_selection_pairs(sharp)
    x = tf.cast(blurred, tf.float32) / 127.5 - 1.0
    y = tf.cast(sharp, tf.float32) / 127.5 - 1.0
    lr, ud = tf.image.flip_left_right, tf.image.flip_up_down
    flips = [lambda t: t, lr, ud, lambda t: lr(ud(t))]  # each is its own inverse

    def psnr(r):
        return float(tf.reduce_mean(tf.image.psnr(tf.clip_by_value(r, -1.0, 1.0), y, 2.0)))

    result = {"images": len(sharp), "blurred": psnr(x), "models": {}}
    for name in args.model:
        g = tf.function(lambda t, g=load_model(name): g(t, training=False))
        outs = [tf.concat([f(g(f(x[i:i + 8]))) for i in range(0, len(sharp), 8)], 0) for f in flips]
        result["models"][name] = {"plain": psnr(outs[0]), "flip_lr_mean": psnr((outs[0] + outs[1]) / 2),
                                  "four_flips_mean": psnr(tf.add_n(outs) / 4)}
        print(name, result["models"][name], flush=True)
    if args.json:
        write_json(args.json, result, indent=2)


if __name__ == "__main__":
    main()
