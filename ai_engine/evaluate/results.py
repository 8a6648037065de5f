"""What an evaluation run produced, ready for :func:`~ai_engine.evaluate.report.write_report`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ai_engine.evaluate.classification import (
    ClassificationMetrics,
    RocCurve,
    classification_metrics,
    roc_auc_interval,
    roc_curve,
)
from ai_engine.evaluate.detection import Annotation, Candidate, DetectionMatch, match_candidates
from ai_engine.evaluate.froc import Cpm, FrocBootstrap, FrocCurve, cpm, froc_bootstrap, froc_curve
from ai_engine.evaluate.segmentation import NoduleDice
from ai_engine.findings import ModelInfo
from ai_engine.models.spec import InputSpec


@dataclass(frozen=True)
class DetectionResult:
    """``match``, ``froc``, ``cpm``: every candidate, as LUNA16 scores a system; ``operating_point``:
    the findings a user gets (candidates above the calibrated detection threshold), where known."""

    match: DetectionMatch
    froc: FrocCurve
    cpm: Cpm
    bootstrap: FrocBootstrap | None = None
    operating_point: DetectionMatch | None = None

    @property
    def sensitivity_at_1_fp(self) -> float:
        """Sensitivity at an average of 1 false positive per scan (interpolated, LUNA16)."""
        return self.froc.sensitivity_at(1.0)


@dataclass(frozen=True)
class SegmentationResult:
    case_dice: tuple[tuple[str, float], ...]  # (case id, Dice)
    nodule_dice: tuple[NoduleDice, ...] = ()

    @property
    def mean_case_dice(self) -> float:
        return float(np.mean([d for _, d in self.case_dice])) if self.case_dice else float("nan")

    @property
    def mean_detected_nodule_dice(self) -> float:
        values = [n.dice for n in self.nodule_dice if n.detected]
        return float(np.mean(values)) if values else float("nan")


@dataclass(frozen=True)
class ClassificationResult:
    task: str  # e.g. "malignancy", "subtype"
    metrics: ClassificationMetrics
    roc: RocCurve | None = None  # binary tasks with scores only
    auc_interval: tuple[float, float] | None = None  # 95% bootstrap interval of roc.auc, where asked for


@dataclass(frozen=True)
class EvaluationResults:
    dataset: str  # what was evaluated, e.g. "synthetic phantoms (seed 7, 20 scans)"
    models: tuple[ModelInfo, ...]
    detection: DetectionResult | None = None
    segmentation: SegmentationResult | None = None
    classification: tuple[ClassificationResult, ...] = ()
    extra: Mapping[str, float] = field(default_factory=dict)  # other computed numbers

    @property
    def synthetic_trained(self) -> bool:
        return any(m.synthetic for m in self.models)


def evaluate_detection(
    annotations: Iterable[Annotation],
    candidates: Iterable[Candidate],
    seriesuids: Sequence[str],
    irrelevant: Iterable[Annotation] = (),
    bootstrap_samples: int = 0,
    seed: int = 0,
    operating_point: Iterable[Candidate] | None = None,
) -> DetectionResult:
    """Match, FROC and CPM in one call (LUNA16 rules); optionally a bootstrapped FROC, and the
    match of ``operating_point``, the subset of ``candidates`` the system reports."""
    annotations, irrelevant = list(annotations), list(irrelevant)
    match = match_candidates(annotations, candidates, seriesuids, irrelevant)
    curve = froc_curve(match)
    boot = froc_bootstrap(match, bootstrap_samples, seed=seed) if bootstrap_samples else None
    point = None if operating_point is None else match_candidates(annotations, operating_point, seriesuids, irrelevant)
    return DetectionResult(match, curve, cpm(curve), boot, point)


def evaluate_classification(
    task: str,
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    positive_scores: Sequence[float] | None = None,
    bootstrap_samples: int = 0,
) -> ClassificationResult:
    """Metrics for one task; ``positive_scores`` (binary tasks) adds the ROC curve and AUC, and
    ``bootstrap_samples`` the AUC's 95% bootstrap interval."""
    metrics = classification_metrics(y_true, y_pred, class_names)
    roc = roc_curve(y_true, positive_scores) if positive_scores is not None else None
    interval = (roc_auc_interval(y_true, positive_scores, bootstrap_samples)
                if roc is not None and bootstrap_samples else None)
    return ClassificationResult(task, metrics, roc, interval)


def unet_description(spec: InputSpec, tta: bool) -> str:
    """How the run used the U-Net: its passes, its windows and their blending where they overlap."""
    flips = spec.tta_flips if tta else ()
    passes = f"the plain pass and {len(flips)} mirrored ones" if flips else "the plain pass only"
    windows = "z-slabs spanning the lung box" if spec.sw_windows == "slabs" else f"{_window_size(spec.patch)} windows"
    return f"U-Net: {passes}, {windows}, {spec.sw_blend} blending of overlapping windows"


def _window_size(patch: Sequence[int]) -> str:
    return f"{patch[0]}³" if len(set(patch)) == 1 else "×".join(str(p) for p in patch)


def operating_point_extras(detection: DetectionResult, seconds_per_scan: Sequence[float]) -> dict[str, float]:
    """The report's "other measurements" of a whole-scan run: speed and the pipeline's operating point
    (without a separate one, the candidates scored are the findings)."""
    point = detection.operating_point or detection.match
    return {"mean_seconds_per_scan": float(np.mean(seconds_per_scan)) if len(seconds_per_scan) else float("nan"),
            "fp_per_scan_at_operating_point": point.false_positives / max(point.n_scans, 1),
            "sensitivity_at_operating_point": point.sensitivity}
