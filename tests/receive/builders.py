"""Small CT instances (64×64) to send, and ways to break them."""

from __future__ import annotations

import copy
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_node.modality import FictitiousPatient, SeriesUIDs, UID_ROOT, ct_slices
from tests.helpers import simple_ct_volume


def ct_series(seed: int, slices: int = 3, patient: FictitiousPatient | None = None) -> list[Dataset]:
    volume = simple_ct_volume(shape=(slices, 64, 64), seed=seed)
    return ct_slices(volume, patient or FictitiousPatient.from_seed(seed), SeriesUIDs.from_seed(seed))


_counter = iter(range(10**9))


def fresh_ct(seed: int = 7) -> Dataset:
    """One valid CT slice with a new SOP Instance UID (a new instance each call)."""
    ds = copy.deepcopy(ct_series(seed, slices=1)[0])
    new_uid = generate_uid(UID_ROOT)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid
    return ds


def write_raw(path: Path, ds: Dataset, *, meta_sop_instance: str | None = None, meta_sop_class: str | None = None,
              transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    """``ds`` encoded Explicit VR Little Endian behind a file meta that may disagree with it
    (SOP UIDs, transfer syntax): the raw sender puts exactly this on the wire."""
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    return write_garbage(path, body.getvalue(), meta_sop_instance or ds.SOPInstanceUID,
                         meta_sop_class or ds.SOPClassUID, transfer_syntax)


def write_garbage(path: Path, body: bytes, sop_instance: str, sop_class: str,
                  transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    """A valid file meta followed by ``body`` (which need not be a dataset)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance or "1.2.3"
    meta.TransferSyntaxUID = transfer_syntax
    buffer = DicomBytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    path.write_bytes(b"\x00" * 128 + b"DICM" + buffer.getvalue() + body)
    return path


def nested(depth: int) -> Dataset:
    """A dataset whose ReferencedStudySequence nests ``depth`` levels deep."""
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    for _ in range(depth - 1):
        outer = Dataset()
        outer.ReferencedStudySequence = [item]
        item = outer
    return item
