"""Evaluation: Dice, LUNA16 detection matching / FROC / CPM, classification metrics, reports.

Public API (stable)::

    from ai_engine.evaluate import (...)

    # segmentation
    dice(prediction: ndarray, reference: ndarray) -> float           # both empty -> 1.0
    dice_per_nodule(prediction, reference) -> tuple[NoduleDice, ...]
        NoduleDice(label, dice, detected, volume_voxels); reference = label map or binary mask

    # detection (LUNA16 noduleCADEvaluationLUNA16.py rules, world mm)
    Annotation(seriesuid, x_mm, y_mm, z_mm, diameter_mm)
    Candidate(seriesuid, x_mm, y_mm, z_mm, probability)
    match_candidates(annotations, candidates, seriesuids, irrelevant=()) -> DetectionMatch
        hit = candidate strictly within diameter/2 of the centre; one TP per nodule (its best
        probability); other hits ignored; hits on ``irrelevant`` findings ignored (diameter < 0
        -> 10 mm); all else FP. DetectionMatch: true_positives, false_positives,
        false_negatives, double_detections_ignored, irrelevant_ignored, n_scans, n_nodules,
        sensitivity, and the FROC vectors.
    froc_curve(match) -> FrocCurve(fps_per_scan, sensitivity, thresholds); .sensitivity_at(fps)
    cpm(curve, fp_rates=LUNA16_FP_RATES) -> Cpm(fp_rates, sensitivities, score)
        LUNA16_FP_RATES = (0.125, 0.25, 0.5, 1, 2, 4, 8); np.interp on the FROC as LUNA16.
    froc_bootstrap(match, n_samples=1000, confidence=0.95, seed=0) -> FrocBootstrap
        LUNA16's computeFROC_bootstrap (scans resampled); FrocBootstrap(fps_per_scan grid,
        mean, lower, upper, n_samples, confidence); .cpm() of the mean curve
    evaluate_detection(annotations, candidates, seriesuids, irrelevant=(), bootstrap_samples=0,
                       seed=0) -> DetectionResult
        DetectionResult(match, froc, cpm, bootstrap=None); .sensitivity_at_1_fp

    # classification
    confusion_matrix(y_true, y_pred, n_classes) -> ndarray   # rows reference, cols predicted
    classification_metrics(y_true, y_pred, class_names) -> ClassificationMetrics
        (accuracy, per_class: ClassMetrics(name, precision, recall, f1, support),
         macro_precision, macro_recall, macro_f1, confusion)
    roc_auc(labels, scores) -> float       # by ranking, ties count 1/2
    roc_auc_interval(labels, scores, n_samples=1000, confidence=0.95, seed=0) -> (lower, upper)
        # percentile bootstrap, cases resampled within each class
    roc_curve(labels, scores) -> RocCurve(fpr, tpr, thresholds, auc)
    evaluate_classification(task, y_true, y_pred, class_names, positive_scores=None, bootstrap_samples=0)
        -> ClassificationResult(task, metrics, roc, auc_interval)

    # report
    EvaluationResults(dataset: str, models: tuple[ModelInfo, ...], detection=None,
                      segmentation: SegmentationResult | None = None,
                      classification: tuple[ClassificationResult, ...] = (), extra={})
    SegmentationResult(case_dice: tuple[tuple[str, float], ...], nodule_dice=())
    write_report(results, out_dir, title) -> (json_path, md_path)
        report.json + report.md + froc.png / roc_<task>.png / confusion_<task>.png; states
        "Models trained on synthetic phantoms" (+ SYNTHETIC_DISCLAIMER) when any ModelInfo is
        synthetic, and lists every model card (pass ``card.model_info()`` of each
        ai_engine.models.ModelCard).

Errors: EvaluationError (ValueError) names the offending input.
"""

from ai_engine.evaluate.classification import (
    ClassificationMetrics,
    ClassMetrics,
    RocCurve,
    classification_metrics,
    confusion_matrix,
    roc_auc,
    roc_auc_interval,
    roc_curve,
)
from ai_engine.evaluate.detection import Annotation, Candidate, DetectionMatch, match_candidates
from ai_engine.evaluate.errors import EvaluationError
from ai_engine.evaluate.froc import (
    LUNA16_FP_RATES,
    Cpm,
    FrocBootstrap,
    FrocCurve,
    cpm,
    froc_bootstrap,
    froc_curve,
)
from ai_engine.evaluate.report import SYNTHETIC_STATEMENT, write_report
from ai_engine.evaluate.results import (
    ClassificationResult,
    DetectionResult,
    EvaluationResults,
    SegmentationResult,
    evaluate_classification,
    evaluate_detection,
)
from ai_engine.evaluate.segmentation import NoduleDice, dice, dice_per_nodule

__all__ = [
    "LUNA16_FP_RATES", "SYNTHETIC_STATEMENT", "Annotation", "Candidate", "ClassMetrics",
    "ClassificationMetrics", "ClassificationResult", "Cpm", "DetectionMatch", "DetectionResult",
    "EvaluationError", "EvaluationResults", "FrocBootstrap", "FrocCurve", "NoduleDice", "RocCurve",
    "SegmentationResult", "classification_metrics", "confusion_matrix", "cpm", "dice",
    "dice_per_nodule", "evaluate_classification", "evaluate_detection", "froc_bootstrap", "froc_curve",
    "match_candidates", "roc_auc", "roc_auc_interval", "roc_curve", "write_report",
]
