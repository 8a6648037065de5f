"""Report figures (matplotlib's object API with the Agg canvas: no global backend switch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ai_engine.evaluate.classification import RocCurve
from ai_engine.evaluate.froc import LUNA16_FP_RATES, Cpm, FrocBootstrap, FrocCurve


def plot_froc(curve: FrocCurve, score: Cpm, path: Path, label: str,
              bootstrap: FrocBootstrap | None = None) -> Path:
    fig, ax = _figure()
    grid = np.linspace(LUNA16_FP_RATES[0], LUNA16_FP_RATES[-1], 2000)  # as LUNA16 plots it
    sens = np.interp(grid, curve.fps_per_scan, curve.sensitivity)
    ax.plot(grid, sens, lw=2, label=f"{label} (CPM {score.score:.3f})")
    if bootstrap is not None:
        ax.fill_between(bootstrap.fps_per_scan, bootstrap.lower, bootstrap.upper, alpha=0.15,
                        label=f"{bootstrap.confidence:.0%} bootstrap interval")
    ax.plot(score.fp_rates, score.sensitivities, "o")
    ax.set_xscale("log", base=2)
    ax.set_xlim(LUNA16_FP_RATES[0], LUNA16_FP_RATES[-1])
    ax.set_xticks(LUNA16_FP_RATES, [str(r) for r in LUNA16_FP_RATES])
    ax.set_ylim(0, 1)
    ax.set_xlabel("Average number of false positives per scan")
    ax.set_ylabel("Sensitivity")
    return _save(fig, ax, path, "FROC")


def plot_roc(roc: RocCurve, path: Path, label: str) -> Path:
    fig, ax = _figure()
    ax.plot(roc.fpr, roc.tpr, lw=2, label=f"{label} (AUC {roc.auc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    return _save(fig, ax, path, "ROC")


def plot_confusion(confusion: tuple[tuple[int, ...], ...], names: tuple[str, ...], path: Path) -> Path:
    fig, ax = _figure()
    ax.imshow(confusion, cmap="Blues")
    dark = max(max(row) for row in confusion) / 2
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > dark else "black")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Reference")
    return _save(fig, ax, path, "Confusion matrix", legend=False)


def _figure():
    fig = Figure(figsize=(6, 5), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Figure, ax, path: Path, title: str, legend: bool = True) -> Path:
    ax.set_title(title)
    if legend:
        ax.legend(loc="lower right")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path
