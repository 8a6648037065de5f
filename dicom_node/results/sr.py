"""Comprehensive 3D SR: TID 1500 Measurement Report of the nodules, and a short "not analysed" SR.

Per nodule one TID 1411 Volumetric ROI Measurements group referencing its SEG segment; one TID 1501
group for the exam-level Lung-RADS assessment; a document-level "Qualitative Evaluations" container
(TID 1500 "Qualitative Evaluations", UMLS C0034375) carrying the research-use statement as TEXT.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as std

from ai_engine.findings import CTFindings, LungRadsAssessment, Nodule
from dicom_node.results import codes
from dicom_node.results.common import (
    SERIES_NUMBER, AlgorithmInfo, Clock, UidFor, check_sources, copy_patient_study, stamp, uids, with_type2,
)
from dicom_node.results.errors import FindingsError
from dicom_node.results.seg import tracking_uid

QUALITATIVE_EVALUATIONS = CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
QC_DEVICE = AlgorithmInfo(name="pulmonode-qc", version="", device_uid="", model_name="pulmonode study QC")


def build_sr(
    sources: Sequence[Dataset],
    seg: Dataset | None,
    findings: CTFindings,
    algorithm: AlgorithmInfo,
    uid_for: UidFor,
    clock: Clock,
) -> Dataset:
    """TID 1500 report of ``findings``; ``seg`` (from ``build_seg``) is required when there are nodules."""
    check_sources(sources)
    if findings.nodules and seg is None:
        raise FindingsError(f"{len(findings.nodules)} nodules but no SEG to reference")
    if findings.nodules and np.shape(findings.label_mask)[0] != len(sources):
        raise FindingsError(f"label_mask has {np.shape(findings.label_mask)[0]} slices, sources {len(sources)}")
    groups = [
        _nodule_group(n, i, seg, sources, findings, algorithm, uid_for) for i, n in enumerate(findings.nodules, 1)
    ]
    groups.append(_exam_group(findings.exam_lung_rads, algorithm, uid_for))
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(algorithm),
        procedure_reported=codes.PROCEDURE_CT_CHEST,
        imaging_measurements=groups,
        title=codes.REPORT_TITLE,
    )
    report[0].ContentSequence.append(_statements([findings.disclaimer]))
    evidence = list(sources) + ([seg] if seg is not None else [])
    return _document(sources, evidence, report, algorithm, uid_for, clock, "sr", findings.synthetic_trained)


def build_not_eligible_sr(sources: Sequence[Dataset], reason: str, uid_for: UidFor, clock: Clock) -> Dataset:
    """Short Comprehensive SR: the study was not analysed, and why (QC rejection visible in the PACS)."""
    check_sources(sources)
    if not reason.strip():
        raise FindingsError("a not-eligible SR needs a non-empty reason")
    root = hd.sr.ContainerContentItem(name=codes.NOT_ANALYSED_TITLE)
    root.ContentSequence = hd.sr.ContentSequence([
        _text(codes.NOT_ANALYSED_REASON, reason),
        _text(codes.RESEARCH_STATEMENT, "No AI results were produced for this study."),
    ])
    content = hd.sr.ContentSequence([root], is_root=True)
    return _document(sources, list(sources), content, QC_DEVICE, uid_for, clock, "sr-not-eligible", False)


def referenced_segment(seg: Dataset, segment_number: int, nodule: Nodule, sources: Sequence[Dataset],
                       label_mask: np.ndarray) -> hd.sr.ReferencedSegment:
    """Reference one SEG segment and the source slices the nodule lies on.

    Built directly instead of with ``ReferencedSegment.from_segmentation``: in highdicom 0.28 that
    reads Segment Identification only from the per-frame groups, but with a single segment
    highdicom's own Segmentation moves it to the Shared Functional Groups, so from_segmentation
    raises AttributeError. Segment number only, no frame numbers (PS3.3 C.17.3.2.1: Referenced
    Segment Number shall not be present with Referenced Frame Number).
    """
    if segment_number not in {int(item.SegmentNumber) for item in seg.SegmentSequence}:
        raise FindingsError(f"SEG {seg.SOPInstanceUID} has no segment {segment_number}")
    on_slices = np.nonzero(np.any(label_mask == nodule.label, axis=(1, 2)))[0]
    images = [
        hd.sr.SourceImageForSegmentation(sources[z].SOPClassUID, sources[z].SOPInstanceUID) for z in on_slices
    ]
    return hd.sr.ReferencedSegment(seg.SOPClassUID, seg.SOPInstanceUID, segment_number, source_images=images)


def _observation_context(algorithm: AlgorithmInfo) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=algorithm.device_uid,
        name=algorithm.name,
        manufacturer_name=algorithm.manufacturer,
        model_name=algorithm.model_name,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(std.cid270.Device, device),
    )


def _algorithm_id(algorithm: AlgorithmInfo) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(algorithm.name, algorithm.version, _parameters(algorithm))


def _parameters(algorithm: AlgorithmInfo) -> list[str] | None:
    return [f"{name}={value}" for name, value in algorithm.parameters.items()] or None


def _nodule_group(
    nodule: Nodule, number: int, seg: Dataset, sources: Sequence[Dataset], findings: CTFindings,
    algorithm: AlgorithmInfo, uid_for: UidFor,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """TID 1411 for one nodule, with the Lung-RADS recommendation appended as TEXT."""
    tracking = hd.sr.TrackingIdentifier(uid=tracking_uid(uid_for, nodule), identifier=f"Nodule {nodule.label}")
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        referenced_segment=referenced_segment(seg, number, nodule, sources, findings.label_mask),
        finding_type=codes.SEGMENTED_TYPE,
        algorithm_id=_algorithm_id(algorithm),
        finding_sites=[hd.sr.FindingSite(codes.ANATOMIC_REGION, laterality=codes.LATERALITY[nodule.side])],
        measurements=nodule_measurements(nodule),
        qualitative_evaluations=nodule_evaluations(nodule),
    )
    if nodule.lung_rads is not None:
        group[0].ContentSequence.append(_text(codes.RECOMMENDATION, nodule.lung_rads.management))
    return group


def _num(name, value: float, unit, derivation=None) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, derivation=derivation)


def nodule_measurements(nodule: Nodule) -> list[hd.sr.Measurement]:
    """TID 1419 ROI measurements of one nodule (units: UCUM mm, mm3, [hnsf'U], 1)."""
    items = [
        _num(codes.LONG_AXIS, nodule.long_axis_mm, codes.MM),
        _num(codes.SHORT_AXIS, nodule.short_axis_mm, codes.MM),
        _num(codes.DIAMETER, nodule.mean_diameter_mm, codes.MM, codes.MEAN),
        _num(codes.VOLUME, nodule.volume_mm3, codes.MM3),
        _num(codes.ATTENUATION, nodule.mean_hu, codes.HU, codes.MEAN),
        _num(codes.ATTENUATION, nodule.max_hu, codes.HU, codes.MAXIMUM),
        _num(codes.PROBABILITY_OF_CANCER, nodule.malignancy_probability, codes.UNITLESS),
        _num(codes.DETECTION_SCORE, nodule.detection_score, codes.UNITLESS),
    ]
    if nodule.solid_component_mm is not None:
        items.append(_num(codes.SOLID_COMPONENT_DIAMETER, nodule.solid_component_mm, codes.MM))
    return items


def nodule_evaluations(nodule: Nodule) -> list[hd.sr.QualitativeEvaluation]:
    """Coded findings: type, calcification, benign/malignant, subtype, Lung-RADS category."""
    pairs = [
        (codes.NODULE_TYPE, codes.NODULE_TYPE_VALUES[nodule.nodule_type]),
        (codes.CALCIFICATION, codes.CALCIFIED if nodule.calcified else codes.NOT_CALCIFIED),
        (codes.MALIGNANCY_CLASS, codes.MALIGNANT if nodule.malignant else codes.BENIGN),
    ]
    if nodule.subtype is not None:
        pairs.append((codes.SUBTYPE, codes.SUBTYPE_VALUES[nodule.subtype]))
    if nodule.lung_rads is not None:
        pairs.extend(_lung_rads_pairs(nodule.lung_rads))
    return [hd.sr.QualitativeEvaluation(name, value) for name, value in pairs]


def _lung_rads_pairs(assessment: LungRadsAssessment) -> list[tuple]:
    pairs = [(codes.LUNG_RADS, codes.lung_rads_value(assessment.category))]
    if assessment.s_modifier:
        pairs.append((codes.LUNG_RADS_S_MODIFIER, codes.YES))
    return pairs


def _exam_group(assessment: LungRadsAssessment, algorithm: AlgorithmInfo,
                uid_for: UidFor) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 for the exam: the Lung-RADS category and its management recommendation."""
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid_for("tracking-exam"), identifier="Exam"),
        finding_type=codes.EXAM_ASSESSMENT,
        algorithm_id=_algorithm_id(algorithm),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(n, v) for n, v in _lung_rads_pairs(assessment)],
    )
    group[0].ContentSequence.append(_text(codes.RECOMMENDATION, assessment.management))
    return group


def _text(name: CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _statements(texts: Sequence[str]) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence([_text(codes.RESEARCH_STATEMENT, t) for t in texts])
    return container


def _document(sources: Sequence[Dataset], evidence: list[Dataset], content, algorithm: AlgorithmInfo,
              uid_for: UidFor, clock: Clock, kind: str, synthetic: bool) -> Dataset:
    series_uid, sop_uid = uids(uid_for, kind)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[with_type2(evidence[0]), *evidence[1:]],
        content=content,
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER[kind],
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=algorithm.manufacturer,
        is_complete=True,
    )
    sr.CodingSchemeIdentificationSequence = [codes.coding_scheme_identification()]
    sr.ManufacturerModelName = algorithm.model_name
    if algorithm.version:
        sr.SoftwareVersions = algorithm.version
    copy_patient_study(sources[0], sr)
    stamp(sr, clock(), kind, synthetic)
    return sr
