"""Compressed and alternative transfer syntaxes, encoded by dcmtk (dcmcjpeg, dcmcjpls, dcmcrle)
or pydicom's encoders, sent by storescu proposing them: stored as sent, and the stored bytes
decode to the original pixels (exactly for lossless syntaxes)."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEGLossless,
    RLELossless,
)

from tests.receive.builders import fresh_ct
from tests.receive.scu import send_files_raw, storescu


def ct16() -> Dataset:
    return fresh_ct()


def ct8() -> Dataset:
    """An 8-bit variant for JPEG baseline (8 bits per sample only)."""
    ds = fresh_ct()
    pixels = np.frombuffer(ds.PixelData, np.int16)
    ds.PixelData = np.clip((pixels + 1000) // 8, 0, 255).astype(np.uint8).tobytes()
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    return ds


def dcmtk(tool: str, *args: str) -> Callable[[Path, Path], None]:
    def run(src: Path, dst: Path) -> None:
        subprocess.run([tool, *args, str(src), str(dst)], check=True, capture_output=True, timeout=60)

    return run


def pydicom_encode(syntax: str, **kwargs: object) -> Callable[[Path, Path], None]:
    def run(src: Path, dst: Path) -> None:
        ds = dcmread(src)
        if syntax in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
            ds.file_meta.TransferSyntaxUID = syntax
            ds.save_as(dst, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
            return
        ds.compress(syntax, **kwargs)
        ds.save_as(dst, enforce_file_format=True)

    return run


@dataclass(frozen=True)
class Codec:
    syntax: str
    source: Callable[[], Dataset]
    encode: Callable[[Path, Path], None]
    max_error: int  # 0: lossless
    propose: str | None  # the storescu flag that proposes this syntax; None: pynetdicom sends it


CODECS = [
    Codec(ImplicitVRLittleEndian, ct16, pydicom_encode(ImplicitVRLittleEndian), 0, "-xi"),
    Codec(DeflatedExplicitVRLittleEndian, ct16, pydicom_encode(DeflatedExplicitVRLittleEndian), 0, "-xd"),
    Codec(JPEGLosslessSV1, ct16, dcmtk("dcmcjpeg", "+e1"), 0, "-xs"),
    Codec(JPEGLossless, ct16, dcmtk("dcmcjpeg", "+el"), 0, None),  # storescu cannot propose process 14
    Codec(JPEGBaseline8Bit, ct8, dcmtk("dcmcjpeg", "+eb", "+q", "95"), 12, "-xy"),
    Codec(JPEGLSLossless, ct16, dcmtk("dcmcjpls", "+el"), 0, "-xt"),
    # dcmcjpls has no near-lossless mode for signed pixels; pyjpegls does
    Codec(JPEGLSNearLossless, ct16, pydicom_encode(JPEGLSNearLossless, jls_error=2), 2, "-xu"),
    Codec(RLELossless, ct16, dcmtk("dcmcrle"), 0, "-xr"),
    Codec(JPEG2000Lossless, ct16, pydicom_encode(JPEG2000Lossless), 0, "-xv"),
    Codec(JPEG2000, ct16, pydicom_encode(JPEG2000, j2k_cr=[4]), 60, "-xw"),
]


@pytest.mark.parametrize("codec", CODECS, ids=[c.syntax.name for c in CODECS])
def test_compressed_syntax_is_stored_as_sent_and_decodes(codec, sqlite_url, scp_factory, tmp_path):
    scp = scp_factory(sqlite_url)
    original = codec.source()
    src, dst = tmp_path / "native.dcm", tmp_path / "encoded.dcm"
    copy.deepcopy(original).save_as(src, enforce_file_format=True)
    codec.encode(src, dst)
    assert dcmread(dst).file_meta.TransferSyntaxUID == codec.syntax

    if codec.propose:
        result = storescu(scp.port, [dst], codec.propose)
        assert result.returncode == 0 and "Store Response (Success)" in result.stdout + result.stderr, result.stderr
    else:
        assert [r.status for r in send_files_raw(scp.port, [dst])] == [0]
    [inst] = scp.instances()
    assert inst.transfer_syntax_uid == codec.syntax
    stored = dcmread(scp.path(inst.spool_path))
    sent = dcmread(dst)
    assert stored.PixelData == sent.PixelData  # not re-encoded
    # in modality units: dcmcjpeg's lossy mode rescales stored values and adjusts the intercept
    decoded = apply_modality_lut(stored.pixel_array, stored).astype(np.int32)
    expected = apply_modality_lut(original.pixel_array, original).astype(np.int32)
    assert decoded.shape == expected.shape == (64, 64)
    assert int(np.abs(decoded - expected).max()) <= codec.max_error
