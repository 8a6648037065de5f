"""Key Object Selection Document (PS3.3 A.35.4, TID 2010): the key slice of each nodule."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as std

from ai_engine.findings import CTFindings, Nodule
from dicom_node.results import codes
from dicom_node.results.common import (
    SERIES_NUMBER, AlgorithmInfo, Clock, UidFor, check_sources, copy_patient_study, stamp, uids, with_type2,
)
from dicom_node.results.errors import FindingsError


def nodule_line(nodule: Nodule, image_number: int) -> str:
    """One nodule as a reader sees it in the key-image description."""
    category = f", Lung-RADS {nodule.lung_rads.category}" if nodule.lung_rads else ""
    subtype = f", {nodule.subtype.value}" if nodule.subtype else ""
    return (
        f"Nodule {nodule.label} (image {image_number}): {nodule.description}, {nodule.nodule_type.value}, "
        f"malignancy {nodule.malignancy_probability:.0%}{subtype}{category}"
    )


def key_slices(sources: Sequence[Dataset], findings: CTFindings) -> list[Dataset]:
    """The key slice of each nodule, in nodule order, without repeats."""
    chosen: dict[str, Dataset] = {}
    for nodule in findings.nodules:
        if not 0 <= nodule.key_slice < len(sources):
            raise FindingsError(f"nodule {nodule.label}: key_slice {nodule.key_slice} outside 0..{len(sources) - 1}")
        ds = sources[nodule.key_slice]
        chosen.setdefault(ds.SOPInstanceUID, ds)
    return list(chosen.values())


def build_kos(
    sources: Sequence[Dataset],
    findings: CTFindings,
    algorithm: AlgorithmInfo,
    uid_for: UidFor,
    clock: Clock,
    sr: Dataset | None = None,
) -> Dataset | None:
    """KOS "Of Interest" flagging each nodule's key slice (and the SR, if given); None without nodules."""
    check_sources(sources)
    if not findings.nodules:
        return None
    referenced = key_slices(sources, findings) + ([sr] if sr is not None else [])
    lines = [nodule_line(n, int(sources[n.key_slice].InstanceNumber)) for n in findings.nodules]
    content = hd.ko.KeyObjectSelection(
        document_title=codes.KOS_TITLE,
        referenced_objects=referenced,
        observer_device_context=_device(algorithm),
        description="\n".join([findings.disclaimer, *lines]),
    )
    series_uid, sop_uid = uids(uid_for, "kos")
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=[with_type2(referenced[0]), *referenced[1:]],
        content=content,
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER["kos"],
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=algorithm.manufacturer,
    )
    copy_patient_study(sources[0], kos)
    stamp(kos, clock(), "kos", findings.synthetic_trained)
    return kos


def _device(algorithm: AlgorithmInfo) -> hd.sr.ObserverContext:
    return hd.sr.ObserverContext(
        std.cid270.Device,
        hd.sr.DeviceObserverIdentifyingAttributes(
            uid=algorithm.device_uid,
            name=algorithm.name,
            manufacturer_name=algorithm.manufacturer,
            model_name=algorithm.model_name,
        ),
    )
