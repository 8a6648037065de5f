"""Evaluation report: one JSON file (every number) and one Markdown file (tables + figures).

A report of synthetic-trained models says so at the top ("Models trained on synthetic
phantoms") and lists every model card (name, version, sha256, profile, training data).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ai_engine.evaluate.detection import Annotation, DetectionMatch
from ai_engine.evaluate.results import ClassificationResult, DetectionResult, EvaluationResults
from ai_engine.findings import SYNTHETIC_DISCLAIMER

SYNTHETIC_STATEMENT = "Models trained on synthetic phantoms"


def write_report(results: EvaluationResults, out_dir: Path | str, title: str) -> tuple[Path, Path]:
    """Write ``report.json``, ``report.md`` and PNG figures into ``out_dir``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(results, out)
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(_clean(report_dict(results, title)), indent=2) + "\n")
    md_path.write_text(_markdown(results, title, figures))
    return json_path, md_path


def report_dict(results: EvaluationResults, title: str) -> dict:
    """Every computed number of ``results`` as plain JSON-able values."""
    return {
        "title": title,
        "dataset": results.dataset,
        "synthetic_trained": results.synthetic_trained,
        "statement": _statement(results),
        "models": [vars(m).copy() for m in results.models],
        "detection": _detection_dict(results.detection) if results.detection else None,
        "segmentation": _segmentation_dict(results),
        "classification": [_classification_dict(c) for c in results.classification],
        "extra": dict(results.extra),
    }


def _statement(results: EvaluationResults) -> str:
    if results.synthetic_trained:
        return f"{SYNTHETIC_STATEMENT}. {SYNTHETIC_DISCLAIMER}"
    return "RESEARCH USE ONLY - not for diagnostic use."


def _detection_dict(d: DetectionResult) -> dict:
    m = d.match
    return {
        "n_scans": m.n_scans, "n_nodules": m.n_nodules, "true_positives": m.true_positives,
        "false_positives": m.false_positives, "false_negatives": m.false_negatives,
        "double_detections_ignored": m.double_detections_ignored,
        "irrelevant_ignored": m.irrelevant_ignored, "sensitivity_all_candidates": m.sensitivity,
        "cpm": d.cpm.score,
        "sensitivity_at_fp_rates": dict(zip(map(str, d.cpm.fp_rates), d.cpm.sensitivities)),
        "sensitivity_at_1_fp_per_scan": d.sensitivity_at_1_fp,
        "froc": {"fps_per_scan": d.froc.fps_per_scan, "sensitivity": d.froc.sensitivity},
        "bootstrap": _bootstrap_dict(d),
        "missed_nodules": [vars(a).copy() for a in m.missed],
        "operating_point": _operating_point_dict(d.operating_point),
    }


def _operating_point_dict(m: DetectionMatch | None) -> dict | None:
    if m is None:
        return None
    return {"sensitivity": m.sensitivity, "fp_per_scan": m.false_positives / max(m.n_scans, 1),
            "true_positives": m.true_positives, "false_positives": m.false_positives,
            "missed_nodules": [vars(a).copy() for a in m.missed]}


def _bootstrap_dict(d: DetectionResult) -> dict | None:
    b = d.bootstrap
    if b is None:
        return None
    at = [min(range(len(b.fps_per_scan)), key=lambda i: abs(b.fps_per_scan[i] - r)) for r in d.cpm.fp_rates]
    return {
        "n_samples": b.n_samples, "confidence": b.confidence, "cpm_of_mean_curve": b.cpm().score,
        "sensitivity_lower": dict(zip(map(str, d.cpm.fp_rates), (b.lower[i] for i in at))),
        "sensitivity_upper": dict(zip(map(str, d.cpm.fp_rates), (b.upper[i] for i in at))),
    }


def _segmentation_dict(results: EvaluationResults) -> dict | None:
    s = results.segmentation
    if s is None:
        return None
    return {
        "mean_case_dice": s.mean_case_dice,
        "mean_detected_nodule_dice": s.mean_detected_nodule_dice,
        "case_dice": dict(s.case_dice),
        "nodule_dice": [vars(n).copy() for n in s.nodule_dice],
    }


def _classification_dict(c: ClassificationResult) -> dict:
    m = c.metrics
    out = {
        "task": c.task, "class_names": list(m.class_names), "accuracy": m.accuracy,
        "macro_precision": m.macro_precision, "macro_recall": m.macro_recall,
        "macro_f1": m.macro_f1, "per_class": [vars(pc).copy() for pc in m.per_class],
        "confusion_matrix": [list(r) for r in m.confusion],
    }
    if c.roc is not None:
        out["roc_auc"] = c.roc.auc
        out["roc"] = {"fpr": c.roc.fpr, "tpr": c.roc.tpr}
    if c.auc_interval is not None:
        out["roc_auc_interval_95"] = list(c.auc_interval)
    return out


def _figures(results: EvaluationResults, out: Path) -> dict[str, Path]:
    # matplotlib loads its font cache on import: only when a report is written.
    from ai_engine.evaluate.plots import plot_confusion, plot_froc, plot_roc

    figs: dict[str, Path] = {}
    if results.detection:
        d = results.detection
        figs["FROC"] = plot_froc(d.froc, d.cpm, out / "froc.png", "detection", d.bootstrap)
    for c in results.classification:
        slug = _slug(c.task)
        if c.roc is not None:
            figs[f"ROC - {c.task}"] = plot_roc(c.roc, out / f"roc_{slug}.png", c.task)
        figs[f"Confusion matrix - {c.task}"] = plot_confusion(
            c.metrics.confusion, c.metrics.class_names, out / f"confusion_{slug}.png"
        )
    return figs


