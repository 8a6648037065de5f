"""C-STORE SCU: send a batch of result files to a PACS over one association (PS3.4 Annex B).

Files are sent as stored (pynetdicom streams the encoded file when the accepted transfer syntax
is the file's own), so what the PACS gets is byte-for-byte what we built and audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from pynetdicom import AE
from pynetdicom.association import Association

from dicom_node.config import DicomDestination
from dicom_node.deliver.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    association_rejected_error,
    dimse_status_error,
)

MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are odd numbers 1-255


def store(
    paths: Sequence[Path], destination: DicomDestination, calling_ae: str, *, timeout_s: float = 30.0
) -> list[DeliveryError | None]:
    """Store each file; returns, per file, None (stored) or why not."""
    where = f"{destination.ae_title}@{destination.host}:{destination.port}"
    metas = [_meta(path) for path in paths]
    contexts = sorted({m for m in metas if not isinstance(m, DeliveryError)})
    if not contexts:
        return [m if isinstance(m, DeliveryError) else None for m in metas]
    if len(contexts) > MAX_CONTEXTS:
        raise ValueError(f"{len(contexts)} SOP class/transfer syntax pairs exceed one association's {MAX_CONTEXTS}")
    assoc = _associate(contexts, destination, calling_ae, timeout_s)
    if not assoc.is_established:
        failure = _not_established(assoc, where)
        return [m if isinstance(m, DeliveryError) else failure for m in metas]
    try:
        return [m if isinstance(m, DeliveryError) else _send_one(assoc, path, where) for path, m in zip(paths, metas)]
    finally:
        if assoc.is_established:
            assoc.release()


def _meta(path: Path) -> tuple[str, str] | DeliveryError:
    """(SOP Class UID, Transfer Syntax UID) from the file meta, or a permanent error."""
    try:
        meta = read_file_meta_info(path)
        return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
    except (OSError, AttributeError, ValueError) as exc:
        return PermanentDeliveryError(f"result file {path.name} is not a readable DICOM Part 10 file: {exc}")


def _associate(
    contexts: list[tuple[str, str]], destination: DicomDestination, calling_ae: str, timeout_s: float
) -> Association:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    for sop_class, transfer_syntax in contexts:
        ae.add_requested_context(sop_class, [transfer_syntax])
    return ae.associate(destination.host, destination.port, ae_title=destination.ae_title)


def _not_established(assoc: Association, where: str) -> DeliveryError:
    primitive = assoc.acceptor.primitive
    if assoc.is_rejected and primitive is not None:
        return association_rejected_error(
            int(primitive.result), int(primitive.result_source), int(primitive.diagnostic), where
        )
    # pynetdicom reports a refused connection as an abort too
    return RetryableDeliveryError(f"no association with {where} (connection refused, aborted or timed out)")


def _send_one(assoc: Association, path: Path, where: str) -> DeliveryError | None:
    if not assoc.is_established:
        return RetryableDeliveryError(f"association with {where} ended before {path.name} was sent")
    try:
        response = assoc.send_c_store(path)
    except ValueError as exc:  # no accepted presentation context for this SOP class / syntax
        return PermanentDeliveryError(f"{where} does not accept {path.name}: {exc}")
    if "Status" not in response:
        return RetryableDeliveryError(f"no C-STORE response from {where} for {path.name} (timeout or abort)")
    return dimse_status_error(int(response.Status), f"{where} {path.name}")
