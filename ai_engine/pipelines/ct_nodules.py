"""CT nodule pipeline: volume → findings (segmentation, measurement, malignancy, subtype, Lung-RADS).

Stages (each timed into ``CTFindings.timings_s``):
resample to the U-Net's spacing (1 mm) → HU window → lung mask and its bounding box → sliding-window
U-Net over the box (the plain pass and the card's mirrored ones, averaged) → connected candidates
above the calibrated threshold → outlines on the input grid from the interpolated probability
(input_grid.py) → measurement (measure.py) → 64 mm patches → DenseNet121-3D + ConvNeXt-Tiny-3D
softmax mean → EfficientNet-B3 2.5D subtype for malignant nodules → Lung-RADS per nodule and exam.
Every number (spacing, window, ROI, thresholds) comes from the model cards' input specs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import ndimage

from ai_engine import lungrads, measure, preprocess
from ai_engine.findings import CTFindings, CTVolume, Nodule, Subtype
from ai_engine.models.inputs import crop_centered, orthogonal_planes, window01
from ai_engine.models.spec import InputSpec
from ai_engine.pipelines import inference
from ai_engine.pipelines.input_grid import labels_on_input_grid
from ai_engine.pipelines.models import CTModels, LoadedModel
from ai_engine.pipelines.timing import StageTimer


MIN_FRACTION_IN_LUNGS = 0.5  # a candidate mostly outside the lung mask is chest wall or mediastinum
MAX_MARKS = 10_000  # candidates marked for a FROC: in effect all of them


@dataclass(frozen=True)
class PipelineConfig:
    device: str = "cpu"
    num_threads: int | None = 2  # None: leave torch's setting alone
    bf16: bool | None = None  # None: what each model card's spec decided
    lung_margin_mm: float = 10.0  # context around the lungs the U-Net sees
    max_nodules: int = 20  # most suspicious candidates kept (by detection score)
    tta: bool = True  # the card's mirrored U-Net passes; False runs the plain pass only (faster, see card)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Connected components of the U-Net output on the isotropic grid."""

    labels: np.ndarray  # [z, y, x] int32, 1..n
    scores: tuple[float, ...]  # detection score per label (max foreground probability)


@dataclass(frozen=True)
class Mark:
    """A candidate as a CAD challenge scores it: centre (patient mm, x y z) and detection score."""

    centre_mm: tuple[float, float, float]
    score: float


def analyze_ct(volume: CTVolume, models: CTModels, config: PipelineConfig = PipelineConfig()) -> CTFindings:
    """Find, measure and characterise lung nodules in ``volume``."""
    return _analyze(volume, models, config, with_marks=False)[0]


def analyze_ct_with_marks(volume: CTVolume, models: CTModels, config: PipelineConfig = PipelineConfig()
                          ) -> tuple[CTFindings, tuple[Mark, ...]]:
    """``analyze_ct``, plus a mark for every candidate in the lungs whatever its detection score.

    LUNA16 computes its FROC over all of a system's candidates; the findings stop at the calibrated
    detection threshold (the operating point), so a FROC of the findings ends there.
    """
    return _analyze(volume, models, config, with_marks=True)


def _analyze(volume: CTVolume, models: CTModels, config: PipelineConfig, with_marks: bool
             ) -> tuple[CTFindings, tuple[Mark, ...]]:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    timer = StageTimer()
    scan = segment(volume, models.segmentation, config, timer)
    thresholds = detection_thresholds(models.segmentation.card.input_spec, config.tta)
    marks = ()
    with timer.stage("candidates"):
        if with_marks:  # the findings are the strongest of the marked candidates: label them once
            every = every_candidate(scan.prob, thresholds, scan)
            cands = strongest(every, thresholds.get("detection", 0.0), config.max_nodules)
        else:
            cands = candidates(scan.prob, thresholds, config.max_nodules, scan.volume.spacing_mm, scan.lungs)
    if with_marks:  # not timed: the findings' timings are the pipeline's own
        marks = candidate_marks(every, scan.volume)
    with timer.stage("map_to_input"):
        labels, kept = _to_input_grid(cands, scan, volume, models.segmentation.card.input_spec.threshold("probability"))
    with timer.stage("measure"):
        nodules = _measure(volume, labels, kept, cands, scan)
    with timer.stage("malignancy"):
        nodules = _malignancy(nodules, scan, volume, models.malignancy, config)
    with timer.stage("subtype"):
        nodules = _subtype(nodules, scan, volume, models.subtype, config)
    with timer.stage("lung_rads"):
        nodules = tuple(replace(n, lung_rads=lungrads.assess_nodule(lungrads.features_from_nodule(n)))
                        for n in nodules)
        exam = lungrads.assess_exam([n.lung_rads for n in nodules])
    return CTFindings(nodules=nodules, label_mask=labels, exam_lung_rads=exam, models=models.infos(),
                      timings_s=dict(timer.seconds)), marks


