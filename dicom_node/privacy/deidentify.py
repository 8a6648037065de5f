"""De-identification by PS3.15 Annex E: the Basic Application Level Confidentiality Profile
(Table E.1-1, :mod:`dicom_node.privacy.profile`) with the Retain Longitudinal Temporal Information with
Modified Dates and Retain Patient Characteristics options.

Beyond the table, and stricter than it: every private attribute, curve and overlay group is removed;
a Person Name the table does not list is replaced by a dummy; a UID the table does not list is replaced
too unless it names a class, a transfer syntax or a coding scheme (a well-known UID). Identifiers become
keyed pseudonyms (:class:`Pseudonymizer`), so the copies of one study keep their cross-references and a
re-sent instance gets the same pseudonyms. The :class:`DeidContext` collects, per study, what is needed
to put results back on the original study (:class:`ReidentificationMap`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    SecondaryCaptureImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameSingleBitSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
)

from dicom_node.privacy import profile
from dicom_node.privacy.errors import DeidentificationError
from dicom_node.privacy.pseudonym import Pseudonymizer
from dicom_node.privacy.reidmap import RESTORED_KEYWORDS, ReidentificationMap

#: Type 2 patient/study attributes kept present (empty or dummy), so IOD validators and highdicom
#: accept the de-identified copies as sources.
TYPE2_PRESENT: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)

#: UI attributes the table does not list that name a kind of thing, not an instance: kept.
_KEPT_UID_KEYWORDS = frozenset(
    {
        "TransferSyntaxUID",
        "CodingSchemeUID",
        "ContextUID",
        "ContextGroupExtensionCreatorUID",
        "MappingResourceUID",
        "PrivateInformationCreatorUID",
        "ReferencedTransferSyntaxUIDInFile",
    }
)

_SECONDARY_CAPTURE = frozenset(
    {
        SecondaryCaptureImageStorage,
        MultiFrameSingleBitSecondaryCaptureImageStorage,
        MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        MultiFrameTrueColorSecondaryCaptureImageStorage,
    }
)
_SCREENSHOT_IMAGE_TYPES = frozenset({"SCREEN SAVE", "SCREENSHOT", "SCREEN CAPTURE"})

#: PS3.16 CID 7050 De-identification Method (scheme DCM).
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
MODIFIED_DATES_OPTION = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
PATIENT_CHARACTERISTICS_OPTION = ("113108", "Retain Patient Characteristics Option")

_DUMMY_BY_VR: dict[str, Any] = {
    "PN": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
}


@dataclass(frozen=True)
class DeidOptions:
    retain_dates_shifted: bool = True
    retain_patient_characteristics: bool = True
    allow_secondary_capture: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> DeidOptions:
        return cls(
            retain_dates_shifted=settings.retain_dates_shifted,
            retain_patient_characteristics=settings.retain_patient_characteristics,
            allow_secondary_capture=settings.allow_secondary_capture,
        )


@dataclass
class _StudyRecord:
    """What one study's copies replaced (collected while de-identifying; PHI)."""

    study_uid: str
    attributes: dict[str, str]
    date_shift_days: int
    uid_map: dict[str, str] = field(default_factory=dict)
    pseudonyms: dict[str, str] = field(default_factory=dict)

    def to_map(self) -> ReidentificationMap:
        return ReidentificationMap(
            study_uid=self.study_uid,
            uid_map=self.uid_map,
            attributes=self.attributes,
            pseudonyms=self.pseudonyms,
            date_shift_days=self.date_shift_days,
        )


@dataclass(frozen=True)
class DeidContext:
    """The pseudonymizer, the options, and the re-identification maps collected so far (by
    pseudonymous Study Instance UID). One context per study (the worker) or per export run; not
    thread-safe (it collects as it goes): one per thread."""

    pseudonymizer: Pseudonymizer
    options: DeidOptions = DeidOptions()
    _studies: dict[str, _StudyRecord] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Any) -> DeidContext:
        return cls(Pseudonymizer(settings.site_key), DeidOptions.from_settings(settings))

    @property
    def study_uids(self) -> list[str]:
        """Pseudonymous Study Instance UIDs de-identified with this context."""
        return list(self._studies)

    def reid_map(self, study_uid: str | None = None) -> ReidentificationMap:
        """The map of one study (by pseudonymous UID); without one, of the only study seen."""
        if study_uid is None:
            if len(self._studies) != 1:
                raise DeidentificationError(f"reid_map(): {len(self._studies)} studies seen, name one")
            study_uid = next(iter(self._studies))
        if study_uid not in self._studies:
            raise DeidentificationError(f"reid_map(): study {study_uid} was not de-identified here")
        return self._studies[study_uid].to_map()

    def _record_for(self, ds: Dataset) -> _StudyRecord:
        original = str(ds.get("StudyInstanceUID", "") or "").strip()
        if not original:
            raise DeidentificationError("StudyInstanceUID (0020,000D) is missing or empty")
        pseudo = self.pseudonymizer.uid(original)
        if pseudo not in self._studies:
            self._studies[pseudo] = _StudyRecord(pseudo, _originals(ds), self._shift_days(ds))
        return self._studies[pseudo]

    def _shift_days(self, ds: Dataset) -> int:
        if not self.options.retain_dates_shifted:
            return 0
        return self.pseudonymizer.date_shift_days(str(ds.get("PatientID", "") or ""))


