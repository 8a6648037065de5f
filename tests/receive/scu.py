"""Test-side senders: dcmtk's storescu/echoscu, and a pynetdicom SCU that records every status.

``send_files_raw`` sends files with pynetdicom's chunked mode, where the C-STORE command's
Affected SOP UIDs come from the file meta and the dataset bytes go out untouched: that is how
the tests put a command/dataset mismatch or garbage bytes on the wire.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification

from dicom_node.receive.scp import STORAGE_SOP_CLASSES

NODELAY = {**os.environ, "TCP_NODELAY": "1"}


@dataclass(frozen=True)
class StoreResult:
    status: int | None  # None: no response (association gone)
    error_comment: str = ""


def storescu(port: int, files: Iterable[Path], *args: str, calling: str = "STORESCU") -> subprocess.CompletedProcess[str]:
    cmd = ["storescu", "-v", "-aet", calling, "-aec", "PULMONODE", *args, "127.0.0.1", str(port), *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=NODELAY)


def echoscu(port: int, *args: str, calling: str = "ECHOSCU") -> subprocess.CompletedProcess[str]:
    cmd = ["echoscu", "-v", "-aet", calling, "-aec", "PULMONODE", *args, "127.0.0.1", str(port)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=NODELAY)


def _scu(transfer_syntaxes: Sequence[str]) -> AE:
    ae = AE(ae_title="TESTSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_requested_context(sop_class, list(transfer_syntaxes))
    return ae


def _result(rsp: Dataset) -> StoreResult:
    if "Status" not in rsp:
        return StoreResult(None)
    return StoreResult(int(rsp.Status), str(rsp.get("ErrorComment", "")))


def send_datasets(port: int, datasets: Sequence[Dataset], *, ssl_context=None, tls_host: str = "") -> list[StoreResult]:
    """Send with pynetdicom (encoded in each dataset's own transfer syntax); one result each."""
    syntaxes = sorted({str(ds.file_meta.TransferSyntaxUID) for ds in datasets} or {ExplicitVRLittleEndian})
    ae = _scu(syntaxes)
    tls_args = (ssl_context, tls_host) if ssl_context else None
    assoc = ae.associate("127.0.0.1", port, ae_title="PULMONODE", tls_args=tls_args)
    assert assoc.is_established, "association with the SCP failed"
    try:
        return [_result(assoc.send_c_store(ds)) for ds in datasets]
    finally:
        assoc.release()


def dcmread_meta(path: Path) -> FileMetaDataset:
    return read_file_meta_info(path)


def send_files_raw(port: int, paths: Sequence[Path]) -> list[StoreResult]:
    """Send files as they are on disk: command UIDs from the file meta, dataset bytes verbatim."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title="TESTSCU")
        metas = {(m.MediaStorageSOPClassUID, m.TransferSyntaxUID) for m in map(dcmread_meta, paths)}
        for sop_class, syntax in sorted(metas):  # one context per pair: each syntax must be accepted
            ae.add_requested_context(sop_class, syntax)
        assoc = ae.associate("127.0.0.1", port, ae_title="PULMONODE")
        assert assoc.is_established
        try:
            return [_result(assoc.send_c_store(path)) for path in paths]
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
