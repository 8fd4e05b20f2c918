"""Face-detection evaluation of deblurring generators (Fan & Luo, Table 1, and more).

For every image we form four conditions:

* ``sharp``          the sharp face;
* ``blurred``        the sharp face blurred with the fixed "eval" preset (or a supplied blurred twin);
* ``restored``       the generator applied to ``blurred``;
* ``sharp_restored`` the generator applied to ``sharp`` (does it harm faces that need no help?).

Each condition is scored with MTCNN (the paper's detector) and with an independent second detector
(BlazeFace, see :mod:`tfdeblur.detectors`):

* ``failure_rate``: share of images where no face is found, with a 95% Wilson interval;
* ``confidence_mean``: mean confidence of the best detection, over images with a detection;
* ``recall`` / ``false_positives`` at IoU >= 0.5 against reference boxes: hand-labelled boxes
  when the dataset has them, otherwise (single-face crops such as LFW) the same detector's best
  detection on the sharp image;
* ``landmark_nme``: landmark error against the same detector's landmarks on the sharp image,
  normalised by the inter-ocular distance;
* ``psnr`` / ``ssim`` against the sharp image (``tf.image``).

Across conditions, McNemar's exact test compares paired detection success (blurred vs restored,
and model vs model).

Modules: :mod:`~tfdeblur.evaluation.datasets` (what is evaluated), :mod:`~.matching` (boxes),
:mod:`~.statistics`, :mod:`~.metrics` (per condition), :mod:`~.runner` (:func:`evaluate_models`),
:mod:`~.report` and :mod:`~.figures`. The command line is :mod:`tfdeblur.commands.evaluate`
(``python evaluate.py``). Every public name is importable from ``tfdeblur.evaluation``.
"""

from tfdeblur.evaluation.common import (
    CONDITIONS, EVAL_SIZE, IOU_THRESHOLD, PAPER_TABLE1, REPORT_ROWS, EvaluationError,
)
from tfdeblur.evaluation.datasets import (
    EvalData, load_data_dir, load_ground_truth, load_imglab_xml, load_pairs_dir, match_pairs, stem_key,
    synthesize_blur,
)
from tfdeblur.evaluation.matching import (
    detection_references, greedy_match, iou, iou_matrix, landmark_nme, match_detections,
)
from tfdeblur.evaluation.metrics import condition_metrics, image_quality
from tfdeblur.evaluation.report import write_report
from tfdeblur.evaluation.runner import ModelRun, deblur_images, evaluate_models, load_models, model_measures
from tfdeblur.evaluation.statistics import mcnemar_exact, mcnemar_test, mean_ci95, paired_difference, wilson_interval

__all__ = [
    "EVAL_SIZE",
    "IOU_THRESHOLD",
    "REPORT_ROWS",
    "CONDITIONS",
    "PAPER_TABLE1",
    "EvaluationError",
    "EvalData",
    "wilson_interval",
    "mcnemar_exact",
    "mcnemar_test",
    "iou",
    "iou_matrix",
    "greedy_match",
    "match_detections",
    "landmark_nme",
    "detection_references",
    "image_quality",
    "mean_ci95",
    "paired_difference",
    "load_imglab_xml",
    "stem_key",
    "match_pairs",
    "synthesize_blur",
    "load_data_dir",
    "load_pairs_dir",
    "load_ground_truth",
    "load_models",
    "deblur_images",
    "condition_metrics",
    "evaluate_models",
    "ModelRun",
    "model_measures",
    "write_report",
]

