"""Identity measures: does a restored face still match its person, and nobody else?

Verification pairs are built from an LFW-layout image list (one folder per person), embedded by
an independent recognizer (:mod:`tfdeblur.recognizers`), and scored per condition
(``blurred``, ``restored``, ``sharp_restored``, ``sharp``) under two protocols:

* ``probe``: the first image of a pair is the *sharp* enrolment photo, the second the probe in
  the condition (the gate / phone-unlock scenario);
* ``both``: both images in the same condition.

Typical use (what ``evaluate.py --identity dlib`` does)::

    from tfdeblur import identity, recognizers
    rec = recognizers.get_recognizer("dlib")            # RecognizerUnavailable -> skip identity
    labels = identity.labels_from_paths(paths)           # person = folder name
    pairs = identity.make_pairs(labels, max_genuine=3000, seed=seed)
    boxes = recognizers.sharp_face_boxes(sharp)          # one region per image, for all conditions
    emb = identity.embed_conditions(rec, {"sharp": sharp, "blurred": blurred, ...}, boxes, pairs)
    metrics["identity"] = identity.identity_metrics(emb, labels, pairs, rec.threshold, rec.name)
    figures = identity.roc_figure(identity.identity_distances(emb, labels, pairs), output_dir)
    report += identity.report_lines(metrics["identity"])

This module imports no recognizer package: it works on embeddings.
"""

from __future__ import annotations

import os
from collections import defaultdict
from itertools import combinations

import numpy as np

__all__ = [
    "CONDITIONS", "PROTOCOLS", "FARS", "labels_from_paths", "make_pairs", "embed_conditions",
    "identity_distances", "accuracy_at", "roc_auc", "tar_at_far", "roc_curve", "gap_closed",
    "condition_metrics", "identity_metrics", "roc_figure", "report_lines",
]

CONDITIONS = ("blurred", "restored", "sharp_restored", "sharp")
PROTOCOLS = ("probe", "both")
FARS = (1e-2, 1e-3)
_FAR_KEYS = {1e-2: "0.01", 1e-3: "0.001"}
_LABELS = {"blurred": "Blurred", "restored": "Restored", "sharp_restored": "Sharp-restored", "sharp": "Sharp"}


# ------------------------------------------------------------------------------------- pairs


def labels_from_paths(paths) -> list[str]:
    """LFW layout ``<root>/<Person>/<Person>_NNNN.jpg`` -> ``Person`` for each path."""
    return [os.path.basename(os.path.dirname(os.path.abspath(os.fspath(p)))) for p in paths]


def _genuine_pairs(by_person, cap, rng):
    """All same-person pairs (i < j), or, over ``cap``, a person-balanced sample: rounds that each
    take one random unused pair from every person that has one left (random person order), so a
    person with 100 photos cannot fill the set."""
    pools = {p: list(combinations(ix, 2)) for p, ix in by_person.items() if len(ix) >= 2}
    total = sum(len(v) for v in pools.values())
    if total <= cap:
        return [pair for p in sorted(pools) for pair in pools[p]]
    for p in sorted(pools):
        order = rng.permutation(len(pools[p]))
        pools[p] = [pools[p][k] for k in order]
    out, depth = [], 0
    while len(out) < cap:
        alive = [p for p in sorted(pools) if len(pools[p]) > depth]
        for k in rng.permutation(len(alive)):
            if len(out) == cap:
                break
            out.append(pools[alive[k]][depth])
        depth += 1
    return out


