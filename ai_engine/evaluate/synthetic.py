"""`pulmonode evaluate --data synthetic`: the shipped pipeline on held-out synthetic data.

Two parts, both on seeds never used in training:
1. whole scans (phantoms): the full CT pipeline → LUNA16 detection matching, FROC/CPM and
   sensitivity at ≤ 1 FP/scan over every candidate (as LUNA16 scores a system), the operating
   point of the findings (calibrated detection threshold), Dice of detected nodules (≥ 4 mm; smaller ones are "irrelevant"
   as LUNA16 treats excluded findings), sensitivity per nodule type and size band, malignancy AUC
   on detected nodules;
2. nodule patches: DenseNet121-3D alone, ConvNeXt-Tiny-3D alone and their ensemble (ROC AUC,
   accuracy, confusion), and EfficientNet-B3 subtype accuracy with its confusion matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ai_engine.evaluate.classification import roc_auc
from ai_engine.evaluate.detection import Annotation, Candidate
from ai_engine.evaluate.report import write_report
from ai_engine.evaluate.results import (
    ClassificationResult,
    EvaluationResults,
    SegmentationResult,
    evaluate_classification,
    evaluate_detection,
    operating_point_extras,
    unet_description,
)
from ai_engine.evaluate.segmentation import dice_per_nodule
from ai_engine.findings import CTFindings, Nodule, NoduleType, Subtype
from ai_engine.models.inputs import orthogonal_planes, window01
from ai_engine.pipelines import inference
from ai_engine.pipelines.ct_nodules import PipelineConfig, analyze_ct_with_marks, malignant_threshold
from ai_engine.pipelines.models import CTModels, LoadedModel
from ai_engine.synthetic import Phantom, make_ct_phantom, make_nodule_patch
from ai_engine.synthetic.labels import POPULATION_MALIGNANT_P, posterior_malignant
from ai_engine.synthetic.truth import NoduleTruth

MIN_DIAMETER_MM = 4.0
SIZE_BANDS_MM = ((4.0, 6.0), (6.0, 8.0), (8.0, 15.0), (15.0, math.inf))  # Lung-RADS v2022's solid size steps
SUBTYPES = tuple(s.value for s in Subtype)


@dataclass(frozen=True)
class SyntheticEvalConfig:
    n_scans: int = 10
    n_patches: int = 200
    seed: int = 10_000  # held out: training uses small seeds
    shape_zyx: tuple[int, int, int] = (160, 256, 256)
    spacing_mm: tuple[float, float, float] = (1.25, 1.25, 1.5)
    device: str = "cpu"
    tta: bool = True  # the U-Net card's mirrored passes; False: the plain pass only
    progress: bool = True
    bootstrap_samples: int = 1000  # LUNA16's FROC bootstrap (scans resampled) and the AUCs' intervals


def evaluate_synthetic(models: CTModels, out_dir: Path, config: SyntheticEvalConfig = SyntheticEvalConfig()
                       ) -> tuple[EvaluationResults, Path, Path]:
    """Run both parts and write report.json / report.md with plots into ``out_dir``."""
    scans = _scan_part(models, config)
    patches = _patch_part(models, config)
    dataset = (f"{scans.dataset}; {config.n_scans} scans {config.shape_zyx} (z, y, x) at {config.spacing_mm} mm "
               f"(x, y, z); {config.n_patches} nodule patches per classifier; "
               f"{unet_description(models.segmentation.card.input_spec, config.tta)}")
    results = replace(scans, dataset=dataset, classification=scans.classification + patches.classification,
                      extra={**scans.extra, **patches.extra})
    json_path, md_path = write_report(results, out_dir, "pulmonode CT pipeline on held-out synthetic phantoms")
    return results, json_path, md_path


def _scan_part(models: CTModels, config: SyntheticEvalConfig) -> EvaluationResults:
    relevant, irrelevant, candidates, uids, nodule_dice, seconds = [], [], [], [], [], []
    hits: list[tuple[NoduleTruth, Nodule]] = []  # each finding over a truth nodule, with that nodule
    kinds, found = [], []  # each relevant nodule's type; the findings as marks (the operating point)
    for i in _bar(range(config.n_scans), "scans", config.progress):
        phantom = make_ct_phantom(config.seed + i, config.shape_zyx, config.spacing_mm)
        findings, marks = analyze_ct_with_marks(phantom.volume, models,
                                                PipelineConfig(device=config.device, tta=config.tta))
        uid = f"synthetic-{config.seed + i}"
        uids.append(uid)
        seconds.append(sum(findings.timings_s.values()))
        rel, irr = truth_annotations(uid, phantom)
        relevant += rel
        irrelevant += irr
        kinds += [t.nodule_type.value for t in phantom.nodules if t.diameter_mm >= MIN_DIAMETER_MM]
        candidates += [Candidate(uid, *m.centre_mm, m.score) for m in marks]
        found += [Candidate(uid, *n.centroid_mm, n.detection_score) for n in findings.nodules]
        nodule_dice += list(dice_per_nodule(findings.label_mask, relevant_truth(phantom)))
        hits += matched_truths(findings, phantom)
    detection = evaluate_detection(relevant, candidates, uids, irrelevant, config.bootstrap_samples,
                                   operating_point=found)
    matched = [(int(t.malignant), n) for t, n in hits]
    pairs = [(y, n.malignancy_probability) for y, n in matched]
    y = [p[0] for p in pairs]
    threshold = malignant_threshold(models.malignancy)  # the pipeline's calibrated operating point
    malignancy = evaluate_classification(f"malignancy (detected nodules, ensemble, threshold {threshold:.3f})", y,
                                         [int(p[1] >= threshold) for p in pairs], ("benign", "malignant"),
                                         positive_scores=[p[1] for p in pairs],
                                         bootstrap_samples=config.bootstrap_samples) if len(set(y)) == 2 else None
    return EvaluationResults(
        dataset=f"synthetic phantoms, seeds {config.seed}..{config.seed + config.n_scans - 1}",
        models=models.infos(), detection=detection,
        segmentation=SegmentationResult(case_dice=(), nodule_dice=tuple(nodule_dice)),
        classification=(malignancy,) if malignancy else (),
        extra={**operating_point_extras(detection, seconds),
               **sensitivity_by_kind(list(zip(relevant, kinds)), detection.operating_point.missed),
               **member_aucs(matched), **label_model_aucs([t for t, _ in hits])},
    )


def sensitivity_by_kind(truths: list[tuple[Annotation, str]], missed: Iterable[Annotation]) -> dict[str, float]:
    """Sensitivity (of the findings, at the operating point) per nodule type and per size band, keyed
    "sensitivity[KIND, n=NODULES]"; ``missed``: the nodules without a finding."""
    lost = set(missed)
    groups: dict[str, list[bool]] = {t.value: [] for t in NoduleType}
    groups |= {_band(lo, hi): [] for lo, hi in SIZE_BANDS_MM}
    for annotation, kind in truths:
        band = next(_band(lo, hi) for lo, hi in SIZE_BANDS_MM if lo <= annotation.diameter_mm < hi)
        for key in (kind, band):
            groups[key].append(annotation not in lost)
    return {f"sensitivity[{k}, n={len(v)}]": float(np.mean(v)) for k, v in groups.items() if v}


def _band(lo: float, hi: float) -> str:
    return f"{lo:g}–{hi:g} mm" if hi < math.inf else f"≥ {lo:g} mm"


def truth_annotations(uid: str, phantom: Phantom) -> tuple[list[Annotation], list[Annotation]]:
    """The phantom's nodules as (relevant ≥ 4 mm, irrelevant) LUNA16 annotations of scan ``uid``."""
    relevant, irrelevant = [], []
    for t in phantom.nodules:
        annotation = Annotation(uid, *t.centre_mm, t.diameter_mm)
        (relevant if t.diameter_mm >= MIN_DIAMETER_MM else irrelevant).append(annotation)
    return relevant, irrelevant


