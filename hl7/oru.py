"""ORU^R01 (HL7 v2.5.1, Unsolicited Observation Message): pulmonode's findings for the EHR.

One message per analysed study: MSH, PID (the ORIGINAL patient identifiers), ORC/OBR (the order,
by accession), NTE (the research-use disclaimer), then OBX rows — per nodule (OBX-4 sub-ID = the
nodule label) its type, size, volume, attenuation, calcification, malignancy and Lung-RADS, then
the exam's Lung-RADS, its management, and the DICOM Study Instance UID so the EHR can open the
study in the PACS (IHE Radiology: ``113014^DICOM Study^DCM``). A re-opened study's new result is
sent with result status C (correction) so it replaces the earlier one.

``build_oru`` is pure: values in, ER7 text out (segments separated by ``\\r``). The message is
built with hl7apy and validated with hl7apy at STRICT level before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Group, Message, Segment
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from hl7.errors import OruBuildError

VERSION = "2.5.1"
MESSAGE_TYPE = "ORU^R01^ORU_R01"
MAX_CONTROL_ID = 20  # MSH-10 length in v2.5.1
LOCAL = "99PLN"  # HL7 Table 0396: "99zzz" names a local coding system


@dataclass(frozen=True)
class Code:
    """A coded value (CWE/CE components 1-3)."""

    code: str
    text: str
    system: str = LOCAL

    def er7(self) -> str:
        return "^".join(escape(part) for part in (self.code, self.text, self.system))


# --- the values the builder takes -----------------------------------------------------------


@dataclass(frozen=True)
class MessageHeader:
    """MSH-3..6 from the EHR destination's configuration; MSH-11 processing ID (P, T or D)."""

    sending_application: str = "PULMONODE"
    sending_facility: str = "PULMONODE"
    receiving_application: str = "EHR"
    receiving_facility: str = "HOSPITAL"
    processing_id: str = "P"


@dataclass(frozen=True)
class OrderContext:
    """The ORIGINAL (re-identified) patient and order the result belongs to."""

    patient_id: str
    patient_name: str  # DICOM PN: Family^Given^Middle^Prefix^Suffix
    accession: str
    study_uid: str
    issuer: str | None = None  # Issuer of Patient ID → PID-3.4 assigning authority
    birth_date: date | None = None
    sex: str = ""  # DICOM M, F, O or empty
    study_datetime: datetime | None = None
    placer_order_number: str | None = None  # default: the accession number
    filler_order_number: str | None = None  # default: the accession number


@dataclass(frozen=True)
class LungRads:
    """A Lung-RADS v2022 category ("0", "1", "2", "3", "4A", "4B", "4X") and its management."""

    category: str
    management: str
    s_modifier: bool = False


@dataclass(frozen=True)
class NoduleResult:
    """One nodule's values, as the EHR gets them."""

    label: int  # 1-based; becomes OBX-4 sub-ID
    long_axis_mm: float
    short_axis_mm: float
    mean_diameter_mm: float
    volume_mm3: float
    mean_hu: float
    nodule_type: str  # "solid", "part-solid", "ground-glass"
    calcified: bool
    malignancy_probability: float
    malignant: bool
    subtype: str | None = None  # "adenocarcinoma", "squamous cell carcinoma", "large cell carcinoma"
    lung_rads: LungRads | None = None
    location: str = ""  # e.g. "right upper lobe"


@dataclass(frozen=True)
class ResultFindings:
    """A study's findings as plain values (the node converts ai_engine's CTFindings)."""

    nodules: tuple[NoduleResult, ...]
    exam_lung_rads: LungRads
    disclaimer: str


# --- code tables ---------------------------------------------------------------------------

UNIVERSAL_SERVICE = Code("24627-2", "CT Chest", "LN")
DICOM_STUDY = Code("113014", "DICOM Study", "DCM")

OBS_NODULE_TYPE = Code("PLN-NODTYPE", "Nodule type")
OBS_LOCATION = Code("PLN-LOCATION", "Nodule location")
OBS_LONG_AXIS = Code("PLN-LONGAXIS", "Nodule long axis diameter")
OBS_SHORT_AXIS = Code("PLN-SHORTAXIS", "Nodule short axis diameter")
OBS_MEAN_DIAMETER = Code("PLN-MEANDIAM", "Nodule mean diameter (Lung-RADS)")
OBS_VOLUME = Code("PLN-VOLUME", "Nodule volume")
OBS_MEAN_HU = Code("PLN-MEANHU", "Nodule mean attenuation")
OBS_CALCIFIED = Code("PLN-CALCIFIED", "Nodule calcified")
OBS_MALIGNANCY_P = Code("PLN-MALIGNP", "Malignancy probability (AI model)")
OBS_MALIGNANCY_CLASS = Code("PLN-MALIGNCLASS", "Malignancy class (AI model)")
OBS_SUBTYPE = Code("PLN-SUBTYPE", "Histologic subtype (AI model)")
OBS_LUNG_RADS = Code("PLN-LUNGRADS", "Lung-RADS v2022 category")
OBS_MANAGEMENT = Code("PLN-MANAGEMENT", "Lung-RADS v2022 management")
OBS_EXAM_LUNG_RADS = Code("PLN-EXAMLUNGRADS", "Exam Lung-RADS v2022 category")
OBS_EXAM_MANAGEMENT = Code("PLN-EXAMMANAGEMENT", "Exam Lung-RADS v2022 management")

