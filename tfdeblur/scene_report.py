"""The scene evaluation's outputs: metrics.json, report.md, recall against face size, example frames."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["write_scene_report", "recall_figure", "examples_figure", "summary_line"]

_LABELS = {"blurred": "Blurred", "restored": "Restored (whole frame)", "restored_faces": "Restored faces",
           "sharp": "Sharp"}


def _fmt(x, pct=True):
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.2f}"


def _table(per_size, title) -> list[str]:
    conds = list(next(iter(per_size.values()))["recall"])
    lines = [f"**{title}**", "", "| face height | faces | " + " | ".join(_LABELS.get(c, c) for c in conds)
             + " | gap closed: whole frame | gap closed: faces |",
             "|---|---:|" + "---:|" * len(conds) + "---:|---:|"]
    for label, b in per_size.items():
        g = b["gap_closed"]
        lines.append(f"| {label} px | {b['faces']} | " + " | ".join(_fmt(b["recall"][c]) for c in conds)
                     + f" | {_fmt(g.get('restored'))} | {_fmt(g.get('restored_faces'))} |")
    return lines


def _report_md(metrics, figures) -> str:
    lines = ["# Scene evaluation", "",
             f"{metrics['frames']} frames, {metrics['faces']} labelled faces; source: "
             f"{metrics.get('source', {}).get('scenes', '?')}; blur: whole frame, path length "
             f"{metrics.get('source', {}).get('blur_px', '?')} px. A face is found when a detection overlaps its "
             f"box at IoU >= {metrics['iou_threshold']}. Gap closed = (restored - blurred) / (sharp - blurred) recall.", ""]
    for name, m in metrics["per_model"].items():
        lines += [f"## {name}", ""]
        lines += _table(m["mtcnn"]["per_size"], "MTCNN recall by face height") + [""]
        if m.get("independent"):
            lines += _table(m["independent"]["per_size"], f"{metrics['independent_detector']} recall by face height") + [""]
        fw = m["mtcnn"]["frames_worse"]
        lines += [f"Frames where a condition finds fewer labelled faces than the blurred frame (MTCNN): "
                  f"whole frame {fw['restored']}, faces {fw['restored_faces']} of {metrics['frames']}. "
                  f"Seconds per frame: whole frame {m['seconds_per_frame']['restored']:.2f}, "
                  f"faces {m['seconds_per_frame']['restored_faces']:.2f}.", ""]
    for pair, by_detector in metrics.get("paired", {}).items():
        other, first = pair.split(" vs ", 1)
        lines += [f"## Paired: {pair}", "",
                  f"Faces found by only one of the two (only {first} / only {other}), McNemar's exact p.", "",
                  "| face height | faces | " + " | ".join(
                      f"{'MTCNN' if d == 'mtcnn' else metrics.get('independent_detector')}: {_LABELS.get(c, c)}"
                      for d in by_detector for c in by_detector[d]) + " |",
                  "|---|---:|" + "---:|" * sum(len(v) for v in by_detector.values())]
        bins = next(iter(next(iter(by_detector.values())).values()))
        for label in bins:
            cells = []
            for d in by_detector.values():
                for per_size in d.values():
                    b = per_size[label]
                    cells.append("–" if b["p"] is None else f"{b['only_a']} / {b['only_b']}, p = {b['p']:.2g}")
            lines.append(f"| {label} px | {bins[label]['faces']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def recall_figure(metrics, path) -> None:
    """Recall against face height, one line per condition (MTCNN solid, independent dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = metrics["per_model"][metrics["models"][0]]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style in (("mtcnn", "-"), ("independent", "--")):
        if not first.get(key):
            continue
        per_size = first[key]["per_size"]
        bins = [b for b in per_size if per_size[b]["faces"]]
        for c in metrics["conditions"]:
            ax.plot(bins, [per_size[b]["recall"][c] for b in bins], style, marker="o",
                    label=f"{_LABELS.get(c, c)} ({'MTCNN' if key == 'mtcnn' else metrics['independent_detector']})")
    ax.set_xlabel("face height (px)")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{metrics['frames']} frames, {metrics['faces']} faces")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def examples_figure(details, model_name, path, k: int = 3) -> bool:
    """The first ``k`` frames: blurred, restored whole, restored faces, sharp, boxes in green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not details or not details.get("names"):
        return False
    k = min(k, len(details["names"]))
    rows = [("blurred", details["blurred"]), ("restored", details["restored"][model_name]["restored"]),
            ("restored_faces", details["restored"][model_name]["restored_faces"]), ("sharp", details["sharp"])]
    fig, axes = plt.subplots(k, 4, figsize=(16, 3.2 * k), squeeze=False)
    for i in range(k):
        for j, (cond, images) in enumerate(rows):
            ax = axes[i][j]
            ax.imshow(np.asarray(images[i]))
            for x1, y1, x2, y2 in details["boxes"][i]:
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime", lw=0.8))
            ax.set_title(f"{details['names'][i]}: {_LABELS[cond]}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_scene_report(metrics: dict, output_dir, details: dict | None = None) -> list[str]:
    """Write ``metrics.json``, ``report.md``, ``recall_by_size.png`` and ``scene_examples.png``."""
    from tfdeblur.evaluation.report import write_metrics_json

    os.makedirs(output_dir, exist_ok=True)
    figures = ["recall_by_size.png"]
    recall_figure(metrics, os.path.join(output_dir, figures[0]))
    if details is not None and examples_figure(details, metrics["models"][0], os.path.join(output_dir, "scene_examples.png")):
        figures.append("scene_examples.png")
    path = write_metrics_json(metrics, output_dir)
    report = os.path.join(output_dir, "report.md")
    with open(report, "w") as f:
        f.write(_report_md(metrics, figures))
    return [path, report] + [os.path.join(output_dir, f) for f in figures]


def summary_line(metrics, written, skipped) -> str:
    gaps = []
    for label, b in metrics["per_size"].items():
        if b["faces"]:
            gaps.append(f"{label}: {_fmt(b['gap_closed'].get('restored_faces'))}")
    fw = metrics["frames_worse"]
    return (f"\n{metrics['frames']} frames, {metrics['faces']} faces; MTCNN recall gap closed by restored faces "
            f"{', '.join(gaps)}; frames worse: whole {fw['restored']}, faces {fw['restored_faces']}; "
            f"wrote {', '.join(written)}" + (f"; {skipped} input(s) skipped" if skipped else ""))