def _impostor_pairs(labels, by_person, want, rng):
    """``want`` distinct different-person pairs: two persons drawn uniformly, then one image of
    each; all of them when fewer exist. The first image (the enrolment) is the first person's."""
    persons = sorted(by_person)
    n = len(labels)
    same = sum(len(ix) * (len(ix) - 1) // 2 for ix in by_person.values())
    possible = n * (n - 1) // 2 - same
    if len(persons) < 2 or want <= 0:
        return []
    if want >= possible:
        return [(i, j) for i, j in combinations(range(n), 2) if labels[i] != labels[j]]
    seen, out = set(), []
    attempts = 0
    while len(out) < want and attempts < 50 * want + 1000:
        attempts += 1
        pa, pb = rng.choice(len(persons), 2, replace=False)
        a = by_person[persons[pa]][rng.integers(len(by_person[persons[pa]]))]
        b = by_person[persons[pb]][rng.integers(len(by_person[persons[pb]]))]
        if (min(a, b), max(a, b)) not in seen:
            seen.add((min(a, b), max(a, b)))
            out.append((a, b))
    if len(out) < want:  # a few persons hold almost all images: finish from the full list
        rest = [(i, j) for i, j in combinations(range(n), 2) if labels[i] != labels[j] and (i, j) not in seen]
        out += [rest[k] for k in rng.permutation(len(rest))[: want - len(out)]]
    return out


def make_pairs(labels, max_genuine: int = 3000, seed: int = 0) -> np.ndarray:
    """Verification pairs over images labelled by person: int64 ``[P, 2]`` indices into ``labels``.

    Genuine pairs first (every same-person pair, person-balanced sample when over
    ``max_genuine``), then as many impostor pairs (different persons). An image is never paired
    with itself, no pair repeats, and the result depends only on ``labels`` and ``seed``.
    """
    labels = [str(x) for x in labels]
    rng = np.random.default_rng(seed)
    by_person = defaultdict(list)
    for i, person in enumerate(labels):
        by_person[person].append(i)
    genuine = _genuine_pairs(by_person, int(max_genuine), rng)
    impostor = _impostor_pairs(labels, by_person, len(genuine), rng)
    return np.asarray(genuine + impostor, np.int64).reshape(-1, 2)


def _genuine(labels, pairs) -> np.ndarray:
    labels = np.asarray([str(x) for x in labels])
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return labels[pairs[:, 0]] == labels[pairs[:, 1]]


# ------------------------------------------------------------------------------- embeddings


def embed_conditions(recognizer, images_by_condition: dict, boxes=None, pairs=None) -> dict:
    """``{condition: float32 [N, D]}``: every image that some pair uses (all when ``pairs`` is
    None) embedded once per condition, with ``boxes[i]`` (from the sharp image) for each
    condition of image ``i``. Rows of unused images are NaN."""
    n = len(next(iter(images_by_condition.values())))
    used = np.arange(n) if pairs is None else np.unique(np.asarray(pairs, np.int64))
    out = {}
    for cond, images in images_by_condition.items():
        if len(images) != n:
            raise ValueError(f"condition {cond!r} has {len(images)} images, expected {n}")
        rows = recognizer.embed([images[i] for i in used], None if boxes is None else [boxes[i] for i in used])
        full = np.full((n, rows.shape[1]), np.nan, np.float32)
        full[used] = rows
        out[cond] = full
    return out


def _distance(a, b) -> np.ndarray:
    """Euclidean distance per row; a NaN row (not embedded) gives +inf, i.e. never a match."""
    d = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)
    return np.where(np.isfinite(d), d, np.inf)