@dataclass(frozen=True, eq=False)
class IsoScan:
    """The volume on the U-Net's isotropic grid, with what the later stages reuse."""

    volume: CTVolume
    image01: np.ndarray  # windowed to [0, 1]
    lungs: np.ndarray  # bool lung mask
    prob: np.ndarray  # U-Net foreground probability


def _device(config: PipelineConfig) -> torch.device:
    return torch.device(config.device)


def _bf16(model: LoadedModel, config: PipelineConfig) -> bool:
    return model.card.input_spec.bf16_autocast if config.bf16 is None else config.bf16


def segment(volume: CTVolume, seg: LoadedModel, config: PipelineConfig, timer: StageTimer) -> IsoScan:
    """Resample, window, mask the lungs and run the U-Net over the lungs' bounding box."""
    spec = seg.card.input_spec if config.tta else replace(seg.card.input_spec, tta_flips=())
    with timer.stage("resample"):
        iso = preprocess.resample_isotropic(volume, spec.spacing_mm)
        image01 = window01(iso.hu, spec.hu_window)
    with timer.stage("lung_mask"):
        lungs = preprocess.lung_mask(iso)
        bbox = preprocess.lung_bbox(lungs, config.lung_margin_mm, iso.spacing_mm)
    with timer.stage("segmentation"):
        device = _device(config)
        net = inference.prepare(seg.module, seg.channels_last, device, 5)
        prob = inference.segment_probability(image01, net, spec, bbox, device, _bf16(seg, config))
    return IsoScan(iso, image01, lungs, prob)


def detection_thresholds(spec: InputSpec, tta: bool) -> dict[str, float]:
    """The card's thresholds for this run. Averaging mirrored passes lowers false positives' scores
    more than nodules', so a plain pass alone (``tta=False``) uses ``detection_plain_pass`` where
    the card has it (``calibrate_plain_pass``)."""
    if tta or not spec.tta_flips or "detection_plain_pass" not in spec.thresholds:
        return spec.thresholds
    return {**spec.thresholds, "detection": spec.thresholds["detection_plain_pass"]}


def candidates(prob: np.ndarray, thresholds: dict[str, float], max_nodules: int,
               spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0), lungs: np.ndarray | None = None
               ) -> Candidates:
    """Components of ``prob ≥ probability`` of at least ``min_volume_mm3`` whose maximum
    probability reaches ``detection`` and (given ``lungs``) that lie mostly inside the lungs;
    the ``max_nodules`` best, labelled 1..n by score."""
    out = np.zeros(prob.shape, np.int32)
    box = _foreground_box(prob >= thresholds["probability"])
    if box is None:
        return Candidates(out, ())
    labels, found = measure.connected_candidates(prob[box], thresholds["probability"],
                                                 thresholds.get("min_volume_mm3", 0.0), spacing_mm)
    inside = _fraction_inside(labels, len(found), None if lungs is None else lungs[box])
    keep = [c for c in found if c.max_probability >= thresholds.get("detection", 0.0)
            and inside[c.label - 1] >= MIN_FRACTION_IN_LUNGS][:max_nodules]
    lut = np.zeros(len(found) + 1, np.int32)
    lut[[c.label for c in keep]] = np.arange(1, len(keep) + 1)
    out[box] = lut[labels]
    return Candidates(out, tuple(c.max_probability for c in keep))


def every_candidate(prob: np.ndarray, thresholds: dict[str, float], scan: IsoScan) -> Candidates:
    """Every candidate in the lungs of ``scan`` (its iso grid), with no detection threshold."""
    return candidates(prob, {**thresholds, "detection": 0.0}, MAX_MARKS, scan.volume.spacing_mm, scan.lungs)


def strongest(cands: Candidates, detection: float, max_nodules: int) -> Candidates:
    """The candidates ``candidates`` would keep at this detection threshold: labels run by
    decreasing score, so they are a prefix of ``cands``."""
    k = min(sum(s >= detection for s in cands.scores), max_nodules)
    return Candidates(np.where(cands.labels <= k, cands.labels, 0), cands.scores[:k])


def candidate_marks(cands: Candidates, iso: CTVolume) -> tuple[Mark, ...]:
    """Each candidate's centre of mass (patient mm) on the iso grid ``iso``, with its score."""
    centres = ndimage.center_of_mass(np.ones_like(cands.labels), cands.labels, range(1, len(cands.scores) + 1))
    return tuple(Mark(tuple(float(v) for v in iso.index_to_mm(tuple(c))), s) for c, s in zip(centres, cands.scores))


