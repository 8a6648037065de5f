"""Classification metrics: confusion matrix, accuracy, per-class and macro precision/recall/F1,
and binary ROC / AUC computed by ranking (Mann-Whitney U), without scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ai_engine.evaluate.errors import EvaluationError


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # reference cases of this class


@dataclass(frozen=True)
class ClassificationMetrics:
    class_names: tuple[str, ...]
    accuracy: float
    per_class: tuple[ClassMetrics, ...]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    confusion: tuple[tuple[int, ...], ...]  # rows = reference class, columns = predicted class


@dataclass(frozen=True)
class RocCurve:
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    thresholds: tuple[float, ...]  # first is +inf (nothing called positive)
    auc: float


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``[n_classes, n_classes]`` counts; row = reference class, column = predicted class."""
    t, p = _int_labels(y_true, "y_true"), _int_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise EvaluationError(f"y_true has {t.size} labels but y_pred has {p.size}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise EvaluationError(f"{name} has a label outside 0..{n_classes - 1}")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (t, p), 1)
    return matrix


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]
) -> ClassificationMetrics:
    """Accuracy and per-class / macro precision, recall, F1 (0 where undefined, as 0/0)."""
    m = confusion_matrix(y_true, y_pred, len(class_names))
    if m.sum() == 0:
        raise EvaluationError("no cases to evaluate (y_true is empty)")
    per_class = tuple(_class_metrics(m, i, name) for i, name in enumerate(class_names))
    return ClassificationMetrics(
        class_names=tuple(class_names),
        accuracy=float(np.trace(m) / m.sum()),
        per_class=per_class,
        macro_precision=float(np.mean([c.precision for c in per_class])),
        macro_recall=float(np.mean([c.recall for c in per_class])),
        macro_f1=float(np.mean([c.f1 for c in per_class])),
        confusion=tuple(tuple(int(v) for v in row) for row in m),
    )


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Binary ROC AUC = P(score of a positive > score of a negative), ties counting 1/2."""
    y, s = _binary(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    ranks = average_ranks(s)  # ties share their mean rank: half credit per tied pair
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_interval(labels: Sequence[int], scores: Sequence[float], n_samples: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC AUC. Cases are resampled within each class, so every
    sample keeps both classes and their counts."""
    y, s = _binary(labels, scores)
    pos, neg = s[y], s[~y]
    classes = np.r_[np.ones(pos.size, int), np.zeros(neg.size, int)]  # every sample's labels, in draw order
    rng = np.random.default_rng(seed)
    aucs = np.sort([roc_auc(classes, np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
                    for _ in range(n_samples)])
    lower, upper = percentile_bounds(aucs, confidence)
    return float(lower), float(upper)


def percentile_bounds(ordered: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """LUNA16's compute_mean_ci bounds: of samples sorted along axis 0, those at floor(Pz·n) and
    floor((1-Pz)·n), Pz = (1 - confidence) / 2."""
    n = ordered.shape[0]
    pz = (1.0 - confidence) / 2.0
    return ordered[int(np.floor(pz * n))], ordered[min(int(np.floor((1.0 - pz) * n)), n - 1)]


def roc_curve(labels: Sequence[int], scores: Sequence[float]) -> RocCurve:
    """ROC points at every distinct score threshold (score >= threshold is positive)."""
    y, s = _binary(labels, scores)
    fps, tps, thresholds = cumulative_counts(y, s)
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    return RocCurve(tuple(fpr.tolist()), tuple(tpr.tolist()), tuple(thresholds.tolist()),
                    roc_auc(labels, scores))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values getting the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    starts = np.r_[0, np.flatnonzero(np.diff(values[order])) + 1]
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def cumulative_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False/true positive counts at each distinct threshold, highest first, starting at (0, 0).

    Collinear intermediate points are dropped as scikit-learn's ``roc_curve`` does by default
    (``drop_intermediate=True``), so curves match the LUNA16 script point for point.
    """
    order = np.argsort(s, kind="mergesort")[::-1]
    s_sorted, y_sorted = s[order], y[order].astype(np.float64)
    idx = np.r_[np.where(np.diff(s_sorted))[0], y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[idx]
    fps = 1 + idx - tps
    thresholds = s_sorted[idx]
    if fps.size > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    return np.r_[0.0, fps], np.r_[0.0, tps], np.r_[np.inf, thresholds]


def _class_metrics(m: np.ndarray, i: int, name: str) -> ClassMetrics:
    tp, predicted, actual = m[i, i], m[:, i].sum(), m[i, :].sum()
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassMetrics(name, float(precision), float(recall), float(f1), int(actual))


def _int_labels(values: Sequence[int], name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise EvaluationError(f"{name} must be a 1-D sequence of integer class indices")
    return arr.astype(np.int64)


def _binary(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise EvaluationError(f"labels {y.shape} and scores {s.shape} must be equal-length 1-D")
    if not np.isin(y, (0, 1)).all():
        raise EvaluationError("labels must be 0 or 1 for a binary ROC")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise EvaluationError("ROC needs at least one positive and one negative label")
    return y, s
