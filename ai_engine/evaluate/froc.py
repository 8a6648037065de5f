"""FROC curve and CPM exactly as LUNA16 computes them (noduleCADEvaluationLUNA16.py).

computeFROC: the ROC of the non-excluded candidates (one entry per hit nodule at its best
probability, one per false positive), rescaled: FPs/scan = FPR x (#candidates - #hit nodules) /
#scans and sensitivity = TPR x #hit nodules / #nodules (missed nodules in the denominator).
The FROC is read off this curve by linear interpolation (``np.interp``, flat beyond its ends);
CPM is the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 FPs per scan.

computeFROC_bootstrap: resample scans with replacement, recompute the FROC of each sample, read
it at 10,000 points from 1/8 to 8 FPs/scan, and take the mean and the order-statistic
confidence bounds at each point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ai_engine.evaluate.classification import cumulative_counts, percentile_bounds
from ai_engine.evaluate.detection import DetectionMatch

LUNA16_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class FrocCurve:
    fps_per_scan: tuple[float, ...]
    sensitivity: tuple[float, ...]
    thresholds: tuple[float, ...]  # first is +inf

    def sensitivity_at(self, fps_per_scan: float) -> float:
        """Sensitivity interpolated at an average number of FPs per scan (as LUNA16)."""
        return float(np.interp(fps_per_scan, self.fps_per_scan, self.sensitivity))


@dataclass(frozen=True)
class Cpm:
    """Competition Performance Metric: mean of ``sensitivities`` at ``fp_rates``."""

    fp_rates: tuple[float, ...]
    sensitivities: tuple[float, ...]
    score: float


def froc_curve(match: DetectionMatch) -> FrocCurve:
    """LUNA16 ``computeFROC`` on the vectors of :func:`~ai_engine.evaluate.match_candidates`."""
    fps, sens, thresholds = _froc_arrays(*_vectors(match), match.n_scans)
    return FrocCurve(tuple(fps.tolist()), tuple(sens.tolist()), tuple(thresholds.tolist()))


def _vectors(match: DetectionMatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array(match.is_nodule, dtype=bool), np.array(match.probability, dtype=np.float64),
            np.array(match.excluded, dtype=bool))


def _froc_arrays(gt: np.ndarray, prob: np.ndarray, excluded: np.ndarray,
                 n_scans: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, s = gt[~excluded], prob[~excluded]
    if y.size:
        fps, tps, thresholds = cumulative_counts(y, s)
    else:  # no candidates at all: a single point at the origin
        fps, tps, thresholds = np.zeros(1), np.zeros(1), np.full(1, np.inf)
    n_nodules = int(gt.sum())
    # fps / #scans == FPR x #FP candidates / #scans; tps / #nodules == TPR x #hit / #nodules.
    sens = tps / n_nodules if n_nodules else np.zeros_like(tps)
    return fps / n_scans, sens, thresholds


def cpm(curve: FrocCurve, fp_rates: tuple[float, ...] = LUNA16_FP_RATES) -> Cpm:
    """Mean sensitivity at ``fp_rates`` (default LUNA16's seven) on the interpolated FROC."""
    sens = tuple(curve.sensitivity_at(r) for r in fp_rates)
    return Cpm(tuple(fp_rates), sens, float(np.mean(sens)))


@dataclass(frozen=True)
class FrocBootstrap:
    """Bootstrapped FROC on LUNA16's grid: mean and confidence bounds of the sensitivity."""

    fps_per_scan: tuple[float, ...]
    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    n_samples: int
    confidence: float

    def cpm(self, fp_rates: tuple[float, ...] = LUNA16_FP_RATES) -> Cpm:
        """CPM of the mean bootstrapped curve."""
        sens = tuple(float(np.interp(r, self.fps_per_scan, self.mean)) for r in fp_rates)
        return Cpm(tuple(fp_rates), sens, float(np.mean(sens)))


def froc_bootstrap(match: DetectionMatch, n_samples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> FrocBootstrap:
    """LUNA16 ``computeFROC_bootstrap``: scans resampled with replacement ``n_samples`` times."""
    gt, prob, excluded = _vectors(match)
    scans = np.array(match.scan, dtype=object)
    by_scan = [np.flatnonzero(scans == uid) for uid in match.seriesuids]
    grid = np.linspace(LUNA16_FP_RATES[0], LUNA16_FP_RATES[-1], num=10000)
    rng = np.random.default_rng(seed)
    curves = np.empty((n_samples, grid.size))
    for i in range(n_samples):
        picked = rng.integers(match.n_scans, size=match.n_scans)
        idx = np.concatenate([by_scan[j] for j in picked] + [np.zeros(0, dtype=np.int64)])
        fps, sens, _ = _froc_arrays(gt[idx], prob[idx], excluded[idx], match.n_scans)
        curves[i] = np.interp(grid, fps, sens)
    return _summarise(grid, curves, confidence)


def _summarise(grid: np.ndarray, curves: np.ndarray, confidence: float) -> FrocBootstrap:
    """LUNA16's compute_mean_ci: mean, and the sorted samples at floor(Pz·n), floor((1-Pz)·n)."""
    ordered = np.sort(curves, axis=0)
    lower, upper = percentile_bounds(ordered, confidence)
    return FrocBootstrap(tuple(grid.tolist()), tuple(ordered.mean(axis=0).tolist()),
                         tuple(lower.tolist()), tuple(upper.tolist()), ordered.shape[0], confidence)
