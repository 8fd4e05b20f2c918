"""Which side of dlib's threshold does restoration move? From an evaluation's
``identity_distances.npz`` (``evaluate.py`` with ``--identity dlib``): per model and protocol, the
paired change of each pair's distance from the blurred probe to the restored one, for genuine and
for impostor pairs separately (median change, share of pairs that got closer, Wilcoxon signed-rank
p), and the share of each kind accepted at the threshold.

    python scripts/identity_distance_shift.py EVAL_DIR [--threshold 0.6]   # writes EVAL_DIR/distance_shift.json
"""
import argparse
import os
import sys

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402


def shift(blurred, restored, threshold):
    """Paired distance change restored - blurred over one kind of pair (finite pairs only)."""
    from scipy.stats import wilcoxon

    ok = np.isfinite(blurred) & np.isfinite(restored)
    b, r = blurred[ok], restored[ok]
    delta = r - b
    return {
        "pairs": int(ok.sum()),
        "median_blurred": float(np.median(b)), "median_restored": float(np.median(r)),
        "median_change": float(np.median(delta)),
        "closer": float(np.mean(delta < 0)),
        "wilcoxon_p": float(wilcoxon(r, b).pvalue) if np.any(delta != 0) else 1.0,
        "accepted_blurred": float(np.mean(b <= threshold)), "accepted_restored": float(np.mean(r <= threshold)),
    }


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir")
    parser.add_argument("--threshold", type=float, default=0.6, help="the recognizer's threshold (dlib: 0.6)")
    args = parser.parse_args(argv[1:])
    path = os.path.join(args.eval_dir, "identity_distances.npz")
    if not os.path.isfile(path):
        print(f"error: no identity_distances.npz in {args.eval_dir!r} (run evaluate.py with --identity dlib)",
              file=sys.stderr)
        return 2
    out = {}
    with np.load(path) as z:
        genuine = z["genuine"]
        models = sorted({k.split("|")[0] for k in z.files if "|" in k})
        for model in models:
            for protocol in ("probe", "both"):
                key = f"{model}|{protocol}|"
                if key + "blurred" not in z.files or key + "restored" not in z.files:
                    continue
                b, r = z[key + "blurred"].astype(np.float64), z[key + "restored"].astype(np.float64)
                out.setdefault(model, {})[protocol] = {
                    kind: shift(b[m], r[m], args.threshold) for kind, m in (("genuine", genuine), ("impostor", ~genuine))}
    write_json(os.path.join(args.eval_dir, "distance_shift.json"), out)
    for model, protocols in out.items():
        for protocol, kinds in protocols.items():
            for kind, s in kinds.items():
                print(f"{model} {protocol} {kind}: median {s['median_blurred']:.3f} -> {s['median_restored']:.3f} "
                      f"(change {s['median_change']:+.3f}, {s['closer']:.0%} closer, p = {s['wilcoxon_p']:.2g}); "
                      f"accepted {s['accepted_blurred']:.1%} -> {s['accepted_restored']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