def identity_distances(embeddings_by_condition: dict, labels, pairs) -> dict:
    """``{"genuine": bool [P], "probe": {condition: [P]}, "both": {condition: [P]}}`` distances.
    ``probe`` needs the ``sharp`` embeddings (the enrolment photos)."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    first, second = pairs[:, 0], pairs[:, 1]
    emb = embeddings_by_condition
    conds = [c for c in CONDITIONS if c in emb] + [c for c in emb if c not in CONDITIONS]
    out = {"genuine": _genuine(labels, pairs), "probe": {}, "both": {}}
    for c in conds:
        out["both"][c] = _distance(emb[c][first], emb[c][second])
        if "sharp" in emb:
            out["probe"][c] = _distance(emb["sharp"][first], emb[c][second])
    if not out["probe"]:
        del out["probe"]
    return out


def self_distances(embeddings_by_condition: dict, pairs) -> dict:
    """``{condition: [M]}``: each probe image's distance in the condition to its own sharp
    embedding (the second image of every pair, once each): how far blur, and then restoration,
    move a face from where its sharp photo sits. Empty without ``sharp``."""
    emb = embeddings_by_condition
    if "sharp" not in emb:
        return {}
    probes = np.unique(np.asarray(pairs, np.int64).reshape(-1, 2)[:, 1])
    return {c: _distance(emb["sharp"][probes], emb[c][probes]) for c in emb if c != "sharp"}


# ---------------------------------------------------------------------------------- metrics


def accuracy_at(distances, genuine, threshold: float) -> tuple[int, int]:
    """(correct, total): a pair is accepted as "same person" when its distance is <= threshold."""
    d, g = np.asarray(distances, np.float64), np.asarray(genuine, bool)
    return int(np.sum((d <= threshold) == g)), int(d.size)


def roc_auc(distances, genuine) -> float | None:
    """Area under the ROC curve = P(genuine distance < impostor distance), ties counting 1/2
    (Mann-Whitney U from average ranks). None without both kinds of pairs."""
    from scipy.stats import rankdata

    d, g = np.asarray(distances, np.float64), np.asarray(genuine, bool)
    n_g, n_i = int(g.sum()), int((~g).sum())
    if n_g == 0 or n_i == 0:
        return None
    ranks = rankdata(d)  # +inf (not embedded) ranks last, ties averaged
    u = ranks[~g].sum() - n_i * (n_i + 1) / 2.0  # impostor-over-genuine wins
    return float(u / (n_g * n_i))


def tar_at_far(distances, genuine, far: float) -> float | None:
    """True-accept rate at a false-accept rate.

    With ``m`` impostor distances sorted ascending ``s[0] <= ... <= s[m-1]`` and ``k =
    floor(far * m)``, the threshold is ``t = s[k]`` (``+inf`` when ``k >= m``) and a pair is
    accepted when its distance is strictly below ``t``: at most ``k`` impostors (a share <=
    ``far``) fall below it. TAR is the share of genuine distances below ``t``. With fewer than
    ``1 / far`` impostor pairs, ``k = 0``: TAR counts the genuine pairs closer than every impostor.
    None without both kinds of pairs.
    """
    d, g = np.asarray(distances, np.float64), np.asarray(genuine, bool)
    imp = np.sort(d[~g])
    if g.sum() == 0 or imp.size == 0:
        return None
    k = int(np.floor(far * imp.size + 1e-9))
    t = np.inf if k >= imp.size else imp[k]
    return float(np.mean(d[g] < t))


def roc_curve(distances, genuine) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, TAR) at every distinct threshold, accepting distances <= threshold, from (0, 0)."""
    d, g = np.asarray(distances, np.float64), np.asarray(genuine, bool)
    ts = np.unique(d[np.isfinite(d)])
    imp, gen = np.sort(d[~g]), np.sort(d[g])
    far = np.searchsorted(imp, ts, side="right") / max(imp.size, 1)
    tar = np.searchsorted(gen, ts, side="right") / max(gen.size, 1)
    return np.concatenate([[0.0], far]), np.concatenate([[0.0], tar])


def gap_closed(blurred, restored, sharp) -> float | None:
    """(restored - blurred) / (sharp - blurred): 1 = restoration recovers everything blur lost,
    0 = nothing, < 0 = worse than blurred. None when the gap is 0 or a value is missing."""
    if blurred is None or restored is None or sharp is None or abs(sharp - blurred) < 1e-12:
        return None
    return float((restored - blurred) / (sharp - blurred))


