"""``metrics.json``, ``report.md`` and the figures of an evaluation (:func:`write_report`)."""

from __future__ import annotations

import json
import os

import numpy as np

from tfdeblur.evaluation.common import PAPER_TABLE1, REPORT_ROWS, finite_or_none
from tfdeblur.evaluation.figures import examples_figure, failure_figure
from tfdeblur.files import atomic_path

__all__ = ["write_report", "write_metrics_json", "percent", "p_value"]


def percent(x):
    """A rate as a percentage with two decimals (an en dash when missing)."""
    return "–" if x is None else f"{100 * x:.2f}%"


def _interval(ci, fmt):
    return "" if ci is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _num_ci(x, ci, fmt):
    return "–" if x is None else f"{x:{fmt}} {_interval(ci, fmt)}".rstrip()


def _ci(c):
    if c is None or c.get("failure_rate") is None:
        return "–"
    lo, hi = c["failure_rate_ci95"]
    return f"{100 * c['failure_rate']:.2f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def _num(x, fmt):
    return "–" if x is None else format(x, fmt)


def p_value(p):
    """A p-value with two significant digits (scientific below 1e-4)."""
    return "–" if p is None else (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")


def _table(m: dict, independent_name) -> list[str]:
    ind = m.get("independent") or {}
    head = ("| Condition | Failure rate [95% CI] | Mean confidence | Recall | FP | Landmark NME | PSNR (dB) | SSIM "
            f"| {independent_name or 'Independent'} failure rate [95% CI] |")
    lines = [head, "|" + "---|" * 9]
    for key, label in REPORT_ROWS:
        c = m["conditions"][key]
        lines.append(
            f"| {label} | {_ci(c)} | {_num(c['confidence_mean'], '.4f')} | {_num(c['recall'], '.3f')} "
            f"| {c['false_positives']} | {_num(c['landmark_nme'], '.4f')} | {_num_ci(c['psnr'], c.get('psnr_ci95'), '.2f')} "
            f"| {_num_ci(c['ssim'], c.get('ssim_ci95'), '.3f')} | {_ci(ind.get(key))} |"
        )
    return lines


def _verdict(m: dict, n: int, independent_name) -> str:
    c = m["conditions"]
    b, r, s = c["blurred"]["failure_rate"], c["restored"]["failure_rate"], c["sharp"]["failure_rate"]
    p = m["mcnemar_p"]
    t = m["mcnemar"]["mtcnn_blurred_vs_restored"]
    direction = "fewer" if r < b else ("more" if r > b else "as many")
    sig = "significant" if p < 0.05 else "not significant"
    line = (f"On {n} images MTCNN missed {percent(b)} of blurred faces and {percent(r)} after restoration ({direction} misses; "
            f"{t['c']} faces found only after restoration, {t['b']} only before; McNemar exact p = {p_value(p)}, "
            f"{sig} at the 5% level); the sharp originals are missed {percent(s)} of the time")
    ind = m.get("independent")
    if ind:
        ti = m["mcnemar"].get("independent_blurred_vs_restored", {})
        line += (f". The independent detector ({independent_name}) goes from {percent(ind['blurred']['failure_rate'])} "
                 f"to {percent(ind['restored']['failure_rate'])} (p = {p_value(ti.get('p'))})")
    sr = c["sharp_restored"]["failure_rate"]
    tsr = m["mcnemar"]["mtcnn_sharp_vs_sharp_restored"]
    line += (f"; deblurring sharp faces gives {percent(sr)} misses vs {percent(s)} "
             f"(p = {p_value(tsr['p'])}, {'a significant change' if tsr['p'] < 0.05 else 'no significant harm'}).")
    gain = m.get("psnr_gain") or {}
    if gain.get("mean") is not None:
        line += (f" PSNR changes by {gain['mean']:+.2f} dB {_interval(gain.get('ci95'), '+.2f')} over blurred "
                 f"(per-image paired mean, 95% t-interval, n = {gain['n']}).")
    return line


def _paper_lines() -> list[str]:
    fr = PAPER_TABLE1["failure_rate"]
    return [
        "| Condition | Failure rate | Mean confidence |",
        "|---|---|---|",
        f"| Blurred | {percent(fr['blurred'])} | ~0.99 |",
        f"| Restored (GAN) | {percent(fr['restored_gan'])} | ~0.99 |",
        f"| Restored (LSGAN) | {percent(fr['restored_lsgan'])} | ~0.99 |",
        f"| Restored (WGAN-GP) | {percent(fr['restored_wgan_gp'])} | ~0.99 |",
        "| Sharp-restored | not reported | – |",
        f"| Sharp | {percent(fr['sharp'])} | ~0.99 |",
    ]


def _report_md(metrics: dict, figures: list[str]) -> str:
    n = metrics["n"]
    ind = metrics.get("independent_detector")
    src = metrics.get("source", {})
    if "data_dir" in src:
        origin = f"sharp faces from `{src['data_dir']}`, blurred with the \"eval\" preset (seed {src['blur']['seed']})"
    elif "pairs_dir" in src:
        origin = f"sharp/blurred pairs from `{src['pairs_dir']}`"
    elif "ground_truth" in src:
        origin = (f"hand-labelled images from `{src['ground_truth']}`, blurred with the \"eval\" preset "
                  f"(seed {src['blur']['seed']})")
    else:
        origin = "supplied images"
    ref = ("hand-labelled boxes" if metrics.get("reference") == "ground_truth_boxes"
           else "each detector's best detection on the sharp image")
    lines = [
        "# Face-detection evaluation",
        "",
        f"{n} images: {origin}. Detector: MTCNN; independent detector: {ind or 'unavailable'}. "
        f"Recall / FP at IoU >= {metrics.get('iou_threshold', 0.5)} against {ref}; landmark NME against the same "
        "detector's landmarks on the sharp image, per inter-ocular distance; PSNR/SSIM against the sharp image.",
        "",
    ]
    for name in metrics["models"]:
        m = metrics["per_model"][name]
        title = "## Results" if len(metrics["models"]) == 1 else f"## Model `{name}`"
        precision = f" (computing in {metrics['precision']})" if metrics.get("precision", "float32") != "float32" else ""
        lines += [title, "", f"Model: `{name}`{precision}; deblurring {_num(m['deblur_fps'], '.1f')} img/s, "
                  f"MTCNN {_num(metrics['detector_fps'], '.1f')} img/s, {ind or 'independent'} "
                  f"{_num(metrics.get('independent_detector_fps'), '.1f')} img/s on this machine.", ""]
        lines += _table(m, ind) + ["", "**What this means:** " + _verdict(m, n, ind), ""]
    if metrics.get("mcnemar_models"):
        lines += ["## Between models (detection success, McNemar exact; restored PSNR, paired)", "",
                  "| Models | MTCNN restored: only A / only B | p | MTCNN sharp-restored: only A / only B | p "
                  f"| {ind or 'independent'} restored: only A / only B | p | Restored PSNR, B − A (dB) [95% CI] |",
                  "|---|---|---|---|---|---|---|---|"]
        for pair, t in metrics["mcnemar_models"].items():
            r, s, i = t["restored"], t["sharp_restored"], t.get("independent_restored")
            d = t.get("restored_psnr_difference") or {}
            diff = _num_ci(d.get("mean"), d.get("ci95"), "+.2f")
            ind_cells = f"{i['b']} / {i['c']} | {p_value(i['p'])}" if i else "– | –"
            lines.append(f"| {pair} | {r['b']} / {r['c']} | {p_value(r['p'])} | {s['b']} / {s['c']} | {p_value(s['p'])} "
                         f"| {ind_cells} | {diff} |")
        lines.append("")
    lines += ["## The paper's numbers (Fan & Luo, Table 1; MTCNN on LFW)", ""] + _paper_lines() + [
        "",
        "The paper's blur, image set and MTCNN build differ from ours, so compare the pattern (blurred >> restored "
        ">= sharp) rather than the digits.",
        "",
    ]
    if figures:
        lines += ["## Figures", ""] + [f"![{os.path.splitext(f)[0]}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return finite_or_none(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return finite_or_none(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def write_metrics_json(metrics: dict, output_dir) -> str:
    """``output_dir/metrics.json`` (strict JSON: non-finite numbers become null), written atomically."""
    path = os.path.join(output_dir, "metrics.json")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(_clean(metrics), f, indent=2, default=_json_default, allow_nan=False)
    return path


def write_report(metrics: dict, output_dir, details: dict | None = None) -> list[str]:
    """Write ``metrics.json``, ``report.md`` and the PNG figures; returns the written paths."""
    os.makedirs(output_dir, exist_ok=True)
    written = []
    figures = []
    fig_path = os.path.join(output_dir, "failure_rates.png")
    failure_figure(metrics, fig_path)
    figures.append("failure_rates.png")
    if details is not None:
        stems = [_slug(n, with_folder=False) for n in metrics["models"]]
        for name in metrics["models"]:
            # runs/a/generator.keras and runs/b/generator.keras must not share a figure
            slug = _slug(name, with_folder=stems.count(_slug(name, with_folder=False)) > 1)
            fname = "examples.png" if name == metrics["models"][0] else f"examples_{slug}.png"
            if examples_figure(details, name, os.path.join(output_dir, fname)):
                figures.append(fname)
    written.append(write_metrics_json(metrics, output_dir))
    path = os.path.join(output_dir, "report.md")
    with open(path, "w") as f:
        f.write(_report_md(metrics, figures))
    written.append(path)
    written += [os.path.join(output_dir, f) for f in figures]
    return written


def _slug(name: str, with_folder: bool = True) -> str:
    stem = os.path.splitext(os.path.basename(name))[0] or "model"
    parent = os.path.basename(os.path.dirname(os.path.abspath(name))) if with_folder else ""
    base = f"{parent}_{stem}" if parent else stem
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in base)