NODULE_TYPES = {
    "solid": Code("SOLID", "Solid nodule"),
    "part-solid": Code("PARTSOLID", "Part-solid nodule"),
    "ground-glass": Code("GGN", "Ground-glass nodule"),
}
MALIGNANCY_CLASSES = {
    True: Code("MALIGNANT", "Suspicious for malignancy (AI model)"),
    False: Code("BENIGN", "Not suspicious for malignancy (AI model)"),
}
SUBTYPES = {
    "adenocarcinoma": Code("ADENO", "Adenocarcinoma"),
    "squamous cell carcinoma": Code("SCC", "Squamous cell carcinoma"),
    "large cell carcinoma": Code("LCC", "Large cell carcinoma"),
}
YES_NO = {True: Code("Y", "Yes", "HL70136"), False: Code("N", "No", "HL70136")}
LUNG_RADS_CATEGORIES = frozenset({"0", "1", "2", "3", "4A", "4B", "4X"})
SEX = {"M": "M", "F": "F", "O": "O", "": "U"}  # DICOM (0010,0040) → HL7 Table 0001

UNIT_MM = Code("mm", "millimeter", "UCUM")
UNIT_MM3 = Code("mm3", "cubic millimeter", "UCUM")
UNIT_HU = Code("[hnsf'U]", "Hounsfield unit", "UCUM")
UNIT_PROBABILITY = Code("{probability}", "probability (0-1)", "UCUM")


@dataclass(frozen=True)
class Obx:
    """One observation before numbering: value type, identifier, sub-ID, ER7 value, units."""

    value_type: str  # HL7 Table 0125: NM, CWE, ST, TX
    identifier: Code
    sub_id: str
    value: str  # already ER7 (escaped / components joined)
    units: Code | None = None
    status: str | None = None  # None: the message's F or C


# --- the builder ---------------------------------------------------------------------------


def build_oru(
    order: OrderContext,
    findings: ResultFindings,
    *,
    control_id: str,
    now: datetime,
    correction: bool,
    header: MessageHeader = MessageHeader(),
) -> str:
    """The ORU^R01 ER7 text (``\\r``-separated segments), validated STRICT by hl7apy.

    ``correction``: the study was re-opened and this result supersedes an earlier one (OBR-25 and
    OBX-11 = C instead of F). Raises OruBuildError naming the field when a value is unusable."""
    status = "C" if correction else "F"
    try:
        message = _message(order, findings, control_id, now, status, header)
        message.validate()
        er7 = message.to_er7()
        parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT).validate()
    except HL7apyException as exc:
        raise OruBuildError(f"ORU^R01 {control_id!r} is not valid HL7 v{VERSION}: {exc}") from exc
    return er7


def _message(
    order: OrderContext, findings: ResultFindings, control_id: str, now: datetime, status: str, header: MessageHeader
) -> Message:
    message = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    _msh(message.msh, header, control_id, now)
    result = message.add_group("ORU_R01_PATIENT_RESULT")
    _pid(result.add_group("ORU_R01_PATIENT").pid, order)
    observation = result.add_group("ORU_R01_ORDER_OBSERVATION")
    _orc(observation.orc, order, now)
    _obr(observation.obr, order, now, status)
    _nte(observation.add_segment("NTE"), findings.disclaimer)
    for set_id, obx in enumerate(observations(order, findings), start=1):
        _obx(observation.add_group("ORU_R01_OBSERVATION"), set_id, obx, status, now)
    return message


def _msh(msh: Segment, header: MessageHeader, control_id: str, now: datetime) -> None:
    if not 0 < len(control_id) <= MAX_CONTROL_ID:
        raise OruBuildError(f"MSH-10 message control ID {control_id!r} must be 1-{MAX_CONTROL_ID} characters")
    msh.msh_3 = escape(header.sending_application)
    msh.msh_4 = escape(header.sending_facility)
    msh.msh_5 = escape(header.receiving_application)
    msh.msh_6 = escape(header.receiving_facility)
    msh.msh_7 = dtm(now)
    msh.msh_9 = MESSAGE_TYPE
    msh.msh_10 = escape(control_id)
    msh.msh_11 = escape(header.processing_id)
    msh.msh_12 = VERSION
    msh.msh_18 = "UNICODE UTF-8"