def _originals(ds: Dataset) -> dict[str, str]:
    return {kw: str(ds.data_element(kw).value or "") for kw in RESTORED_KEYWORDS if kw in ds}


def deidentify(ds: Dataset, ctx: DeidContext) -> Dataset:
    """A de-identified copy of ``ds`` (``ds`` itself is not changed); the replaced identifiers are
    recorded in ``ctx``. Raises :class:`DeidentificationError` without a Study Instance UID."""
    record = ctx._record_for(ds)
    walker = _Walker.for_dataset(ds, ctx, record)
    out = walker.dataset(ds)
    for keyword in TYPE2_PRESENT:
        if keyword not in out:
            setattr(out, keyword, "")
    _mark(out, ctx.options)
    if getattr(ds, "file_meta", None) is not None:
        out.file_meta = _file_meta(ds.file_meta, out)
    return out


def _mark(out: Dataset, options: DeidOptions) -> None:
    """PS3.15 E.1.1: say that, and how, the instance was de-identified."""
    methods = [BASIC_PROFILE]
    if options.retain_dates_shifted:
        methods.append(MODIFIED_DATES_OPTION)
    if options.retain_patient_characteristics:
        methods.append(PATIENT_CHARACTERISTICS_OPTION)
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = ["pulmonode PS3.15 E.1-1 basic profile"] + [
        meaning[:64] for _, meaning in methods[1:]
    ]
    out.DeidentificationMethodCodeSequence = Sequence([_code(value, meaning) for value, meaning in methods])
    out.LongitudinalTemporalInformationModified = "MODIFIED" if options.retain_dates_shifted else "REMOVED"


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _file_meta(meta: FileMetaDataset, out: Dataset) -> FileMetaDataset:
    """A fresh file meta: the source AE titles (0002,0016-0018) can name the sending site."""
    new = FileMetaDataset()
    new.MediaStorageSOPClassUID = out.get("SOPClassUID", meta.get("MediaStorageSOPClassUID"))
    new.MediaStorageSOPInstanceUID = out.get("SOPInstanceUID", "")
    new.TransferSyntaxUID = meta.TransferSyntaxUID
    new.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return new


