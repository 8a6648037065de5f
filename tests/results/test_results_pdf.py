"""PDF report and Encapsulated PDF: text extractable by poppler's pdftotext, dciodvfy-clean."""

from __future__ import annotations

import subprocess

import pydicom

from dicom_node.results.kos import key_slices
from dicom_node.results.pdf import build_encapsulated_pdf, render_report_pdf
from tests.results.conftest import clock
from tests.results.validate import dciodvfy, write


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    run = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True)
    return " ".join(run.stdout.split())  # the disclaimer wraps over lines


def test_report_shows_disclaimer_sizes_and_lung_rads(study, two_nodules, tmp_path):
    pdf = render_report_pdf(study, two_nodules)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf, tmp_path)
    assert " ".join(two_nodules.disclaimer.split()) in text
    assert "Exam Lung-RADS v2022: 4B" in text and two_nodules.exam_lung_rads.management in text
    for nodule in two_nodules.nodules:
        sizes = f"{nodule.long_axis_mm:.1f} / {nodule.short_axis_mm:.1f} / {nodule.mean_diameter_mm:.1f}"
        assert sizes in text
        assert f"{nodule.malignancy_probability:.0%}" in text
    assert "adenocarcinoma" in text and "4B S" in text
    assert study[0].PatientID not in text and str(study[0].PatientName).split("^")[0] not in text


def test_report_without_nodules(study, no_nodules, tmp_path):
    text = pdf_text(render_report_pdf(study, no_nodules), tmp_path)
    assert "No nodules detected." in text and "RESEARCH USE ONLY" in text


def test_encapsulated_pdf_round_trips(study, two_nodules, uid_for, tmp_path):
    pdf = render_report_pdf(study, two_nodules)
    rendered = key_slices(study, two_nodules)
    ds = build_encapsulated_pdf(pdf, study, uid_for, clock, "Lung nodule AI report",
                                synthetic_trained=True, referenced=rendered)
    path = write(ds, tmp_path / "pdf.dcm")
    assert dciodvfy(path).errors == []
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert back.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert back.EncapsulatedDocument[: back.EncapsulatedDocumentLength] == pdf
    assert [i.ReferencedSOPInstanceUID for i in back.SourceInstanceSequence] == [d.SOPInstanceUID for d in rendered]
    assert back.PatientID == study[0].PatientID and back.StudyInstanceUID == study[0].StudyInstanceUID
    assert back.SeriesNumber == 904 and back.Modality == "DOC" and "synthetic" in back.SeriesDescription


def test_non_pdf_bytes_are_refused(study, uid_for):
    import pytest

    from dicom_node.results.errors import ResultsError

    with pytest.raises(ResultsError, match="not a PDF"):
        build_encapsulated_pdf(b"<html>", study, uid_for, clock)
