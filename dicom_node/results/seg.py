"""DICOM Segmentation (PS3.3 A.51), BINARY, one segment per nodule, built with highdicom."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from ai_engine.findings import CTFindings, Nodule
from dicom_node.results import codes
from dicom_node.results.common import (
    SERIES_NUMBER, AlgorithmInfo, Clock, UidFor, check_sources, copy_patient_study, stamp, uids, with_type2,
)
from dicom_node.results.errors import FindingsError

# Recommended display colours (sRGB): green benign, red malignant, as in the PDF overlays.
BENIGN_RGB = (0, 200, 0)
MALIGNANT_RGB = (230, 0, 0)

# Viewer safety: keep empty frames. Some viewers (OHIF issues #2833/#3754, MONAI Deploy PR #401)
# misplace or skip segments whose frames do not cover every source slice; a full stack of frames
# per segment is what every viewer handles. Cost: rows*cols/8 bytes per slice and segment.
OMIT_EMPTY_FRAMES = False


def segment_label(nodule: Nodule) -> str:
    """Segment Label (LO): ASCII hyphen, so no character set beyond the default is needed."""
    return f"Nodule {nodule.label} - {nodule.description}"


def tracking_uid(uid_for: UidFor, nodule: Nodule) -> str:
    """The nodule's Tracking UID, shared by its SEG segment and its SR measurement group."""
    return uid_for(f"tracking-nodule-{nodule.label}")


def build_seg(
    sources: Sequence[Dataset],
    findings: CTFindings,
    algorithm: AlgorithmInfo,
    uid_for: UidFor,
    clock: Clock,
    *,
    omit_empty_frames: bool = OMIT_EMPTY_FRAMES,
) -> Dataset | None:
    """SEG of the nodules over the sorted CT slices; None when there is no nodule to segment.

    Segment numbers follow ``findings.nodules`` order (1-based); labels name ``Nodule.label``.
    """
    check_sources(sources)
    if not findings.nodules:
        return None
    labelmap = _segment_labelmap(sources, findings)
    series_uid, sop_uid = uids(uid_for, "seg")
    seg = hd.seg.Segmentation(
        source_images=[with_type2(sources[0]), *sources[1:]],
        pixel_array=labelmap,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(findings, algorithm, uid_for),
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER["seg"],
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=algorithm.manufacturer,
        manufacturer_model_name=algorithm.model_name,
        software_versions=algorithm.version,
        device_serial_number=algorithm.device_serial_number,
        content_label="NODULES",
        content_description=_content_description(findings),
        transfer_syntax_uid=ExplicitVRLittleEndian,
        omit_empty_frames=omit_empty_frames,
    )
    copy_patient_study(sources[0], seg)
    stamp(seg, clock(), "seg", findings.synthetic_trained)
    _fix_dimension_organization(seg, uid_for("seg-dimension-organization"))
    return seg


def _fix_dimension_organization(seg: Dataset, uid: str) -> None:
    """highdicom draws a random Dimension Organization UID; equal inputs must give equal objects."""
    for item in [*seg.DimensionOrganizationSequence, *seg.DimensionIndexSequence]:
        item.DimensionOrganizationUID = uid


def _content_description(findings: CTFindings) -> str:
    suffix = "RESEARCH USE, synthetic-trained" if findings.synthetic_trained else "RESEARCH USE"
    return f"AI lung nodules - {suffix}"


def _segment_labelmap(sources: Sequence[Dataset], findings: CTFindings) -> np.ndarray:
    """label_mask relabelled to segment numbers 1..N (nodule order); other labels dropped."""
    mask = np.asarray(findings.label_mask)
    expected = (len(sources), int(sources[0].Rows), int(sources[0].Columns))
    if mask.shape != expected:
        raise FindingsError(f"label_mask shape {mask.shape} != sources grid (slices, rows, columns) {expected}")
    lookup = np.zeros(int(mask.max()) + 1, dtype=np.uint16)
    for number, nodule in enumerate(findings.nodules, start=1):
        if nodule.label >= lookup.size or not np.any(mask == nodule.label):
            raise FindingsError(f"nodule label {nodule.label} has no voxels in label_mask")
        lookup[nodule.label] = number
    return lookup[mask]


def _descriptions(findings: CTFindings, algorithm: AlgorithmInfo, uid_for: UidFor) -> list[hd.seg.SegmentDescription]:
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name,
        family=codes.ALGORITHM_FAMILY,
        version=algorithm.version,
        source=algorithm.manufacturer,
        parameters=algorithm.parameters or None,
    )
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=segment_label(nodule),
            segmented_property_category=codes.SEGMENTED_CATEGORY,
            segmented_property_type=codes.SEGMENTED_TYPE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
            tracking_uid=tracking_uid(uid_for, nodule),
            tracking_id=f"Nodule {nodule.label}",
            anatomic_regions=[codes.ANATOMIC_REGION],
            display_color=hd.color.CIELabColor.from_rgb(*(MALIGNANT_RGB if nodule.malignant else BENIGN_RGB)),
        )
        for number, nodule in enumerate(findings.nodules, start=1)
    ]
