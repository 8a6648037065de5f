"""PHI-laden synthetic studies for the privacy tests: every place PHI hides in real CT files.

The study comes from the fictitious modality (``tests.helpers.write_study``) with extra patient,
staff and institution attributes, then each file gets private tags, nested sequences that carry PHI,
an overlay, a curve, an icon image and a reference to its neighbour slice.
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from dicom_node.modality import FictitiousPatient
from tests.helpers import write_study

SITE_KEY = "privacy-test-site-key-0123456789"
OTHER_KEY = "another-site-key-9876543210abcdef"
ICON_TEXT = b"ICONPHI-MUELLER!"  # the icon's pixels "show" the patient name

EXTRA = {
    "InstitutionAddress": "12 Privet Drive Smalltown",
    "InstitutionalDepartmentName": "Radiology Dept Seven",
    "OperatorsName": "OPERATOR^OLGA",
    "PerformingPhysicianName": "PERFORMER^PAVEL",
    "NameOfPhysiciansReadingStudy": "READER^ROBERT",
    "RequestingPhysician": "REQUESTER^RITA",
    "EvaluatorName": "EVALUATOR^EVA",  # a Person Name Table E.1-1 omits
    "StationName": "CTSTATION77",
    "DeviceSerialNumber": "SN-99887766",
    "OtherPatientNames": "MAIDEN^JOERGINA",
    "PatientAddress": "34 Elm Street Springfield",
    "PatientTelephoneNumbers": "555-0142-7788",
    "MilitaryRank": "CAPTAIN-XQ",
    "IssuerOfPatientID": "HOSPITAL-ISSUER-XY",
    "AdditionalPatientHistory": "smoker since 1975 per Dr Quincy",
    "ImageComments": "patient Schrödinger moved",
    "PatientWeight": "81.5",
    "SeriesDate": "20240317",  # two days after the study date: the interval must survive shifting
    "AcquisitionDateTime": "20240317101500.250000",
}

#: Strings that must not survive de-identification under any option.
PHI_ALWAYS = [
    "MÜLLER", "JÖRG", "ÉMILE", "PHI-ID-90210", "19580412", "ACC-PHI-5531", "HOUSEMAN", "GREGOR",
    "St Elsewhere", "SID-4711", "20240315", "20240317", "Privet Drive", "Radiology Dept", "OPERATOR",
    "OLGA", "PERFORMER", "EVALUATOR", "PAVEL", "READER", "REQUESTER", "CTSTATION77", "SN-99887766", "MAIDEN",
    "JOERGINA", "Elm Street", "555-0142", "CAPTAIN-XQ", "HOSPITAL-ISSUER", "Dr Quincy", "Schrödinger",
    "OTHER-ID-31337", "OTHER-ISSUER-QQ", "REQPROC-55123", "SPS-77123", "WITNESS", "WALTER",
    "CT CHEST LOW DOSE", "ACME PHI", "overlay of", "curve of", ICON_TEXT.decode(),
]
#: Kept by Retain Patient Characteristics.
PHI_CHARACTERISTICS = ["067Y", "81.5"]
#: Times are kept by Retain Longitudinal Temporal Information with Modified Dates.
PHI_TIMES = ["101500"]


def phi_patient(charset: str = "ISO_IR 192") -> FictitiousPatient:
    return FictitiousPatient(
        name="MÜLLER^JÖRG^ÉMILE",
        patient_id="PHI-ID-90210",
        birth_date="19580412",
        sex="M",
        age="067Y",
        accession_number="ACC-PHI-5531",
        referring_physician="HOUSEMAN^GREGOR",
        institution="St Elsewhere Clinic",
        study_date="20240315",
        study_time="101500",
        study_id="SID-4711",
        extra={**EXTRA, "SpecificCharacterSet": charset},
    )


def _item(**attrs: object) -> Dataset:
    item = Dataset()
    for keyword, value in attrs.items():
        setattr(item, keyword, value)
    return item


def add_phi(ds: Dataset, next_sop_uid: str) -> None:
    """Hide PHI where the table, not a keyword list, has to find it."""
    block = ds.private_block(0x0029, "ACME PHI 1.0", create=True)
    block.add_new(0x10, "LO", "MÜLLER JÖRG private copy")
    block.add_new(0x11, "LO", "PHI-ID-90210")
    ds.OtherPatientIDsSequence = Sequence(
        [_item(PatientID="OTHER-ID-31337", IssuerOfPatientID="OTHER-ISSUER-QQ", TypeOfPatientID="TEXT")]
    )
    ds.RequestAttributesSequence = Sequence(
        [_item(AccessionNumber="ACC-PHI-5531", RequestedProcedureID="REQPROC-55123", ScheduledProcedureStepID="SPS-77123")]
    )
    ds.ReferencedPatientSequence = Sequence(
        [_item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.1.1", ReferencedSOPInstanceUID="1.2.3.4.5.6.7.8.99887766")]
    )
    concept = _item(CodeValue="121008", CodingSchemeDesignator="DCM", CodeMeaning="Person Observer Name")
    ds.ContentSequence = Sequence(
        [_item(ValueType="PNAME", ConceptNameCodeSequence=Sequence([concept]), PersonName="WITNESS^WALTER")]
    )
    ds.ReferencedImageSequence = Sequence(
        [_item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=next_sop_uid)]
    )
    ds.MultiFrameSourceSOPInstanceUID = "1.2.3.4.5.6.7.8.55555"  # an instance UID Table E.1-1 omits
    _add_overlay_curve_icon(ds)


def _add_overlay_curve_icon(ds: Dataset) -> None:
    ds.add_new(0x60000010, "US", 16)
    ds.add_new(0x60000011, "US", 16)
    ds.add_new(0x60000022, "LO", "overlay of MÜLLER")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 16)
    ds.add_new(0x50000022, "LO", "curve of PHI-ID-90210")
    icon = _item(
        SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2", Rows=4, Columns=4,
        BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0,
    )
    icon.PixelData = ICON_TEXT
    ds.IconImageSequence = Sequence([icon])


def write_phi_study(out_dir: Path, charset: str = "ISO_IR 192", slices: int = 4) -> list[Path]:
    paths = write_study(out_dir, seed=7, shape=(slices, 16, 16), patient=phi_patient(charset))
    datasets = [pydicom.dcmread(p) for p in paths]
    for k, (path, ds) in enumerate(zip(paths, datasets)):
        add_phi(ds, datasets[(k + 1) % len(datasets)].SOPInstanceUID)
        ds.save_as(path, enforce_file_format=True)
    return paths


@dataclass(frozen=True)
class PhiStudy:
    paths: list[Path]
    charset: str

    def datasets(self) -> list[Dataset]:
        return [pydicom.dcmread(p) for p in self.paths]


def encodings_of(text: str, charset: str) -> set[bytes]:
    """``text`` as it could appear in a file of ``charset`` (and in UTF-8, for safety)."""
    found = {text.encode("utf-8")}
    for codec in convert_encodings([charset]):
        try:
            found.add(text.encode(codec))
        except UnicodeEncodeError:
            pass
    return found


def instance_uids(datasets: list[Dataset]) -> set[str]:
    """Every non-class UID value in the datasets (original instance/study/series/FoR UIDs...)."""
    found = set()
    for ds in datasets:
        for elem in [*ds.file_meta, *ds.iterall()]:
            if elem.VR == "UI" and "ClassUID" not in elem.keyword and elem.keyword != "TransferSyntaxUID":
                found.add(str(elem.value))
    return found


def dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's error lines (it reports on stderr), without values that differ between files."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stderr + run.stdout).splitlines()
    return {line.split(" - ", 1)[-1].split("value =")[0].strip() for line in lines if line.startswith("Error")}


def copy_ds(ds: Dataset) -> Dataset:
    return copy.deepcopy(ds)
