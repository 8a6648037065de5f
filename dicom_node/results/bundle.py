"""All result objects of one analysed study in one call: SEG, SR, KOS, Encapsulated PDF."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from ai_engine.findings import CTFindings
from dicom_node.results.common import AlgorithmInfo, Clock, UidFor
from dicom_node.results.kos import build_kos, key_slices
from dicom_node.results.pdf import DEFAULT_TITLE, build_encapsulated_pdf, render_report_pdf
from dicom_node.results.seg import build_seg
from dicom_node.results.sr import build_sr


@dataclass(frozen=True, eq=False)
class ResultBundle:
    """What the worker re-identifies and delivers; seg and kos are None when no nodule was found."""

    seg: Dataset | None
    sr: Dataset
    kos: Dataset | None
    pdf: Dataset
    pdf_bytes: bytes

    @property
    def datasets(self) -> list[Dataset]:
        """The DICOM objects to store, referenced ones first (SEG before the SR that points to it)."""
        return [ds for ds in (self.seg, self.sr, self.kos, self.pdf) if ds is not None]


def build_results(
    sources: Sequence[Dataset],
    findings: CTFindings,
    algorithm: AlgorithmInfo,
    uid_for: UidFor,
    clock: Clock,
) -> ResultBundle:
    """Build every result object for ``findings`` on the sorted, de-identified CT slices."""
    seg = build_seg(sources, findings, algorithm, uid_for, clock)
    sr = build_sr(sources, seg, findings, algorithm, uid_for, clock)
    kos = build_kos(sources, findings, algorithm, uid_for, clock, sr=sr)
    pdf_bytes = render_report_pdf(sources, findings)
    pdf = build_encapsulated_pdf(
        pdf_bytes, sources, uid_for, clock, DEFAULT_TITLE,
        synthetic_trained=findings.synthetic_trained,
        referenced=key_slices(sources, findings),
    )
    return ResultBundle(seg=seg, sr=sr, kos=kos, pdf=pdf, pdf_bytes=pdf_bytes)
