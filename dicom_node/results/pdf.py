"""The human-readable report: a PDF page (reportlab + matplotlib Agg) and its DICOM Encapsulated PDF
(PS3.3 A.45.1; highdicom has no builder for it, so pydicom).

The page is rendered from the de-identified study and shows no patient identifiers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ai_engine.findings import CTFindings, Nodule
from dicom_node.results.common import (
    MANUFACTURER, SERIES_NUMBER, Clock, UidFor, check_sources, copy_patient_study, stamp, uids,
)
from dicom_node.results.errors import ResultsError
from dicom_node.results.kos import key_slices

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
LUNG_WINDOW = (-600.0, 1500.0)  # centre, width (HU)
BENIGN_COLOUR = "#00c800"
MALIGNANT_COLOUR = "#e60000"
DEFAULT_TITLE = "Lung nodule AI report"
TABLE_HEADER = ["#", "Location", "Long / short / mean (mm)", "Volume (mm3)", "Type", "Calcified",
                "Malignancy", "Subtype", "Lung-RADS"]


def render_report_pdf(sources: Sequence[Dataset], findings: CTFindings, title: str = DEFAULT_TITLE) -> bytes:
    """One A4 report: disclaimer, exam Lung-RADS and management, nodule table, key slices."""
    check_sources(sources)
    styles = getSampleStyleSheet()
    story = [
        Paragraph(title, styles["Title"]),
        _disclaimer(findings.disclaimer),
        Spacer(1, 4 * mm),
        Paragraph(f"<b>Exam Lung-RADS v2022: {_category(findings.exam_lung_rads)}</b>", styles["Heading2"]),
        Paragraph(f"Management: {_escape(findings.exam_lung_rads.management)}", styles["BodyText"]),
        Spacer(1, 4 * mm),
        _nodule_table(findings) if findings.nodules else Paragraph("No nodules detected.", styles["BodyText"]),
        Spacer(1, 4 * mm),
        *_key_images(sources, findings),
    ]
    buffer = io.BytesIO()
    # invariant=1: no creation date / random document ID, so equal inputs give equal bytes.
    SimpleDocTemplate(buffer, pagesize=A4, title=title, author=MANUFACTURER, invariant=1,
                      leftMargin=15 * mm, rightMargin=15 * mm, topMargin=12 * mm, bottomMargin=12 * mm).build(story)
    return buffer.getvalue()


def build_encapsulated_pdf(
    pdf_bytes: bytes,
    sources: Sequence[Dataset],
    uid_for: UidFor,
    clock: Clock,
    title: str = DEFAULT_TITLE,
    *,
    synthetic_trained: bool = False,
    referenced: Sequence[Dataset] = (),
) -> Dataset:
    """Encapsulated PDF Storage on the sources' patient and study; ``referenced`` = rendered slices."""
    check_sources(sources)
    series_uid, sop_uid = uids(uid_for, "pdf")
    ds = Dataset()
    ds.file_meta = _file_meta(sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF_STORAGE, sop_uid
    copy_patient_study(sources[0], ds)
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "DOC", series_uid, SERIES_NUMBER["pdf"]
    ds.Manufacturer, ds.ConversionType = MANUFACTURER, "WSD"  # SC Equipment: workstation-made
    _encapsulated_document(ds, pdf_bytes, title, referenced or list(sources[:1]))
    stamp(ds, clock(), "pdf", synthetic_trained)
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    return ds


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _encapsulated_document(ds: Dataset, pdf_bytes: bytes, title: str, referenced: Sequence[Dataset]) -> None:
    """Encapsulated Document module (C.24.2)."""
    if not pdf_bytes.startswith(b"%PDF"):
        raise ResultsError(f"pdf_bytes is not a PDF: starts with {pdf_bytes[:8]!r}, not %PDF")
    ds.InstanceNumber = 1
    # The page carries no patient identifiers (rendered from de-identified data, none printed).
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.SourceInstanceSequence = [_reference(source) for source in referenced]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    ds.EncapsulatedDocument = pdf_bytes + (b"\x00" if len(pdf_bytes) % 2 else b"")  # OB: even length


def _reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _category(assessment) -> str:
    return assessment.category + (" S" if assessment.s_modifier else "")


def _disclaimer(text: str) -> Table:
    style = ParagraphStyle("disclaimer", fontName="Helvetica-Bold", fontSize=11, leading=14, textColor=colors.white)
    box = Table([[Paragraph(_escape(text), style)]], colWidths=[180 * mm])
    box.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#b00020")),
                             ("BOX", (0, 0), (-1, -1), 1, colors.black)]))
    return box


def nodule_row(nodule: Nodule) -> list[str]:
    """One table row; numbers as a reader expects them (mm to 0.1, volume to 1 mm3)."""
    return [
        str(nodule.label),
        f"{nodule.side.value} {nodule.zone.value}",
        f"{nodule.long_axis_mm:.1f} / {nodule.short_axis_mm:.1f} / {nodule.mean_diameter_mm:.1f}",
        f"{nodule.volume_mm3:.0f}",
        nodule.nodule_type.value,
        "yes" if nodule.calcified else "no",
        f"{'malignant' if nodule.malignant else 'benign'} {nodule.malignancy_probability:.0%}",
        nodule.subtype.value if nodule.subtype else "-",
        _category(nodule.lung_rads) if nodule.lung_rads else "-",
    ]


def _nodule_table(findings: CTFindings) -> Table:
    table = Table([TABLE_HEADER] + [nodule_row(n) for n in findings.nodules], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 7.5),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e0e0e0")),
    ]))
    return table


def _key_images(sources: Sequence[Dataset], findings: CTFindings) -> list:
    """Key slices with nodule contours, two per row (the middle slice when there is no nodule)."""
    slices = key_slices(sources, findings) or [sources[len(sources) // 2]]
    index = {ds.SOPInstanceUID: z for z, ds in enumerate(sources)}
    images = [Image(io.BytesIO(slice_png(sources, index[ds.SOPInstanceUID], findings)), 85 * mm, 85 * mm)
              for ds in slices]
    rows = [images[i:i + 2] for i in range(0, len(images), 2)]
    return [Table(rows)] if rows else []


def hounsfield(ds: Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def slice_png(sources: Sequence[Dataset], z: int, findings: CTFindings) -> bytes:
    """Slice z in lung window with each nodule's outline: green benign, red malignant."""
    centre, width = LUNG_WINDOW
    figure = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(hounsfield(sources[z]), cmap="gray", vmin=centre - width / 2, vmax=centre + width / 2)
    for nodule in findings.nodules:
        outline = np.asarray(findings.label_mask[z]) == nodule.label
        if outline.any():
            colour = MALIGNANT_COLOUR if nodule.malignant else BENIGN_COLOUR
            axes.contour(outline.astype(np.uint8), levels=[0.5], colors=[colour], linewidths=1.5)
            y, x = np.argwhere(outline).min(axis=0)
            axes.text(x, max(y - 2, 0), str(nodule.label), color=colour, fontsize=10, ha="left", va="bottom")
    axes.text(1, 1, f"image {int(sources[z].InstanceNumber)}", color="yellow", fontsize=8, va="top")
    axes.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