def relevant_truth(phantom: Phantom) -> np.ndarray:
    """The truth label map with nodules < 4 mm removed (LUNA16 counts those as irrelevant)."""
    keep = [t.label for t in phantom.nodules if t.diameter_mm >= MIN_DIAMETER_MM]
    return np.where(np.isin(phantom.nodule_mask, keep), phantom.nodule_mask, 0)


def malignancy_pairs(findings: CTFindings, phantom: Phantom) -> list[tuple[int, float]]:
    """(truth malignant, ensemble probability) for each finding over a truth nodule."""
    return [(int(t.malignant), n.malignancy_probability) for t, n in matched_truths(findings, phantom)]


def matched_truths(findings: CTFindings, phantom: Phantom) -> list[tuple[NoduleTruth, Nodule]]:
    """(truth nodule, finding) for each finding over a truth nodule (the one it covers most)."""
    truth = {t.label: t for t in phantom.nodules}
    out = []
    for n in findings.nodules:
        under = phantom.nodule_mask[findings.label_mask == n.label]
        under = under[under > 0]
        if under.size:
            out.append((truth[int(np.bincount(under).argmax())], n))
    return out


def label_model_aucs(truths: list[NoduleTruth]) -> dict[str, float]:
    """ROC AUC, on the detected nodules, of the label model's own P(malignant | what was drawn)
    (labels.posterior_malignant, at the population's malignant rate): the most any classifier could
    reach on these nodules, since their labels are coin flips on that probability; and the same
    without the zone, which a nodule-centred 64 mm patch does not show (so a ceiling for the ensemble's
    members). Measured on each run's nodules, beside the members."""
    y = [int(t.malignant) for t in truths]
    if len(set(y)) < 2:
        return {}
    return {f"malignancy_auc[detected, label model{name}]":
            roc_auc(y, [posterior_malignant(t, POPULATION_MALIGNANT_P, zone_known=known) for t in truths])
            for name, known in ((": everything drawn (ceiling)", True), (" without the zone (a patch's ceiling)", False))}


