"""Re-identification: a result built on a de-identified study, put back on the original study.

Every UID found in the map is replaced by its original, at any depth (Referenced Series/SOP/Image,
Source and Derivation Image, Current Requested Procedure Evidence, SR content references, Frame of
Reference, file meta); UIDs not in the map (the result's own, class UIDs) stay. The patient and study
module is restored. The result's own dates (content date, series date) are "now" and stay as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicom_node.privacy.reidmap import RESTORED_KEYWORDS, ReidentificationMap

#: Marks of a de-identified instance (PS3.15 E.1.1): wrong on a re-identified result.
_DEID_MARKS = (
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)


def reidentify(ds: Dataset, reid_map: ReidentificationMap) -> Dataset:
    """A copy of ``ds`` with the map's UIDs and the original patient/study module restored."""
    out = copy.deepcopy(ds)
    for elem in _all_elements(out):
        if elem.VR == "UI" and elem.value:
            elem.value = _map_uids(elem.value, reid_map.uid_map)
    _restore_patient_study(out, reid_map)
    for keyword in _DEID_MARKS:
        if keyword in out:
            delattr(out, keyword)
    return out


def leaked_pseudonyms(ds: Dataset, reid_map: ReidentificationMap) -> list[str]:
    """Every place where a pseudonym of the map is still present (empty: safe to deliver)."""
    pseudonyms = {value for value in reid_map.pseudonyms.values() if value}
    found = []
    for elem in _all_elements(ds):
        if elem.VR == "SQ":
            continue  # iterall() visits the items' elements
        for value in _strings(elem.value):
            if elem.VR == "UI" and value in reid_map.uid_map:
                found.append(f"{elem.tag} {elem.keyword}: pseudonymous UID {value}")
            elif any(p in value for p in pseudonyms):
                found.append(f"{elem.tag} {elem.keyword}: pseudonym in {value!r}")
    return found


def _restore_patient_study(out: Dataset, reid_map: ReidentificationMap) -> None:
    _force_decoded(out)
    for keyword in RESTORED_KEYWORDS:
        if keyword in reid_map.attributes:
            setattr(out, keyword, reid_map.attributes[keyword])
        elif keyword in reid_map.pseudonyms and keyword in out:
            setattr(out, keyword, "")  # the original had none: the pseudonym must not stay
    restored = "".join(reid_map.attributes.values())
    if not restored.isascii() and _charset(out) != "ISO_IR 192":
        out.SpecificCharacterSet = "ISO_IR 192"  # UTF-8 can encode any restored name


def _force_decoded(ds: Dataset) -> None:
    """Convert raw elements now, while the character set they were read with is still in place."""
    for _ in _all_elements(ds):
        pass


def _charset(ds: Dataset) -> str:
    value = ds.get("SpecificCharacterSet", "")
    return "\\".join(value) if isinstance(value, (list, MultiValue)) else str(value)


def _all_elements(ds: Dataset) -> Iterator[DataElement]:
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from meta
    yield from ds.iterall()


def _map_uids(value: Any, uid_map: Any) -> Any:
    if isinstance(value, (list, MultiValue)):
        return [uid_map.get(str(v), str(v)) for v in value]
    return uid_map.get(str(value), str(value))


def _strings(value: Any) -> list[str]:
    if value is None or isinstance(value, (bytes, bytearray, Dataset)):
        return []
    if isinstance(value, (list, MultiValue)):
        return [str(v) for v in value if not isinstance(v, (Dataset, bytes))]
    return [str(value)]