def _pid(pid: Segment, order: OrderContext) -> None:
    if not order.patient_id:
        raise OruBuildError("PID-3 patient identifier is empty (DICOM PatientID)")
    if order.sex.upper() not in SEX:
        raise OruBuildError(f"PID-8 administrative sex: DICOM PatientSex {order.sex!r} is not M, F, O or empty")
    pid.pid_1 = "1"
    authority = escape(order.issuer) if order.issuer else ""
    pid.pid_3 = f"{escape(order.patient_id)}^^^{authority}^MR"  # CX-5 MR: medical record number
    pid.pid_5 = xpn(order.patient_name)
    if order.birth_date is not None:
        pid.pid_7 = order.birth_date.strftime("%Y%m%d")
    pid.pid_8 = SEX[order.sex.upper()]


def _orc(orc: Segment, order: OrderContext, now: datetime) -> None:
    orc.orc_1 = "RE"  # observations to follow
    orc.orc_2 = escape(order.placer_order_number or order.accession)
    orc.orc_3 = escape(order.filler_order_number or order.accession)
    orc.orc_5 = "CM"  # order completed
    orc.orc_9 = dtm(now)


def _obr(obr: Segment, order: OrderContext, now: datetime, status: str) -> None:
    if not order.accession:
        raise OruBuildError("OBR-3 filler order number: the study has no AccessionNumber")
    obr.obr_1 = "1"
    obr.obr_2 = escape(order.placer_order_number or order.accession)
    obr.obr_3 = escape(order.filler_order_number or order.accession)
    obr.obr_4 = UNIVERSAL_SERVICE.er7()
    if order.study_datetime is not None:
        obr.obr_7 = dtm(order.study_datetime)
    obr.obr_18 = escape(order.accession)  # radiology convention: placer field 1 = accession
    obr.obr_22 = dtm(now)
    obr.obr_24 = "CT"  # HL7 Table 0074 diagnostic service section
    obr.obr_25 = status


def _nte(nte: Segment, disclaimer: str) -> None:
    if not disclaimer:
        raise OruBuildError("NTE-3: the research-use disclaimer is empty")
    nte.nte_1 = "1"
    nte.nte_2 = "L"  # HL7 Table 0105: ancillary (filler) department is the source
    nte.nte_3 = escape(disclaimer)
    nte.nte_4 = "RE^Remark^HL70364"


def _obx(group: Group, set_id: int, obx: Obx, status: str, now: datetime) -> None:
    segment = group.obx
    segment.obx_1 = str(set_id)
    segment.obx_2 = obx.value_type
    segment.obx_3 = obx.identifier.er7()
    segment.obx_4 = obx.sub_id
    if obx.value_type == "TX":
        for line in text_repetitions(obx.value):  # hl7apy holds each OBX-5 repetition to 199
            segment.add_field("obx_5").value = line
    else:
        segment.obx_5 = obx.value
    if obx.units is not None:
        segment.obx_6 = obx.units.er7()
    segment.obx_11 = obx.status or status
    segment.obx_19 = dtm(now)  # date/time of the analysis


def text_repetitions(er7_text: str, limit: int = 199) -> list[str]:
    """TX text as OBX-5 repetitions of at most ``limit`` characters, split between words; a word
    longer than ``limit`` is cut into pieces, never inside an escape sequence (nothing is lost)."""
    lines: list[str] = []
    for word in er7_text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= limit:
            lines[-1] += " " + word
        else:
            lines += _pieces(word, limit)
    return lines


def _pieces(word: str, limit: int) -> list[str]:
    out, start = [], 0
    while len(word) - start > limit:
        cut = start + limit
        if word.count("\\", start, cut) % 2:  # an escape (\F\, \X0D\ ...) is open at the cut
            opened = word.rindex("\\", start, cut)
            cut = opened if opened > start else cut  # an escape longer than ``limit`` is cut anyway
        out.append(word[start:cut])
        start = cut
    return out + [word[start:]]


# --- observations: the findings as OBX rows ------------------------------------------------


def observations(order: OrderContext, findings: ResultFindings) -> list[Obx]:
    """Every OBX of the message in order: per nodule, then the exam, then the study reference."""
    rows = [row for nodule in findings.nodules for row in nodule_observations(nodule)]
    rows += exam_observations(findings.exam_lung_rads)
    # IHE Radiology: the DICOM study reference is an order detail, status O
    rows.append(Obx("ST", DICOM_STUDY, "", escape(order.study_uid), status="O"))
    return rows


