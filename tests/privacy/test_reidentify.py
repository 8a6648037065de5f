"""Re-identification: results built on the de-identified study land on the original study, and the
map that makes it possible travels sealed."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, KeyObjectSelectionDocumentStorage, generate_uid

from dicom_node.privacy.deidentify import deidentify
from dicom_node.privacy.errors import ReidentificationMapError, VaultError
from dicom_node.privacy.reidentify import leaked_pseudonyms, reidentify
from dicom_node.privacy.reidmap import ReidentificationMap
from dicom_node.privacy.vault import seal, unseal
from tests.privacy.phi import OTHER_KEY, SITE_KEY, copy_ds

PATIENT_MODULE = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                  "ReferringPhysicianName", "StudyDate", "StudyTime")


@pytest.fixture
def deidentified(phi_study, make_ctx):
    originals = phi_study.datasets()
    ctx = make_ctx()
    return originals, [deidentify(ds, ctx) for ds in originals], ctx.reid_map()


def _segmentation(sources: list[Dataset]) -> hd.seg.Segmentation:
    mask = np.zeros((len(sources), sources[0].Rows, sources[0].Columns), dtype=bool)
    mask[1:3, 4:9, 4:9] = True
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="nodule",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="test", family=codes.cid7162.ArtificialIntelligence, version="0"
        ),
    )
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description], series_instance_uid=generate_uid(), series_number=90,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="pulmonode",
        manufacturer_model_name="test", software_versions="0", device_serial_number="0",
    )


def test_highdicom_accepts_sources_deidentified_with_the_basic_profile_only(phi_study, make_ctx) -> None:
    ctx = make_ctx(retain_dates_shifted=False, retain_patient_characteristics=False)
    deids = [deidentify(ds, ctx) for ds in phi_study.datasets()]
    seg = _segmentation(deids)
    assert seg.PatientID == deids[0].PatientID and seg.StudyInstanceUID == deids[0].StudyInstanceUID
    back = reidentify(seg, ctx.reid_map())
    assert back.PatientID == "PHI-ID-90210" and leaked_pseudonyms(back, ctx.reid_map()) == []


def _roundtrip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def test_segmentation_on_deidentified_sources_goes_back_to_the_original_study(deidentified) -> None:
    originals, deids, reid = deidentified
    seg = _roundtrip(_segmentation(deids))  # highdicom accepts the de-identified sources
    assert leaked_pseudonyms(seg, reid)  # before: full of pseudonyms

    back = reidentify(seg, reid)

    assert leaked_pseudonyms(back, reid) == []
    assert back.StudyInstanceUID == originals[0].StudyInstanceUID
    assert back.FrameOfReferenceUID == originals[0].FrameOfReferenceUID
    refs = back.ReferencedSeriesSequence[0]
    assert refs.SeriesInstanceUID == originals[0].SeriesInstanceUID
    referenced = {item.ReferencedSOPInstanceUID for item in refs.ReferencedInstanceSequence}
    assert referenced <= {ds.SOPInstanceUID for ds in originals} and referenced
    for frame in back.PerFrameFunctionalGroupsSequence:
        for source in frame.DerivationImageSequence[0].SourceImageSequence:
            assert source.ReferencedSOPInstanceUID in {ds.SOPInstanceUID for ds in originals}
    for keyword in PATIENT_MODULE:
        assert str(back.get(keyword)) == str(originals[0].get(keyword)), keyword
    # The result's own identity is untouched.
    assert (back.SOPInstanceUID, back.SeriesInstanceUID, back.SOPClassUID) == (
        seg.SOPInstanceUID, seg.SeriesInstanceUID, seg.SOPClassUID)
    assert back.file_meta.MediaStorageSOPInstanceUID == seg.SOPInstanceUID
    assert "PatientIdentityRemoved" not in back
    written = _roundtrip(back)  # the restored non-ASCII name is encodable and survives writing
    assert str(written.PatientName) == "MÜLLER^JÖRG^ÉMILE"


def _kos_like(deids: list[Dataset]) -> Dataset:
    """A Key Object Selection built by hand on the de-identified study: references at depth 3."""
    first = deids[0]
    kos = Dataset()
    kos.SOPClassUID = KeyObjectSelectionDocumentStorage
    kos.SOPInstanceUID = generate_uid()
    kos.SpecificCharacterSet = "ISO_IR 100"
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "AccessionNumber", "StudyID", "StudyDate"):
        setattr(kos, keyword, first.get(keyword))
    kos.SeriesInstanceUID = generate_uid()
    instances = Sequence()
    for ds in deids:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        instances.append(item)
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ReferencedSOPSequence = instances
    study = Dataset()
    study.StudyInstanceUID = first.StudyInstanceUID
    study.ReferencedSeriesSequence = Sequence([series])
    kos.CurrentRequestedProcedureEvidenceSequence = Sequence([study])
    content = Dataset()
    content.ValueType = "IMAGE"
    content.ReferencedSOPSequence = Sequence([copy_ds(instances[1])])
    content.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
    kos.ContentSequence = Sequence([content])
    return kos


def test_references_at_any_depth_are_mapped_and_new_uids_left(deidentified) -> None:
    originals, deids, reid = deidentified
    kos = _kos_like(deids)
    before = copy_ds(kos)
    back = reidentify(kos, reid)
    assert kos == before  # the input is not changed
    evidence = back.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == originals[0].StudyInstanceUID
    series = evidence.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == originals[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series.ReferencedSOPSequence] == [d.SOPInstanceUID for d in originals]
    item = back.ContentSequence[0]
    assert item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == originals[1].SOPInstanceUID
    assert item.ReferencedFrameOfReferenceUID == originals[0].FrameOfReferenceUID
    assert back.SOPInstanceUID == kos.SOPInstanceUID and back.SOPClassUID == KeyObjectSelectionDocumentStorage
    assert back.SpecificCharacterSet == "ISO_IR 192"  # Latin-1 was declared; UTF-8 can hold any name
    assert leaked_pseudonyms(back, reid) == []


def test_leaked_pseudonyms_finds_a_pseudonym_in_free_text(deidentified) -> None:
    _, deids, reid = deidentified
    result = Dataset()
    result.ContentSequence = Sequence([Dataset()])
    result.ContentSequence[0].TextValue = f"see patient {deids[0].PatientID}"
    leaks = leaked_pseudonyms(result, reid)
    assert len(leaks) == 1 and "TextValue" in leaks[0]


def test_original_without_accession_gets_none_back(phi_study, make_ctx) -> None:
    ds = phi_study.datasets()[0]
    del ds.AccessionNumber
    ctx = make_ctx()
    deid = deidentify(ds, ctx)
    reid = ctx.reid_map()
    assert deid.AccessionNumber == "" and "AccessionNumber" not in reid.attributes
    result = copy_ds(deid)
    result.AccessionNumber = "LEAKYTOKEN"
    back = reidentify(result, reid)
    assert back.AccessionNumber == "LEAKYTOKEN"  # not a pseudonym of this map: left alone
    assert str(back.PatientName) == "MÜLLER^JÖRG^ÉMILE"


def test_map_json_round_trip_and_malformed_json(deidentified) -> None:
    _, _, reid = deidentified
    again = ReidentificationMap.from_json(reid.to_json())
    assert again == reid
    assert again.uid_map[reid.study_uid] == reid.original_study_uid
    with pytest.raises(ReidentificationMapError, match="format"):
        ReidentificationMap.from_json('{"format": "other"}')
    with pytest.raises(ReidentificationMapError, match="malformed"):
        ReidentificationMap.from_json("not json")
    with pytest.raises(ReidentificationMapError, match="malformed"):
        ReidentificationMap.from_json(reid.to_json().replace('"date_shift_days"', '"x"'))


def test_vault_seals_with_the_site_key_and_refuses_another(deidentified) -> None:
    _, _, reid = deidentified
    sealed = seal(reid, SITE_KEY)
    assert "MÜLLER".encode() not in sealed and reid.original_study_uid.encode() not in sealed
    assert unseal(sealed, SITE_KEY) == reid
    with pytest.raises(VaultError, match="wrong site key"):
        unseal(sealed, OTHER_KEY)
    tampered = sealed[:-5] + (b"A" if sealed[-5:-4] != b"A" else b"B") + sealed[-4:]
    with pytest.raises(VaultError):
        unseal(tampered, SITE_KEY)
    assert seal(reid, SITE_KEY) != sealed  # fresh IV every time
