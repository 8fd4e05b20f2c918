"""Validation PSNR against step for the Table 1 runs (issue 19), read from their TensorBoard logs
(so resumed runs are whole): one line per loss, written as a PNG and a JSON of the points.

    python scripts/table1_curves.py [RUNS_DIR] [OUT_DIR]    # defaults: runs/table1 results/table1
"""
import glob
import json
import os
import sys

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


def main(argv):
    runs_dir = argv[1] if len(argv) > 1 else "runs/table1"
    out_dir = argv[2] if len(argv) > 2 else "results/table1"
    curves = {}
    for loss in LOSSES:
        log_dir = os.path.join(runs_dir, loss, "logs")
        if os.path.isdir(log_dir):
            curves[loss] = scalar_curve(log_dir, "val/psnr")
    if not curves:
        print(f"error: no Table 1 runs with logs under {runs_dir!r}", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for loss, points in curves.items():
        ax.plot(list(points), list(points.values()), marker="o", markersize=3, label=LABELS[loss])
    ax.set_xlabel("training step")
    ax.set_ylabel("validation PSNR (dB, model-selection set)")
    ax.set_title("Table 1 runs: validation PSNR against step")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = os.path.join(out_dir, "val_psnr_curves.png")
    fig.savefig(png, dpi=120)
    with open(os.path.join(out_dir, "val_psnr_curves.json"), "w") as f:
        json.dump({loss: [{"step": s, "val_psnr": v} for s, v in points.items()] for loss, points in curves.items()}, f, indent=1)
    print(f"wrote {png} and val_psnr_curves.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