def nodule_observations(n: NoduleResult) -> list[Obx]:
    sub = str(n.label)
    rows = [Obx("CWE", OBS_NODULE_TYPE, sub, _lookup(NODULE_TYPES, n.nodule_type, "nodule type").er7())]
    if n.location:
        rows.append(Obx("ST", OBS_LOCATION, sub, escape(n.location)))
    rows += [
        Obx("NM", OBS_LONG_AXIS, sub, nm(n.long_axis_mm, 1), UNIT_MM),
        Obx("NM", OBS_SHORT_AXIS, sub, nm(n.short_axis_mm, 1), UNIT_MM),
        Obx("NM", OBS_MEAN_DIAMETER, sub, nm(n.mean_diameter_mm, 1), UNIT_MM),
        Obx("NM", OBS_VOLUME, sub, nm(n.volume_mm3, 1), UNIT_MM3),
        Obx("NM", OBS_MEAN_HU, sub, nm(n.mean_hu, 1), UNIT_HU),
        Obx("CWE", OBS_CALCIFIED, sub, YES_NO[n.calcified].er7()),
        Obx("NM", OBS_MALIGNANCY_P, sub, nm(n.malignancy_probability, 3), UNIT_PROBABILITY),
        Obx("CWE", OBS_MALIGNANCY_CLASS, sub, MALIGNANCY_CLASSES[n.malignant].er7()),
    ]
    if n.subtype is not None:
        rows.append(Obx("CWE", OBS_SUBTYPE, sub, _lookup(SUBTYPES, n.subtype, "subtype").er7()))
    if n.lung_rads is not None:
        rows.append(Obx("CWE", OBS_LUNG_RADS, sub, lung_rads_code(n.lung_rads).er7()))
        rows.append(Obx("TX", OBS_MANAGEMENT, sub, escape(n.lung_rads.management)))
    return rows


def exam_observations(lung_rads: LungRads) -> list[Obx]:
    return [
        Obx("CWE", OBS_EXAM_LUNG_RADS, "", lung_rads_code(lung_rads).er7()),
        Obx("TX", OBS_EXAM_MANAGEMENT, "", escape(lung_rads.management)),
    ]


def lung_rads_code(lung_rads: LungRads) -> Code:
    """E.g. ``4A`` / ``2S`` (the S modifier is part of the reported category)."""
    if lung_rads.category not in LUNG_RADS_CATEGORIES:
        raise OruBuildError(f"OBX-5 Lung-RADS category {lung_rads.category!r} is not one of {sorted(LUNG_RADS_CATEGORIES)}")
    code = lung_rads.category + ("S" if lung_rads.s_modifier else "")
    return Code(code, f"Lung-RADS v2022 category {code}")


def _lookup(table: dict[str, Code], value: str, what: str) -> Code:
    try:
        return table[value]
    except KeyError:
        raise OruBuildError(f"OBX-5 {what} {value!r} is not one of {sorted(table)}") from None


# --- ER7 value formatting ------------------------------------------------------------------

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def escape(text: str) -> str:
    """HL7 escape sequences for the delimiters (escape char first). A line break would end the
    segment and hl7apy does not keep ``\\.br\\``, so it becomes a space."""
    for char, sequence in _ESCAPES:
        text = text.replace(char, sequence)
    return " ".join(text.splitlines())


def unescape(text: str) -> str:
    """The inverse of ``escape`` (for readers of our messages, e.g. tests and the listener)."""
    for char, sequence in reversed(_ESCAPES):
        text = text.replace(sequence, char)
    return text


def nm(value: float, decimals: int) -> str:
    """An NM value: fixed decimals, no exponent (HL7 NM has none)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise OruBuildError(f"OBX-5 NM value {value!r} is not a finite number")
    return f"{value:.{decimals}f}"


def dtm(moment: datetime) -> str:
    """HL7 DTM: YYYYMMDDHHMMSS, with +/-ZZZZ when the datetime knows its zone."""
    return moment.strftime("%Y%m%d%H%M%S%z")


def xpn(dicom_pn: str) -> str:
    """DICOM PN (Family^Given^Middle^Prefix^Suffix, first component group) → HL7 XPN
    (Family^Given^Middle^Suffix^Prefix)."""
    alphabetic = dicom_pn.split("=", 1)[0]
    parts = (alphabetic.split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = parts
    if not family and not given:
        raise OruBuildError("PID-5 patient name: DICOM PatientName has no family or given name")
    return "^".join(escape(p) for p in (family, given, middle, suffix, prefix)).rstrip("^")
