"""The report's figures: failure rates with their intervals, and example rows with detections drawn."""

from __future__ import annotations

import os

import numpy as np

from tfdeblur.evaluation.common import PAPER_TABLE1

__all__ = ["failure_figure", "examples_figure"]


def failure_figure(metrics, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("blurred", "Blurred", None), ("sharp", "Sharp", None)]
    for name in metrics["models"]:
        suffix = "" if len(metrics["models"]) == 1 else f"\n{os.path.basename(name)}"
        groups.insert(-1, ("restored", "Restored" + suffix, name))
        groups.insert(-1, ("sharp_restored", "Sharp-restored" + suffix, name))
    dets = [("conditions", "MTCNN")]
    if metrics.get("independent"):
        dets.append(("independent", metrics.get("independent_detector") or "independent"))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups), 4.2))
    width = 0.8 / len(dets)
    for d, (key, label) in enumerate(dets):
        xs, ys, lo, hi = [], [], [], []
        for g, (cond, _, name) in enumerate(groups):
            m = metrics["per_model"][name or metrics["models"][0]][key][cond]
            xs.append(g + (d - (len(dets) - 1) / 2) * width)
            ys.append(100 * m["failure_rate"])
            lo.append(100 * (m["failure_rate"] - m["failure_rate_ci95"][0]))
            hi.append(100 * (m["failure_rate_ci95"][1] - m["failure_rate"]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=label)
    paper = PAPER_TABLE1["failure_rate"]
    for g, (cond, _, _) in enumerate(groups):
        if cond in paper:
            ax.plot([g - 0.4, g + 0.4], [100 * paper[cond]] * 2, "k--", lw=1,
                    label="paper (MTCNN)" if cond == "blurred" else None)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[1] for g in groups], fontsize=8)
    ax.set_ylabel("failure rate (%) with 95% Wilson interval")
    ax.set_title(f"Face-detection failures, n = {metrics['n']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pick_examples(ok_b, ok_r, k=8):
    """Indices for the example grid, taken in turn from: fixed by restoration, missed in both,
    broken by restoration, found in both (so failures show, not only successes)."""
    cats = [list(np.where(~ok_b & ok_r)[0]), list(np.where(~ok_b & ~ok_r)[0]),
            list(np.where(ok_b & ~ok_r)[0]), list(np.where(ok_b & ok_r)[0])]
    picked = []
    while len(picked) < k and any(cats):
        for cat in cats:
            if cat and len(picked) < k:
                picked.append(int(cat.pop(0)))
    return sorted(picked)


def _cell(image, faces, gt_boxes, size):
    """One grid cell: the image fitted into ``size`` x ``size`` with boxes and landmarks drawn."""
    import cv2

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    im = image if (nh, nw) == (h, w) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    cell = np.full((size, size, 3), 255, np.uint8)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    cell[oy : oy + nh, ox : ox + nw] = im

    def pt(x, y):
        return int(round(ox + x * scale)), int(round(oy + y * scale))

    for b in [] if gt_boxes is None else gt_boxes:
        cv2.rectangle(cell, pt(b[0], b[1]), pt(b[2], b[3]), (255, 220, 0), 1)
    for j, f in enumerate(faces):
        cv2.rectangle(cell, pt(f.box[0], f.box[1]), pt(f.box[2], f.box[3]), (0, 230, 0) if j == 0 else (0, 200, 255), 2)
        if f.landmarks is not None:
            for x, y in f.landmarks:
                cv2.circle(cell, pt(x, y), 2, (255, 0, 0), -1)
    return cell


def examples_figure(details, model_name, path, k=8, size=256):
    """Rows of blurred | restored | sharp with MTCNN boxes (green: best, cyan: others), landmarks
    (red) and labelled boxes (yellow, ground-truth mode). Composed as one image, then drawn with
    matplotlib at 1:1 scale (no resampling), which keeps it fast on a busy CPU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faces = details["faces"]["mtcnn"]
    restored = details["restored"][model_name][0]
    ok_b = np.array([len(f) > 0 for f in faces["blurred"]])
    ok_r = np.array([len(f) > 0 for f in faces[f"restored@{model_name}"]])
    rows = _pick_examples(ok_b, ok_r, k)
    if not rows:
        return False
    cols = [("Blurred", details["blurred"], faces["blurred"]),
            ("Restored", restored, faces[f"restored@{model_name}"]),
            ("Sharp", details["sharp"], faces["sharp"])]
    band, gap, top = 18, 4, 24
    width = 3 * size + 2 * gap
    height = top + len(rows) * (band + size + gap)
    canvas = np.full((height, width, 3), 255, np.uint8)
    labels = []
    gt = details.get("gt_boxes")
    for r, i in enumerate(rows):
        y0 = top + r * (band + size + gap)
        for c, (title, images, dets) in enumerate(cols):
            x0 = c * (size + gap)
            canvas[y0 + band : y0 + band + size, x0 : x0 + size] = _cell(
                images[i], dets[i], None if gt is None else gt[i], size)
            text = f"{title}: {dets[i][0].confidence:.3f}" if dets[i] else f"{title}: NO FACE"
            if c == 0:
                text += f"  {os.path.basename(str(details['names'][i]))[:22]}"
            labels.append((x0 + 2, y0 + band - 4, text, "black" if dets[i] else "red"))
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for x, y, text, color in labels:
        ax.text(x, y, text, fontsize=7.5, color=color, va="bottom", ha="left")
    ax.text(width / 2, top - 6, f"MTCNN on blurred | restored ({os.path.basename(model_name)}) | sharp",
            fontsize=9, ha="center", va="bottom")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return True
