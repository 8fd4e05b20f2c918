"""Quality against cost for both generator families (issue 20): one side-by-side speed run of
every architecture that has a trained quality figure, plotted against that figure.

    python scripts/frontier.py [OUT_DIR]        # default results/frontier

Speed does not depend on weights, so each architecture is built untrained and timed here, in one
run (Keras float32, 256², batch 8, and LiteRT float32 at batch 1 for the shipped formats' view);
quality is the model-selection PSNR that its training run reported on the same 200 validation
images (blurred: 20.42 dB), as recorded in MODEL_CARD.md and docs/performance.md. The budgets
differ: the table says which run each figure comes from.
"""
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tfdeblur.files import write_json  # noqa: E402

BLURRED_PSNR = 20.42  # the 200 model-selection pairs, blurred input
NAF_CONFIG = "configs/cpu-naf-distill.yaml"

# (label, family, the config whose model.generator it is, model-selection PSNR (dB), where the figure comes from)
POINTS = [
    ("fast 2", "ResNet", "configs/cpu-fast-distill.yaml", 22.57,
     "generator_look.keras (MODEL_CARD, fast model until 2026-12-03)"),
    ("fast 3 (shipped fast)", "ResNet", "configs/cpu-fast-distill.yaml", 22.92,
     "configs/cpu-fast-distill.yaml, 7,000 steps"),
    ("ngf 24, 6 blocks", "ResNet", "configs/cpu.yaml", 22.84, "stage 4b, 8,824 steps (MODEL_CARD)"),
    ("ngf 40, 2 blocks", "ResNet", "configs/cpu-fast2-distill.yaml", 22.88, "configs/cpu-fast2-distill.yaml"),
    ("ngf 32, 6 blocks", "ResNet", "configs/cpu-wide.yaml", 23.30, "stage 5, configs/cpu-wide.yaml (MODEL_CARD)"),
    ("default (ngf 40, 6 blocks)", "ResNet", "configs/cpu-wider.yaml", 23.54,
     "the shipped default, generator.keras (MODEL_CARD)"),
]
NAF_LABEL = "NAF width 24"


def naf_point(log_dir):
    """The NAF run's last model-selection PSNR, read from its TensorBoard log (None if absent)."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from table1_curves import scalar_curve

    curve = scalar_curve(log_dir, "val/psnr") if os.path.isdir(log_dir) else {}
    if not curve:
        return None
    step = max(curve)
    return (NAF_LABEL, "NAF", NAF_CONFIG, round(curve[step], 2), f"{NAF_CONFIG}, {step:,} steps"), curve


def time_points(points):
    """Keras float32 img/s at 256² batch 8, LiteRT float32 img/s at batch 1 and GMAC, per point,
    through the bench's own row functions (bench/infer.py), in one run."""
    from bench.common import FULL, Recorder, gmac, load_cfg
    from bench.infer import _keras_rows, _tflite_rows, smooth_images
    from tfdeblur.models import build_generator

    rec, out, cache = Recorder(), [], {}
    pixels = {256: smooth_images(8, 256)}
    for label, family, config, psnr, source in points:
        # a config path names a trained run's generator; the paper generator is given as kwargs
        kwargs = load_cfg(os.path.join(REPO, config))["model"]["generator"] if isinstance(config, str) else config
        key = json.dumps(kwargs, sort_keys=True)
        if key not in cache:
            model = build_generator(**kwargs)
            case = (rec, FULL, label, model, key, "untrained weights (speed only)", pixels, [256])
            keras_row = _keras_rows(*case)[256]
            _tflite_rows(*case, "tflite-fp32", {})
            lite_row = rec.rows[-1]
            cache[key] = {"gmac": round(gmac(model, 256), 3), "keras_fp32": round(keras_row["rate"], 1),
                          "tflite_fp32": round(lite_row["rate"], 1)}
        out.append(dict(label=label, family=family, generator=kwargs, psnr=psnr,
                        gain_db=None if psnr is None else round(psnr - BLURRED_PSNR, 2), source=source,
                        **cache[key]))
    return out


def plot(rows, path, paper_rate):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, xkey, xlabel in zip(axes, ("gmac", "keras_fp32", "tflite_fp32"),
                                ("GMAC per 256² image", "img/s, Keras float32, 256², batch 8",
                                 "img/s, LiteRT float32, 256², batch 1")):
        for family, marker in (("ResNet", "o"), ("NAF", "s")):
            pts = [r for r in rows if r["family"] == family]
            ax.scatter([r[xkey] for r in pts], [r["psnr"] for r in pts], marker=marker, s=50, label=family)
            for r in pts:
                ax.annotate(r["label"], (r[xkey], r["psnr"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.axhline(BLURRED_PSNR + 3.0, ls=":", c="gray", lw=1)
        if xkey == "keras_fp32":
            ax.axvline(50, ls="--", c="gray", lw=1)
            ax.text(50, ax.get_ylim()[0], " 50 img/s goal", fontsize=7, va="bottom")
            if paper_rate:
                ax.axvline(12 * paper_rate, ls="-.", c="gray", lw=1)
                ax.text(12 * paper_rate, ax.get_ylim()[1], " 12x paper", fontsize=7, va="top")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("model-selection PSNR (dB; blurred 20.42, dotted: +3 dB)")
    axes[0].legend()
    fig.suptitle("Quality against cost, both generator families (2 CPU cores, one run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else os.path.join(REPO, "results", "frontier")
    os.makedirs(out_dir, exist_ok=True)
    from tfdeblur import quiet

    quiet.configure()
    quiet.import_tensorflow()
    points = list(POINTS)
    found = naf_point(os.path.join(REPO, "runs", "naf_distill", "logs"))
    curve = None
    if found:
        points.append(found[0])
        curve = found[1]
    paper = ("paper (ngf 64, 6 blocks)", "ResNet", dict(ngf=64, n_blocks=6), None, "untrained, speed only")
    rows = time_points(points + [paper])
    paper_row = rows.pop()
    plot(rows, os.path.join(out_dir, "frontier.png"), paper_row["keras_fp32"])
    write_json(os.path.join(out_dir, "frontier.json"), {"rows": rows, "paper": paper_row, "naf_curve": curve, "blurred_psnr": BLURRED_PSNR})
    for r in rows:
        print(f"| {r['label']} | {r['family']} | {r['gmac']:.2f} | {r['keras_fp32']:.1f} "
              f"({r['keras_fp32'] / paper_row['keras_fp32']:.1f}x) | {r['tflite_fp32']:.1f} | {r['psnr']:.2f} | {r['source']} |")
    print(f"| paper | ResNet | {paper_row['gmac']:.2f} | {paper_row['keras_fp32']:.1f} | {paper_row['tflite_fp32']:.1f} | – | – |")


if __name__ == "__main__":
    main(sys.argv)