def _markdown(results: EvaluationResults, title: str, figures: dict[str, Path]) -> str:
    lines = [f"# {title}", "", f"**{_statement(results)}**", "", f"Dataset: {results.dataset}", ""]
    lines += _models_md(results) + _detection_md(results.detection) + _segmentation_md(results)
    for c in results.classification:
        lines += _classification_md(c)
    if results.extra:
        lines += ["## Other measurements", ""] + [f"- {k}: {_f(v)}" for k, v in results.extra.items()] + [""]
    lines += ["## Figures", ""] + [f"![{name}]({path.name})" for name, path in figures.items()]
    return "\n".join(lines) + "\n"


def _models_md(results: EvaluationResults) -> list[str]:
    lines = ["## Model cards", "", "| model | version | sha256 | profile | trained on | synthetic |",
             "|---|---|---|---|---|---|"]
    for m in results.models:
        lines.append(f"| {m.name} | {m.version} | `{m.sha256[:16]}` | {m.profile} | {m.trained_on} | "
                     f"{'yes' if m.synthetic else 'no'} |")
    return lines + ([""] if results.models else ["(no model cards given)", ""])


def _detection_md(d: DetectionResult | None) -> list[str]:
    if d is None:
        return []
    m, point = d.match, d.operating_point
    rows = [("scans", m.n_scans), ("nodules", m.n_nodules), ("nodules hit by a candidate", m.true_positives),
            ("false-positive candidates", m.false_positives), ("nodules no candidate hits", m.false_negatives),
            ("CPM (LUNA16)", _f(d.cpm.score)), ("sensitivity at 1 FP/scan", _f(d.sensitivity_at_1_fp))]
    if point is not None:
        rows += [("operating point: sensitivity of the findings",
                  f"{_f(point.sensitivity)} ({point.true_positives} of {point.n_nodules})"),
                 ("operating point: false positives per scan",
                  f"{_f(point.false_positives / max(point.n_scans, 1))} ({point.false_positives})")]
    bounds = _bootstrap_dict(d)
    for r, s in zip(d.cpm.fp_rates, d.cpm.sensitivities):
        at = (bounds["sensitivity_lower"][str(r)], bounds["sensitivity_upper"][str(r)]) if bounds else None
        rows.append((f"sensitivity at {r} FP/scan", _f(s) + _interval(at)))
    if bounds:
        rows.append((f"CPM of the bootstrapped mean FROC ({bounds['n_samples']} samples)",
                     _f(bounds["cpm_of_mean_curve"])))
    intro = ("The FROC scores every candidate, as LUNA16 scores a system; the operating point is the findings "
             "the pipeline reports, above its calibrated detection threshold.") if point is not None else (
             "The candidates scored are the findings the pipeline reports.")
    return ["## Detection (LUNA16 FROC)", "", intro, "", "| measure | value |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in rows] + [""] + _missed_md(m.missed, point)


def _missed_md(missed: tuple[Annotation, ...], point: DetectionMatch | None) -> list[str]:
    """Nodules without a finding; with an operating point, those it misses, each saying whether a
    candidate below the threshold hit it."""
    lost = missed if point is None else point.missed
    if not lost:
        return []
    if point is None:
        return ["### Missed nodules (no candidate within the radius)", "",
                "| scan | x mm | y mm | z mm | diameter mm |", "|---|---|---|---|---|"] + [
            f"| {_where(a)} |" for a in lost] + [""]
    no_candidate = set(missed)
    return ["### Missed nodules (no finding within the radius)", "",
            "| scan | x mm | y mm | z mm | diameter mm | a candidate below the threshold |", "|---|---|---|---|---|---|"] + [
        f"| {_where(a)} | {'no' if a in no_candidate else 'yes'} |" for a in lost] + [""]


def _where(a: Annotation) -> str:
    return f"{a.seriesuid} | {a.x_mm:.1f} | {a.y_mm:.1f} | {a.z_mm:.1f} | {a.diameter_mm:.1f}"


def _interval(bounds: tuple[float, float] | None) -> str:
    return "" if bounds is None else f" (95% bootstrap interval {_f(bounds[0])}–{_f(bounds[1])})"


def _segmentation_md(results: EvaluationResults) -> list[str]:
    s = results.segmentation
    if s is None:
        return []
    lines = ["## Segmentation (Dice)", "", f"- mean case Dice: {_f(s.mean_case_dice)}",
             f"- mean Dice of detected nodules: {_f(s.mean_detected_nodule_dice)}", ""]
    return lines + ["| case | Dice |", "|---|---|"] + [f"| {c} | {_f(v)} |" for c, v in s.case_dice] + [""]


def _classification_md(c: ClassificationResult) -> list[str]:
    m = c.metrics
    lines = [f"## Classification: {c.task}", "", f"- accuracy: {_f(m.accuracy)}",
             f"- macro precision / recall / F1: {_f(m.macro_precision)} / {_f(m.macro_recall)} / "
             f"{_f(m.macro_f1)}"]
    if c.roc is not None:
        lines.append(f"- ROC AUC: {_f(c.roc.auc)}{_interval(c.auc_interval)}")
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {p.name} | {_f(p.precision)} | {_f(p.recall)} | {_f(p.f1)} | {p.support} |"
              for p in m.per_class]
    return lines + [""]


def _f(value: float) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "task"


def _clean(value):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
