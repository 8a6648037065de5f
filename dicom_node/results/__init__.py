"""Result objects: findings + de-identified CT slices -> DICOM SEG, SR (TID 1500), KOS, Encapsulated PDF.

Builders are pure: they take values, an injected ``uid_for(kind) -> UID`` and ``clock() -> datetime``,
and return pydicom Datasets (or PDF bytes); they never write files.
"""

from dicom_node.results.bundle import ResultBundle, build_results
from dicom_node.results.common import SERIES_NUMBER, AlgorithmInfo
from dicom_node.results.kos import build_kos
from dicom_node.results.pdf import build_encapsulated_pdf, render_report_pdf
from dicom_node.results.seg import build_seg
from dicom_node.results.sr import build_not_eligible_sr, build_sr

__all__ = [
    "SERIES_NUMBER", "AlgorithmInfo", "ResultBundle", "build_encapsulated_pdf", "build_kos",
    "build_not_eligible_sr", "build_results", "build_seg", "build_sr", "render_report_pdf",
]
