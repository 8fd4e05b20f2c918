"""Validation PSNR against step for the Table 1 runs (issue 19), read from their TensorBoard logs
(so resumed runs are whole): one line per loss, written as a PNG and a JSON of the points.

    python scripts/table1_curves.py [RUNS_DIR] [OUT_DIR] [START_MODEL DATA_DIR] [--compare JSON]
    # defaults: runs/table1 results/table1; with START_MODEL (the runs' common start) and DATA_DIR,
    # step 0 is that generator's PSNR on the same validation pairs as training's. --compare draws
    # an earlier budget's curves (a val_psnr_curves.json) dashed beside them, to show whether the
    # longer budget ends anywhere else.
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402

LOSSES = ("gan", "lsgan", "wgan-gp")
LABELS = {"gan": "GAN", "lsgan": "LSGAN", "wgan-gp": "WGAN-GP"}


def scalar_curve(log_dir, tag):
    """{step: value} of one scalar tag over all event files in ``log_dir`` (the last write wins)."""
    import tensorflow as tf

    points = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag == tag:
                    points[int(event.step)] = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
    return dict(sorted(points.items()))


def start_psnr(model_path, data_dir):
    """The validation PSNR training reports (its 200 model-selection images and blur) for
    ``model_path``: the curves' step 0."""
    import numpy as np
    import tensorflow as tf

    from tfdeblur.config import load_config
    from tfdeblur.data import load_faces, load_split, model_selection_pairs, to_model
    from tfdeblur.inference import load_model

    dcfg = load_config(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "table1", "gan.yaml"))["data"]
    split = load_split(data_dir, dcfg["val_fraction"], dcfg["split_seed"])
    sharp, _ = load_faces(split.val, int(dcfg["image_size"]), limit=dcfg["val_images"])
    blurred = model_selection_pairs(sharp)
    model = load_model(model_path)
    psnrs = [tf.image.psnr(model(to_model(blurred[i:i + 16]), training=False), to_model(sharp[i:i + 16]), 2.0).numpy()
             for i in range(0, len(sharp), 16)]
    return float(np.mean(np.concatenate(psnrs)))


def main(argv):
    parser = argparse.ArgumentParser(description="Table 1 runs: validation PSNR against step")
    parser.add_argument("runs_dir", nargs="?", default="runs/table1")
    parser.add_argument("out_dir", nargs="?", default="results/table1")
    parser.add_argument("start_model", nargs="?")
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--compare", help="an earlier budget's val_psnr_curves.json, drawn dashed")
    args = parser.parse_args(argv[1:])
    start = start_psnr(args.start_model, args.data_dir) if args.data_dir else None
    curves = {}
    for loss in LOSSES:
        log_dir = os.path.join(args.runs_dir, loss, "logs")
        if os.path.isdir(log_dir):
            curves[loss] = ({0: start} if start is not None else {}) | scalar_curve(log_dir, "val/psnr")
    if not curves:
        print(f"error: no Table 1 runs with logs under {args.runs_dir!r}", file=sys.stderr)
        return 2
    earlier = {}
    if args.compare:
        try:
            with open(args.compare) as f:
                earlier = {loss: {p["step"]: p["val_psnr"] for p in points} for loss, points in json.load(f).items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            print(f"error: --compare {args.compare!r} is not a val_psnr_curves.json: {e}", file=sys.stderr)
            return 2
    out_dir = args.out_dir
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for loss, points in curves.items():
        label = f"{LABELS[loss]}, {max(points):,}-step budget" if earlier else LABELS[loss]
        line, = ax.plot(list(points), list(points.values()), marker="o", markersize=3, label=label)
        if loss in earlier:
            last = max(earlier[loss])
            ax.plot(list(earlier[loss]), list(earlier[loss].values()), linestyle="--", color=line.get_color(),
                    alpha=0.6, label=f"{LABELS[loss]}, {last:,}-step budget")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation PSNR (dB, model-selection set)")
    ax.set_title("Table 1 runs: validation PSNR against step")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = os.path.join(out_dir, "val_psnr_curves.png")
    fig.savefig(png, dpi=120)
    write_json(os.path.join(out_dir, "val_psnr_curves.json"), {loss: [{"step": s, "val_psnr": v} for s, v in points.items()] for loss, points in curves.items()})
    print(f"wrote {png} and val_psnr_curves.json")
    for loss, points in curves.items():
        # Whether a budget has levelled: the PSNR change over its last tenth and fifth of steps.
        last = max(points)
        changes = []
        for share in (0.9, 0.8):
            since = min(s for s in points if s >= share * last)
            changes.append(f"{points[last] - points[since]:+.3f} dB since step {since:,}")
        print(f"{LABELS[loss]}: {points[last]:.3f} dB at step {last:,}; " + ", ".join(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