@dataclass(frozen=True)
class _Walker:
    """Applies the table to one instance, at every sequence depth."""

    pseudonymizer: Pseudonymizer
    options: DeidOptions
    record: _StudyRecord
    patient_id: str  # this instance's pseudonymous Patient ID
    shift_days: int

    @classmethod
    def for_dataset(cls, ds: Dataset, ctx: DeidContext, record: _StudyRecord) -> _Walker:
        pz = ctx.pseudonymizer
        original_id = str(ds.get("PatientID", "") or "")
        return cls(pz, ctx.options, record, pz.patient_id(original_id), ctx._shift_days(ds))

    def dataset(self, ds: Dataset) -> Dataset:
        out = Dataset()
        for elem in ds:  # iterating converts raw elements with the dataset's character set
            new = self.element(elem)
            if new is not None:
                out.add(new)
        return out

    def element(self, elem: DataElement) -> DataElement | None:
        if elem.tag.is_private or _in_removed_group(elem.tag.group):
            return None
        if elem.keyword in _PSEUDONYMS:
            return self._pseudonym(elem)
        opts = self.options
        action = profile.action(elem.tag, opts.retain_dates_shifted, opts.retain_patient_characteristics)
        return _ACTIONS[action or _unlisted_action(elem)](self, elem)

    # -- actions -----------------------------------------------------------------------------
    def remove(self, elem: DataElement) -> None:
        return None

    def keep(self, elem: DataElement) -> DataElement:
        if elem.VR == "SQ":
            return self._sequence(elem)
        return copy.deepcopy(elem)

    def empty(self, elem: DataElement) -> DataElement:
        value = Sequence([]) if elem.VR == "SQ" else empty_value_for_VR(elem.VR)
        return DataElement(elem.tag, elem.VR, value)

    def dummy(self, elem: DataElement) -> DataElement:
        if elem.VR == "SQ":
            return self._sequence(elem)  # the items' attributes go through the table
        if elem.VR == "UI":
            return self.replace_uid(elem)
        if elem.VR not in _DUMMY_BY_VR or _is_empty(elem.value):
            return self.empty(elem)
        return DataElement(elem.tag, elem.VR, _DUMMY_BY_VR[elem.VR])

    def replace_uid(self, elem: DataElement) -> DataElement:
        if elem.VR == "SQ":
            return self._sequence(elem)
        return DataElement(elem.tag, elem.VR, _map_values(elem.value, self._uid))

    def clean_date(self, elem: DataElement) -> DataElement | None:
        """Retain Longitudinal Temporal Information with Modified Dates: DA and DT move by the
        patient's offset (intervals kept), TM stays; what cannot be shifted is emptied."""
        if elem.VR == "TM":
            return copy.deepcopy(elem)
        shift = {"DA": _shift_da, "DT": _shift_dt}.get(elem.VR)
        if shift is None:
            return None
        shifted = _map_values(elem.value, lambda v: shift(v, self.shift_days))
        return DataElement(elem.tag, elem.VR, shifted)

    # -- helpers -----------------------------------------------------------------------------
    def _sequence(self, elem: DataElement) -> DataElement:
        return DataElement(elem.tag, "SQ", Sequence([self.dataset(item) for item in elem.value]))

    def _uid(self, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        pseudo = self.pseudonymizer.uid(value)
        self.record.uid_map[pseudo] = value
        return pseudo

    def _pseudonym(self, elem: DataElement) -> DataElement:
        original = str(elem.value or "").strip()
        value = _PSEUDONYMS[elem.keyword](self, original) if original else ""
        if value:
            self.record.pseudonyms[elem.keyword] = value
        return DataElement(elem.tag, elem.VR, value)


_PSEUDONYMS: dict[str, Callable[[_Walker, str], str]] = {
    "PatientID": lambda w, _: w.patient_id,
    "PatientName": lambda w, _: f"ANON^{w.patient_id}",
    "AccessionNumber": lambda w, v: w.pseudonymizer.token(v, "accession", 16),
    "StudyID": lambda w, v: w.pseudonymizer.token(v, "study-id", 16),
}

_ACTIONS: dict[str, Callable[[_Walker, DataElement], DataElement | None]] = {
    "X": _Walker.remove,
    "K": _Walker.keep,
    "Z": _Walker.empty,
    "D": _Walker.dummy,
    "U": _Walker.replace_uid,
    "U*": _Walker.replace_uid,
    "C": _Walker.clean_date,
}


def _unlisted_action(elem: DataElement) -> str:
    """Attributes Table E.1-1 does not list: kept, except names (dummy) and instance UIDs."""
    if elem.VR == "PN":
        return "D"
    if elem.VR == "UI" and not _is_well_known_uid(elem):
        return "U"
    return "K"


def _is_well_known_uid(elem: DataElement) -> bool:
    if "ClassUID" in elem.keyword or elem.keyword in _KEPT_UID_KEYWORDS:
        return True
    values = elem.value if isinstance(elem.value, (list, MultiValue)) else [elem.value]
    return all(str(v or "").strip() in UID_dictionary or not str(v or "").strip() for v in values)


def _in_removed_group(group: int) -> bool:
    return any(group & mask == value for mask, value in profile.REMOVED_GROUP_MASKS)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, MultiValue)) and len(value) == 0)


def _map_values(value: Any, fn: Callable[[str], str]) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, MultiValue)):
        return [fn(str(v)) for v in value]
    return fn(str(value))


def _shift_da(value: str, days: int) -> str:
    value = value.strip()
    if len(value) != 8 or not value.isdigit():
        return ""  # not a full date (a range, a partial date): cannot shift, so do not keep it
    try:
        original = date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return ""
    return (original + timedelta(days=days)).strftime("%Y%m%d")


def _shift_dt(value: str, days: int) -> str:
    value = value.strip()
    shifted = _shift_da(value[:8], days)
    return shifted + value[8:] if shifted else ""


def burned_in_risk(ds: Dataset, allow_secondary_capture: bool) -> str | None:
    """Why ``ds``'s pixels may show burned-in PHI, or None. Such instances are quarantined and never
    analysed: Table E.1-1 cannot clean pixels, and the node does not claim the Clean Pixel Data option."""
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "BurnedInAnnotation (0028,0301) is YES"
    if allow_secondary_capture:
        return None
    if str(ds.get("SOPClassUID", "")) in _SECONDARY_CAPTURE:
        return f"Secondary Capture image (SOP Class {ds.SOPClassUID}): screenshots may show PHI"
    image_types = {str(v).strip().upper() for v in _values(ds.get("ImageType"))}
    if image_types & _SCREENSHOT_IMAGE_TYPES:
        return f"ImageType (0008,0008) {'/'.join(sorted(image_types & _SCREENSHOT_IMAGE_TYPES))}: a screen capture"
    return None


def _values(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    return value if isinstance(value, (list, MultiValue)) else (value,)