def member_aucs(matched: list[tuple[int, Nodule]]) -> dict[str, float]:
    """ROC AUC of each ensemble member alone on the detected nodules, keyed
    "malignancy_auc[detected, MEMBER]" (the ensemble's own is the classification result's)."""
    y = [t for t, _ in matched]
    if len(set(y)) < 2:
        return {}
    names = [k for k, _ in matched[0][1].malignancy_by_model]
    return {f"malignancy_auc[detected, {k}]": roc_auc(y, [dict(n.malignancy_by_model)[k] for _, n in matched])
            for k in names}


def _patch_part(models: CTModels, config: SyntheticEvalConfig) -> EvaluationResults:
    device = torch.device(config.device)
    labels, inputs = [], []
    for i in _bar(range(config.n_patches), "malignancy patches", config.progress):
        patch, truth = make_nodule_patch(config.seed + i, malignant=bool(i % 2))
        inputs.append(window01(patch, models.malignancy[0].card.input_spec.hu_window)[None])
        labels.append(int(truth.malignant))
    x = np.stack(inputs).astype(np.float32)
    by_model = {m.card.name: _probabilities(m, x, device)[:, 1] for m in models.malignancy}
    by_model["ensemble"] = np.mean(list(by_model.values()), axis=0)
    # patches are balanced and centred as in training, so the patch-domain 0.5 applies here
    results = tuple(evaluate_classification(f"malignancy patches: {name}", labels, (p >= 0.5).astype(int).tolist(),
                                            ("benign", "malignant"), positive_scores=p.tolist(),
                                            bootstrap_samples=config.bootstrap_samples)
                    for name, p in by_model.items())
    return EvaluationResults(dataset="", models=(), classification=results + (_subtype(models, config, device),),
                             extra={f"malignancy_auc[{k}]": roc_auc(labels, v.tolist()) for k, v in by_model.items()})


def _subtype(models: CTModels, config: SyntheticEvalConfig, device: torch.device) -> ClassificationResult:
    spec = models.subtype.card.input_spec
    labels, inputs = [], []
    for i in _bar(range(config.n_patches), "subtype patches", config.progress):
        subtype = Subtype(SUBTYPES[i % len(SUBTYPES)])
        patch, truth = make_nodule_patch(config.seed + 50_000 + i, malignant=True, subtype=subtype)
        inputs.append(orthogonal_planes(window01(patch, spec.hu_window)))
        labels.append(SUBTYPES.index(Subtype(truth.subtype).value))
    prob = _probabilities(models.subtype, np.stack(inputs).astype(np.float32), device)
    names = tuple(spec.classes) or SUBTYPES
    order = [names.index(s) for s in SUBTYPES]  # model's class order → ours
    return evaluate_classification("subtype (EfficientNet-B3, malignant patches)", labels,
                                   np.argmax(prob[:, order], axis=1).tolist(), SUBTYPES)


def _probabilities(model: LoadedModel, x: np.ndarray, device: torch.device) -> np.ndarray:
    net = inference.prepare(model.module, model.channels_last, device, x.ndim)
    return inference.class_probabilities(x, net, device, model.card.input_spec.bf16_autocast, model.channels_last)


def _bar(items: range, desc: str, enabled: bool) -> Iterable[int]:
    return tqdm(items, desc=desc, disable=not enabled, leave=False)
