"""Bad inputs, one per row: each gets its specific failure status, nothing of it is kept, and
the SCP goes on accepting a valid instance afterwards."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEGLSLossless, SecondaryCaptureImageStorage, generate_uid

from tests.receive.builders import fresh_ct, nested, write_garbage, write_raw
from tests.receive.scu import send_datasets, send_files_raw


def changed(**changes: object) -> Callable[[Path], Dataset]:
    """A fresh CT slice with attributes changed (``None`` deletes the attribute)."""

    def build(_tmp: Path) -> Dataset:
        ds = fresh_ct()
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value(ds) if callable(value) else value)
        return ds

    return build


def raw_file(make: Callable[[Path, Dataset], Path]) -> Callable[[Path], Path]:
    return lambda tmp: make(tmp / "raw.dcm", fresh_ct())


@dataclass(frozen=True)
class Bad:
    name: str
    build: Callable[[Path], Dataset | Path]  # a Dataset goes by pynetdicom, a Path by the raw sender
    status: int
    comment: str  # expected in the Error Comment


BAD_INPUTS = [
    Bad("truncated pixel data", changed(PixelData=lambda ds: ds.PixelData[:-128]), 0xA902, "PixelData"),
    Bad("pixel data too long", changed(PixelData=lambda ds: ds.PixelData + bytes(1000)), 0xA902, "PixelData"),
    Bad("missing pixel data", changed(PixelData=None), 0xA900, "PixelData missing"),
    Bad("BitsAllocated 32 for 16-bit data", changed(BitsAllocated=32), 0xA902, "PixelData"),
    Bad("BitsAllocated 12", changed(BitsAllocated=12), 0xA902, "BitsAllocated"),
    Bad("BitsStored above BitsAllocated", changed(BitsStored=24), 0xA902, "BitsStored"),
    Bad("NumberOfFrames without the frames", changed(NumberOfFrames=3), 0xA902, "PixelData"),
    Bad("missing Rows", changed(Rows=None), 0xA900, "Rows"),
    Bad("missing StudyInstanceUID", changed(StudyInstanceUID=None), 0xA900, "StudyInstanceUID"),
    Bad("UID component with leading zero", changed(SOPInstanceUID="1.2.03.4"), 0xC001, "SOPInstanceUID"),
    Bad("path-like SOP Instance UID", changed(SOPInstanceUID="../../etc/passwd"), 0xC001, "SOPInstanceUID"),
    Bad("path-like Study UID", changed(StudyInstanceUID="../../../tmp/x"), 0xC001, "StudyInstanceUID"),
    Bad("UID with empty component", changed(SeriesInstanceUID="1.2..3"), 0xC001, "SeriesInstanceUID"),
    Bad("UID over 64 characters", changed(StudyInstanceUID="1.2." + "3" * 62), 0xC001, "StudyInstanceUID"),
    Bad("UID with letters", changed(SeriesInstanceUID="1.2.abc"), 0xC001, "SeriesInstanceUID"),
    Bad("empty SOP Instance UID", raw_file(lambda p, ds: write_raw(p, changed(SOPInstanceUID="")(p))),
        0xC001, "SOPInstanceUID empty"),
    Bad("command SOP Instance UID differs",
        raw_file(lambda p, ds: write_raw(p, ds, meta_sop_instance=generate_uid())),
        0xA901, "AffectedSOPInstanceUID"),
    Bad("command SOP Class UID differs",
        raw_file(lambda p, ds: write_raw(p, ds, meta_sop_class=SecondaryCaptureImageStorage)),
        0xA901, "AffectedSOPClassUID"),
    Bad("sequences nested 12 deep", changed(ReferencedStudySequence=lambda ds: [nested(11)]), 0xC002, "nested"),
    Bad("garbage bytes as dataset",
        raw_file(lambda p, ds: write_garbage(p, os.urandom(4000), ds.SOPInstanceUID, ds.SOPClassUID)),
        0xC000, "cannot be parsed"),
    Bad("dataset cut off mid-element",
        raw_file(lambda p, ds: (write_raw(p, ds), p.write_bytes(p.read_bytes()[:900]))[0]),
        0xC000, "cannot be parsed"),
    Bad("JPEG-LS syntax, native pixel data",
        raw_file(lambda p, ds: write_raw(p, ds, transfer_syntax=JPEGLSLossless)), 0xA902, "fragments"),
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[b.name for b in BAD_INPUTS])
def test_bad_input_gets_its_status_and_scp_keeps_serving(bad, sqlite_url, scp_factory, tmp_path):
    scp = scp_factory(sqlite_url)
    payload = bad.build(tmp_path)
    if isinstance(payload, Path):
        [result] = send_files_raw(scp.port, [payload])
    else:
        [result] = send_datasets(scp.port, [payload])
    assert (hex(result.status or 0), bad.comment in result.error_comment) == (hex(bad.status), True), result
    assert len(result.error_comment) <= 64
    assert scp.instances() == [] and scp.quarantined() == []
    assert not [p for p in scp.settings.data_dir.rglob("*") if p.suffix in (".dcm", ".part")]
    assert not Path("/etc/passwd.dcm").exists()

    [after] = send_datasets(scp.port, [fresh_ct()])
    assert after.status == 0
    assert len(scp.instances()) == 1
