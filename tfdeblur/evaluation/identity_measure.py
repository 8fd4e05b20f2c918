"""The identity measure of ``evaluate.py --identity dlib``: verification pairs of the evaluated
persons, embedded by an independent recognizer in every condition (see :mod:`tfdeblur.identity`).

A per-model measure for :func:`tfdeblur.evaluation.evaluate_models` (``measures=[...]``): the sharp
and blurred embeddings are computed once and shared by all models; each face is embedded from
MTCNN's best box on the *sharp* image (the evaluation has it already), in every condition.
"""

from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["IdentityMeasure", "person_of_name", "identity_between_models", "save_distances", "write_identity_report"]


def person_of_name(name: str) -> str:
    """The person of an evaluated image named ``Person/Person_0001`` (LFW layout): its folder."""
    parts = name.replace(os.sep, "/").split("/")
    return parts[-2] if len(parts) > 1 else parts[0].rsplit("_", 1)[0]


class IdentityMeasure:
    """``measure(run) -> {"identity": ...}`` for each model; ``distances`` keeps the last model's
    pair distances (for the ROC figures)."""

    def __init__(self, recognizer, max_genuine: int = 3000, seed: int = 0, verbose: int = 1):
        self.recognizer, self.max_genuine, self.seed, self.verbose = recognizer, max_genuine, seed, verbose
        self._shared = None  # (labels, pairs, boxes, sharp/blurred embeddings)
        self.distances = {}

    def _prepare(self, run):
        from tfdeblur import identity
        from tfdeblur.recognizers import best_face_boxes

        labels = [person_of_name(n) for n in run.data.names]
        pairs = identity.make_pairs(labels, max_genuine=self.max_genuine, seed=self.seed)
        boxes = best_face_boxes(run.faces["mtcnn"]["sharp"])
        if self.verbose:
            print(f"identity: {len(pairs)} pairs of {len(set(labels))} persons, embedding with "
                  f"{self.recognizer.name}", file=sys.stderr, flush=True)
        emb = identity.embed_conditions(self.recognizer, {"sharp": run.data.sharp, "blurred": run.data.blurred},
                                        boxes, pairs)
        self._shared = (labels, pairs, boxes, emb)

    def __call__(self, run) -> dict:
        from tfdeblur import identity

        if self._shared is None:
            self._prepare(run)
        labels, pairs, boxes, shared = self._shared
        if len(pairs) == 0:
            return {"identity": None}
        own = identity.embed_conditions(self.recognizer, {"restored": run.restored, "sharp_restored": run.sharp_restored},
                                        boxes, pairs)
        emb = {**shared, **own}
        self.distances[run.name] = identity.identity_distances(emb, labels, pairs)
        return {"identity": identity.identity_metrics(emb, labels, pairs, self.recognizer.threshold,
                                                      self.recognizer.name)}


def identity_between_models(measure: IdentityMeasure, models) -> dict:
    """For every pair of models A, B: the ``probe`` protocol's restored condition on the same pairs,
    McNemar exact on correct decisions over all pairs and on accepts over the genuine pairs
    (``b``: only A right / accepted, ``c``: only B), and the accuracies."""
    from tfdeblur.evaluation.statistics import mcnemar_test

    threshold = measure.recognizer.threshold
    have = [m for m in models if m in measure.distances and "probe" in measure.distances[m]]
    out = {}
    for i, a in enumerate(have):
        for b in have[i + 1 :]:
            da, db = measure.distances[a], measure.distances[b]
            genuine = np.asarray(da["genuine"], bool)
            accept_a = da["probe"]["restored"] <= threshold
            accept_b = db["probe"]["restored"] <= threshold
            correct_a, correct_b = accept_a == genuine, accept_b == genuine
            out[f"{a} vs {b}"] = {
                "probe_restored_accuracy": [float(correct_a.mean()), float(correct_b.mean())],
                "correct": mcnemar_test(correct_a, correct_b),
                "genuine_accepted": mcnemar_test(accept_a[genuine], accept_b[genuine]),
            }
    return out


def save_distances(distances_by_model: dict, output_dir) -> str:
    """``identity_distances.npz``: ``genuine`` (bool per pair) and ``<model>|<protocol>|<condition>``
    (distance per pair), so that later analyses need no second embedding run."""
    arrays = {}
    for model, dist in distances_by_model.items():
        arrays["genuine"] = np.asarray(dist["genuine"], bool)  # the same pairs for every model
        for protocol in ("probe", "both"):
            for cond, d in dist.get(protocol, {}).items():
                arrays[f"{model}|{protocol}|{cond}"] = np.asarray(d, np.float32)
    path = os.path.join(output_dir, "identity_distances.npz")
    np.savez_compressed(path, **arrays)
    return path


def write_identity_report(metrics: dict, measure: IdentityMeasure, output_dir) -> list[str]:
    """Append the identity table to report.md and write the ROC figures of the first model."""
    from tfdeblur import identity

    entry = metrics.get("identity")
    if not entry:
        return []
    first = metrics["models"][0]
    written = identity.roc_figure(measure.distances[first], output_dir) if first in measure.distances else []
    with open(os.path.join(output_dir, "report.md"), "a") as f:
        f.write("\n" + "\n".join(identity.report_lines(entry)) + "\n")
        between = metrics.get("identity_between_models") or {}
        if between:
            f.write("\n## Identity between models (probe protocol, restored; McNemar exact on the same pairs)\n\n"
                    "| Models | Accuracy A / B | Correct: only A / only B | p | Genuine accepted: only A / only B | p |\n"
                    "|---|---|---|---|---|---|\n")
            for name, t in between.items():
                acc, c, g = t["probe_restored_accuracy"], t["correct"], t["genuine_accepted"]
                f.write(f"| {name} | {acc[0]:.1%} / {acc[1]:.1%} | {c['b']} / {c['c']} | {c['p']:.3g} "
                        f"| {g['b']} / {g['c']} | {g['p']:.3g} |\n")
        for path in written:
            f.write(f"\n![{os.path.basename(path)}]({os.path.basename(path)})\n")
    if measure.distances:
        written.append(save_distances(measure.distances, output_dir))
    return written