def condition_metrics(distances, genuine, threshold: float) -> dict:
    from tfdeblur.evaluation import wilson_interval

    k, n = accuracy_at(distances, genuine, threshold)
    d, g = np.asarray(distances, np.float64), np.asarray(genuine, bool)
    return {
        "accuracy": k / n if n else None,
        "accuracy_ci95": list(wilson_interval(k, n)),
        "auc": roc_auc(distances, genuine),
        "tar_at_far": {_FAR_KEYS[f]: tar_at_far(distances, genuine, f) for f in FARS},
        # which side of the threshold moved: accuracy alone mixes both error kinds
        "accepted": {kind: float(np.mean(d[m] <= threshold)) if m.any() else None
                     for kind, m in (("genuine", g), ("impostor", ~g))},
        "median_distance": {kind: float(np.median(d[m])) if m.any() else None
                            for kind, m in (("genuine", g), ("impostor", ~g))},
    }


def _protocol_metrics(dist: dict, genuine, threshold) -> dict:
    from tfdeblur.evaluation import mcnemar_test

    conds = {c: condition_metrics(d, genuine, threshold) for c, d in dist.items()}

    def gap(get):
        vals = [get(conds[c]) if c in conds else None for c in ("blurred", "restored", "sharp")]
        return gap_closed(*vals)

    p = None
    if "blurred" in dist and "restored" in dist and genuine.any():  # accept/reject on genuine pairs
        p = mcnemar_test(dist["blurred"][genuine] <= threshold, dist["restored"][genuine] <= threshold)["p"]
    return {
        "conditions": conds,
        "gap_closed": {"accuracy": gap(lambda m: m["accuracy"]),
                       "tar_at_far_0.001": gap(lambda m: m["tar_at_far"]["0.001"])},
        "mcnemar_p": p,
    }


def identity_metrics(embeddings_by_condition: dict, labels, pairs, threshold: float, recognizer_name: str) -> dict:
    """metrics.json's ``identity`` entry::

        {"recognizer": str, "pairs": {"genuine": int, "impostor": int},
         "protocols": {"probe"|"both": {"conditions": {condition: {"accuracy", "accuracy_ci95",
                       "auc", "tar_at_far": {"0.01", "0.001"}}},
                       "gap_closed": {"accuracy", "tar_at_far_0.001"}, "mcnemar_p"}}}

    ``mcnemar_p``: exact McNemar test of blurred vs restored accept/reject over the genuine pairs.
    Beside them, ``self_distance``: ``{"images": int, "median": {condition: f}}``, the median
    distance of a probe image in each condition to its own sharp embedding (:func:`self_distances`).
    """
    dist = identity_distances(embeddings_by_condition, labels, pairs)
    genuine = dist["genuine"]
    out = {
        "recognizer": str(recognizer_name),
        "pairs": {"genuine": int(genuine.sum()), "impostor": int((~genuine).sum())},
        "protocols": {p: _protocol_metrics(dist[p], genuine, threshold) for p in PROTOCOLS if p in dist},
    }
    own = self_distances(embeddings_by_condition, pairs)
    if own:
        finite = {c: d[np.isfinite(d)] for c, d in own.items()}
        out["self_distance"] = {"images": int(len(next(iter(own.values())))),
                                "median": {c: float(np.median(d)) if len(d) else None for c, d in finite.items()}}
    return out


# --------------------------------------------------------------------------- figure, report