def _foreground_box(fg: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the foreground, one voxel wider (labelling a crop is much faster)."""
    spans = [np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    if any(s.size == 0 for s in spans):
        return None
    return tuple(slice(max(int(s[0]) - 1, 0), min(int(s[-1]) + 2, n)) for s, n in zip(spans, fg.shape))


def _fraction_inside(labels: np.ndarray, n: int, lungs: np.ndarray | None) -> np.ndarray:
    if lungs is None or n == 0 or not lungs.any():  # no lung mask: do not filter
        return np.ones(n)
    inside = np.bincount(labels.ravel(), weights=lungs.ravel(), minlength=n + 1)[1:]
    return inside / np.maximum(np.bincount(labels.ravel(), minlength=n + 1)[1:], 1)


def _to_input_grid(cands: Candidates, scan: IsoScan, volume: CTVolume, probability: float
                   ) -> tuple[np.ndarray, tuple[int, ...]]:
    """The label map on the input grid (labels renumbered 1..m) and, per new label, its iso label."""
    back = labels_on_input_grid(cands.labels, scan.prob, probability, scan.volume, volume)
    present = [k for k in range(1, len(cands.scores) + 1) if np.any(back == k)] if cands.scores else []
    lut = np.zeros(len(cands.scores) + 1, np.uint16)
    lut[present] = np.arange(1, len(present) + 1)
    return lut[back], tuple(present)


def _measure(volume: CTVolume, labels: np.ndarray, iso_labels: tuple[int, ...], cands: Candidates,
             scan: IsoScan) -> tuple[Nodule, ...]:
    """Measure each nodule on the input grid; the lungs' extent (mm) comes from the iso lung mask."""
    if not iso_labels:
        return ()
    if not scan.lungs.any():  # no lungs found: measure_nodules falls back to the volume's extent
        measured = measure.measure_nodules(labels, volume)
    else:
        extent = preprocess.lung_extent(scan.lungs, scan.volume)
        measured = tuple(measure.measure_component(labels[box] == label, volume, label, extent,
                                                   tuple(s.start for s in box))
                         for label, box in enumerate(_boxes(labels), start=1))
    out = []
    for label, m in enumerate(measured, start=1):
        out.append(Nodule(**vars(m), detection_score=cands.scores[iso_labels[label - 1] - 1],
                          malignancy_probability=0.0))
    return tuple(out)


def _boxes(labels: np.ndarray) -> list[tuple[slice, ...]]:
    """Each label's bounding box grown by one voxel (the measurement needs the rim's neighbours)."""
    return [tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, labels.shape))
            for box in ndimage.find_objects(labels)]


def _iso_centres(scan: IsoScan, nodules: tuple[Nodule, ...], volume: CTVolume) -> np.ndarray:
    """Nodule centroids as continuous voxel indices of the iso grid (same origin and direction)."""
    scale = np.array(volume.spacing_mm[::-1]) / np.array(scan.volume.spacing_mm[::-1])
    return np.array([np.array(n.centroid_zyx) * scale for n in nodules]).reshape(-1, 3)


def _patches(scan: IsoScan, centres: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    return np.stack([crop_centered(scan.image01, c, size) for c in centres]).astype(np.float32)


def _malignancy(nodules: tuple[Nodule, ...], scan: IsoScan, volume: CTVolume, members: tuple[LoadedModel, ...],
                config: PipelineConfig) -> tuple[Nodule, ...]:
    """Softmax of each ensemble member on a 64 mm patch; the malignancy probability is their mean."""
    if not nodules:
        return nodules
    patches = _patches(scan, _iso_centres(scan, nodules, volume), members[0].card.input_spec.patch)[:, None]
    by_model = {m.card.name: _probabilities(m, patches, config)[:, 1] for m in members}
    mean = inference.ensemble_mean(list(by_model.values()))
    threshold = malignant_threshold(members)
    return tuple(replace(n, malignancy_probability=float(mean[i]), malignancy_threshold=threshold,
                         malignancy_by_model=tuple((k, float(v[i])) for k, v in by_model.items()))
                 for i, n in enumerate(nodules))


def malignant_threshold(members: tuple[LoadedModel, ...]) -> float:
    """The ensemble's operating point: ``thresholds["malignant"]`` of the first member's card
    (calibration writes the same value into every member's card)."""
    return float(members[0].card.input_spec.thresholds.get("malignant", 0.5))


def _subtype(nodules: tuple[Nodule, ...], scan: IsoScan, volume: CTVolume, model: LoadedModel,
             config: PipelineConfig) -> tuple[Nodule, ...]:
    """EfficientNet-B3 on three orthogonal planes through each malignant nodule."""
    malignant = [i for i, n in enumerate(nodules) if n.malignant]
    if not malignant:
        return nodules
    spec = model.card.input_spec
    cube = (spec.patch[0],) * 3
    centres = _iso_centres(scan, nodules, volume)[malignant]
    planes = np.stack([orthogonal_planes(p) for p in _patches(scan, centres, cube)])
    prob = _probabilities(model, planes, config)
    out = list(nodules)
    for row, i in enumerate(malignant):
        out[i] = replace(out[i], subtype=Subtype(spec.classes[int(np.argmax(prob[row]))]),
                         subtype_probabilities=tuple(zip(spec.classes, map(float, prob[row]))))
    return tuple(out)


def _probabilities(model: LoadedModel, inputs: np.ndarray, config: PipelineConfig) -> np.ndarray:
    device = _device(config)
    net = inference.prepare(model.module, model.channels_last, device, inputs.ndim)
    return inference.class_probabilities(inputs, net, device, _bf16(model, config), model.channels_last)
