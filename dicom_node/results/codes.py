"""Coded concepts used in SEG / SR / KOS, as data.

Standard codes (SNOMED CT "SCT", DICOM "DCM", UCUM) are used where a fitting one exists; the rest
come from the private scheme ``99PULMONODE``, declared in each SR's Coding Scheme Identification
Sequence (PS3.3 C.12.1.1.4).
"""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from ai_engine.findings import NoduleType, Side, Subtype

PRIVATE_SCHEME = "99PULMONODE"
PRIVATE_SCHEME_NAME = "pulmonode private codes"
PRIVATE_SCHEME_RESPONSIBLE = "pulmonode project"


def private(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, PRIVATE_SCHEME, meaning)


def coding_scheme_identification() -> Dataset:
    """One item of Coding Scheme Identification Sequence declaring 99PULMONODE."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = PRIVATE_SCHEME_RESPONSIBLE
    return item


# --- SEG (CID 7150 / 7151 / 7162) ---
SEGMENTED_CATEGORY = codes.SCT.MorphologicallyAbnormalStructure  # SCT 49755003
SEGMENTED_TYPE = codes.SCT.Nodule  # SCT 27925004 (CID 7151)
ANATOMIC_REGION = codes.SCT.Lung  # SCT 39607008
ALGORITHM_FAMILY = codes.cid7162.ArtificialIntelligence  # DCM 123110

# --- SR measurement concept names and units ---
LONG_AXIS = codes.SCT.LongAxis  # 103339001
SHORT_AXIS = codes.SCT.ShortAxis  # 103340004
DIAMETER = codes.SCT.Diameter  # 81827009, with derivation Mean for the Lung-RADS mean diameter
VOLUME = codes.SCT.Volume  # 118565006
ATTENUATION = codes.DCM.AttenuationCoefficient  # 112031, with derivation Mean / Maximum
MEAN = codes.SCT.Mean  # 373098007
MAXIMUM = codes.SCT.Maximum
PROBABILITY_OF_CANCER = codes.DCM.ProbabilityOfCancer  # 111047
SOLID_COMPONENT_DIAMETER = private("SOLIDDIAM", "Solid component mean diameter")
DETECTION_SCORE = private("DETSCORE", "Detection score")
MM = codes.UCUM.Millimeter
MM3 = CodedConcept("mm3", "UCUM", "cubic millimeter")
HU = codes.UCUM.HounsfieldUnit  # [hnsf'U]
UNITLESS = CodedConcept("1", "UCUM", "no units")  # probabilities in [0, 1]

# --- SR qualitative evaluations ---
NODULE_TYPE = private("NODTYPE", "Nodule type")
NODULE_TYPE_VALUES = {
    NoduleType.SOLID: private("SOLID", "Solid nodule"),
    NoduleType.PART_SOLID: private("PARTSOLID", "Part-solid nodule"),
    NoduleType.GROUND_GLASS: codes.DCM.GroundGlassOpacity,  # DCM 112120
}
CALCIFICATION = codes.DCM.CalcificationDescriptor  # DCM 112030
CALCIFIED = codes.SCT.Calcified  # SCT 237897009
NOT_CALCIFIED = private("NONCALC", "Not calcified")
MALIGNANCY_CLASS = private("MALCLASS", "Malignancy classification")
BENIGN = codes.SCT.Benign  # 30807003
MALIGNANT = codes.SCT.Malignant  # 21594007
SUBTYPE = codes.DCM.MalignancyType  # DCM 111388
SUBTYPE_VALUES = {
    Subtype.ADENOCARCINOMA: codes.SCT.Adenocarcinoma,  # 1187332001
    Subtype.SQUAMOUS_CELL_CARCINOMA: codes.SCT.SquamousCellCarcinoma,  # 1162767002
    Subtype.LARGE_CELL_CARCINOMA: codes.SCT.LargeCellCarcinoma,  # 22687000
}
LUNG_RADS = private("LUNGRADS", "Lung-RADS v2022 category")
LUNG_RADS_S_MODIFIER = private("LUNGRADS-S", "Lung-RADS S modifier")
YES = codes.SCT.Yes
RECOMMENDATION = codes.DCM.Recommendation  # DCM 121075 (TEXT)
RESEARCH_STATEMENT = private("RUO", "Research use statement")
NOT_ANALYSED_REASON = private("NOTANALYSED", "Reason study was not analysed")
EXAM_ASSESSMENT = private("EXAM", "Exam-level assessment")
LATERALITY = {Side.RIGHT: codes.SCT.Right, Side.LEFT: codes.SCT.Left}


def lung_rads_value(category: str) -> CodedConcept:
    """Lung-RADS category value, e.g. '4A' -> (LR-4A, 99PULMONODE, 'Lung-RADS 4A')."""
    return private(f"LR-{category}", f"Lung-RADS {category}")


# --- SR document titles and procedure ---
REPORT_TITLE = codes.cid7021.ImagingMeasurementReport  # DCM 126000
PROCEDURE_CT_CHEST = CodedConcept("24627-2", "LN", "CT Chest")  # CID 100 is extensible
NOT_ANALYSED_TITLE = private("NOTANALYSED-REPORT", "Lung nodule AI: study not analysed")

# --- KOS (CID 7010) ---
KOS_TITLE = codes.DCM.OfInterest  # DCM 113000