def roc_figure(distances: dict, output_dir, prefix: str = "identity_roc") -> list[str]:
    """One ROC figure per protocol (``<prefix>_<protocol>.png``, a curve per condition, FAR on a
    log axis) from :func:`identity_distances`; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(output_dir, exist_ok=True)
    genuine = distances["genuine"]
    floor = 1.0 / max(int((~genuine).sum()), 1)
    paths = []
    for protocol in PROTOCOLS:
        if protocol not in distances:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        for cond, d in distances[protocol].items():
            far, tar = roc_curve(d, genuine)
            auc = roc_auc(d, genuine)
            label = f"{_LABELS.get(cond, cond)} (AUC {'n/a' if auc is None else f'{auc:.3f}'})"
            ax.step(np.maximum(far, floor), tar, where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlim(floor, 1.0)
        ax.set_ylim(0.0, 1.01)
        ax.set_xlabel("false accept rate (impostor pairs)")
        ax.set_ylabel("true accept rate (genuine pairs)")
        ax.set_title(f"Face verification ROC, {protocol} protocol")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        path = os.path.join(output_dir, f"{prefix}_{protocol}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x):
    return "n/a" if x is None else f"{x:.3f}"


def _table_rows(protocol: str, entry: dict) -> list[str]:
    rows = []
    for cond in [c for c in CONDITIONS if c in entry["conditions"]]:
        m = entry["conditions"][cond]
        lo, hi = m["accuracy_ci95"]
        auc = "n/a" if m["auc"] is None else f"{m['auc']:.3f}"
        acc, med = m.get("accepted") or {}, m.get("median_distance") or {}
        sides = (f" {_pct(acc.get('genuine'))} / {_pct(acc.get('impostor'))} | {_num(med.get('genuine'))} / "
                 f"{_num(med.get('impostor'))} |")
        rows.append(f"| {protocol} | {_LABELS[cond]} | {_pct(m['accuracy'])} [{100 * lo:.1f}, {100 * hi:.1f}] | {auc} "
                    f"| {_pct(m['tar_at_far']['0.01'])} | {_pct(m['tar_at_far']['0.001'])} |" + sides)
    return rows


def report_lines(identity: dict) -> list[str]:
    """Markdown for report.md: a table per protocol and condition, gap closed, and one line of meaning."""
    pairs = identity["pairs"]
    lines = [f"Identity ({identity['recognizer']} recognizer, {pairs['genuine']} genuine + {pairs['impostor']} "
             "impostor pairs; `probe`: sharp enrolment photo vs probe in the condition, `both`: both in it):", "",
             "| Protocol | Condition | Accuracy [95% CI] | AUC | TAR@FAR 1e-2 | TAR@FAR 1e-3 "
             "| Accepted at the threshold: genuine / impostor | Median distance: genuine / impostor |",
             "|---|---|---|---|---|---|---|---|"]
    for protocol, entry in identity["protocols"].items():
        lines += _table_rows(protocol, entry)
    lines.append("")
    for protocol, entry in identity["protocols"].items():
        g = entry["gap_closed"]
        p = entry["mcnemar_p"]
        lines.append(f"- {protocol}: restoration closes {_pct(g['accuracy'])} of the blurred-to-sharp accuracy gap "
                     f"and {_pct(g['tar_at_far_0.001'])} of the TAR@FAR 1e-3 gap; McNemar blurred vs restored on "
                     f"genuine pairs p = {'n/a' if p is None else f'{p:.2g}'}.")
    own = identity.get("self_distance")
    if own:
        cells = ", ".join(f"{_LABELS.get(c, c).lower()} {_num(v)}" for c, v in own["median"].items())
        lines.append(f"- Median distance of a probe to its own sharp photo ({own['images']} images): {cells}.")
    probe = identity["protocols"].get("probe")
    if probe and probe["gap_closed"]["accuracy"] is not None:
        acc = {c: probe["conditions"][c]["accuracy"] for c in ("blurred", "restored", "sharp")}
        lines += ["", f"Meaning: matching a probe against a sharp enrolment photo, restoration wins back "
                      f"{_pct(probe['gap_closed']['accuracy'])} of the verification accuracy that blur cost "
                      f"({_pct(acc['blurred'])} blurred, {_pct(acc['restored'])} restored, {_pct(acc['sharp'])} sharp); "
                      "finding a face again is not the same as keeping whose face it is."]
    return lines
