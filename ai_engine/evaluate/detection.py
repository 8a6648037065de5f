"""Nodule detection scoring, LUNA16's rule (noduleCADEvaluationLUNA16.py, evaluateCAD).

A candidate hits a nodule when its centre lies strictly within R = diameter/2 of the annotated
centre (world mm). Per nodule the highest-probability hit is kept as the true positive and the
other hits are ignored (double detections); a candidate within an *irrelevant* finding (LUNA16's
``annotations_excluded.csv``; diameter < 0 means 10 mm) is ignored; every other candidate is a
false positive. A missed nodule stays in the FROC denominator (LUNA16 adds it as an excluded
positive). Included nodules are matched before irrelevant findings, as in the script.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ai_engine.evaluate.errors import EvaluationError

IRRELEVANT_DEFAULT_DIAMETER_MM = 10.0  # LUNA16: "if diameter < 0.0: diameter = 10.0"


@dataclass(frozen=True)
class Annotation:
    """A reference nodule (annotations.csv row) or irrelevant finding (annotations_excluded.csv)."""

    seriesuid: str
    x_mm: float
    y_mm: float
    z_mm: float
    diameter_mm: float


@dataclass(frozen=True)
class Candidate:
    """A CAD mark: world centre and probability (the LUNA16 submission format)."""

    seriesuid: str
    x_mm: float
    y_mm: float
    z_mm: float
    probability: float


@dataclass(frozen=True)
class DetectionMatch:
    """LUNA16's FROC vectors and counts. ``excluded`` marks missed nodules (kept in the
    denominator only); ``missed`` lists them."""

    is_nodule: tuple[bool, ...]
    probability: tuple[float, ...]
    excluded: tuple[bool, ...]
    scan: tuple[str, ...]  # seriesuid of each entry (LUNA16's FPDivisorList)
    seriesuids: tuple[str, ...]
    true_positives: int
    false_positives: int
    false_negatives: int
    double_detections_ignored: int
    irrelevant_ignored: int
    missed: tuple[Annotation, ...] = ()

    @property
    def n_scans(self) -> int:
        return len(self.seriesuids)

    @property
    def n_nodules(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def sensitivity(self) -> float:
        """Fraction of nodules hit by any candidate (all thresholds)."""
        return self.true_positives / self.n_nodules if self.n_nodules else 0.0


@dataclass
class _Tally:
    gt: list[bool]
    prob: list[float]
    excl: list[bool]
    scan: list[str]
    counts: dict[str, int]
    missed: list[Annotation]


def match_candidates(
    annotations: Iterable[Annotation],
    candidates: Iterable[Candidate],
    seriesuids: Sequence[str],
    irrelevant: Iterable[Annotation] = (),
) -> DetectionMatch:
    """Score ``candidates`` on the scans ``seriesuids`` (scans without candidates count)."""
    if not seriesuids:
        raise EvaluationError("seriesuids is empty: FPs per scan needs at least one scan")
    nodules, ignored, cands = _by_scan(annotations), _by_scan(irrelevant), _by_scan(candidates)
    unknown = set(cands) - set(seriesuids)
    if unknown:
        raise EvaluationError(f"candidates for scans not in seriesuids: {sorted(unknown)[:3]}")
    tally = _Tally([], [], [], [], dict(tp=0, fp=0, fn=0, double=0, irrelevant=0), [])
    for uid in seriesuids:
        n_before = len(tally.gt)
        _score_scan(nodules.get(uid, []), ignored.get(uid, []), cands.get(uid, []), tally)
        tally.scan.extend([uid] * (len(tally.gt) - n_before))
    c = tally.counts
    return DetectionMatch(tuple(tally.gt), tuple(tally.prob), tuple(tally.excl), tuple(tally.scan),
                          tuple(seriesuids), c["tp"], c["fp"], c["fn"], c["double"], c["irrelevant"],
                          tuple(tally.missed))


def _score_scan(nodules: list[Annotation], ignored: list[Annotation],
                cands: list[Candidate], tally: _Tally) -> None:
    remaining = set(range(len(cands)))
    for nodule in nodules:
        hits = _hits(nodule, cands, nodule.diameter_mm)
        remaining -= set(hits)
        tally.counts["double"] += max(len(hits) - 1, 0)
        if hits:
            tally.counts["tp"] += 1
            _append(tally, True, max(cands[i].probability for i in hits), False)
        else:
            tally.counts["fn"] += 1
            tally.missed.append(nodule)
            _append(tally, True, -1e9, True)  # LUNA16's minProbValue, excluded from the ROC
    for finding in ignored:
        diameter = finding.diameter_mm if finding.diameter_mm >= 0 else IRRELEVANT_DEFAULT_DIAMETER_MM
        hits = set(_hits(finding, cands, diameter)) & remaining
        tally.counts["irrelevant"] += len(hits)
        remaining -= hits
    for i in sorted(remaining):
        tally.counts["fp"] += 1
        _append(tally, False, cands[i].probability, False)


def _hits(nodule: Annotation, cands: list[Candidate], diameter_mm: float) -> list[int]:
    if not cands:
        return []
    centre = np.array([nodule.x_mm, nodule.y_mm, nodule.z_mm])
    xyz = np.array([[c.x_mm, c.y_mm, c.z_mm] for c in cands])
    dist2 = ((xyz - centre) ** 2).sum(axis=1)
    return [int(i) for i in np.nonzero(dist2 < (diameter_mm / 2.0) ** 2)[0]]


def _append(tally: _Tally, gt: bool, prob: float, excluded: bool) -> None:
    tally.gt.append(gt)
    tally.prob.append(float(prob))
    tally.excl.append(excluded)


def _by_scan(items: Iterable) -> dict[str, list]:
    out: dict[str, list] = {}
    for item in items:
        out.setdefault(item.seriesuid, []).append(item)
    return out
