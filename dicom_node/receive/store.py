"""The C-STORE handler: acknowledge only what is durable.

Per instance: check the disk watermark; take ``event.encoded_dataset()`` (the bytes as sent, no
decode + re-encode); parse and validate; write a temp file, fsync, rename it into the spool,
fsync the directory; hand it to the group committer, which commits its row and audit events
(``index.index_group``). Only then 0x0000.

A conflicting duplicate (same SOP Instance UID, other bytes) and an instance whose study already
belongs to another patient are quarantined and answered 0x0000: the data is safely held, a
retry would change nothing, and a human resolves it from the quarantine list.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Settings
from dicom_node.privacy.pseudonym import Pseudonymizer
from dicom_node.receive.commit import GroupCommitter
from dicom_node.receive.errors import CannotUnderstand, DiskBelowWatermark, ReceiveError, status_dataset
from dicom_node.receive.index import Incoming, Outcome
from dicom_node.receive.spool import HeldFile, Spool
from dicom_node.receive.tags import InstanceKeys, instance_keys, technical_tags
from dicom_node.receive.validate import Received, parse, validate

log = logging.getLogger(__name__)

SUCCESS = 0x0000
MB = 1024 * 1024


class StoreHandler:
    """Bound to ``evt.EVT_C_STORE``; one instance serves every association of a process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.pseudonymizer = Pseudonymizer(settings.site_key)
        self.spool = Spool(settings.data_dir, settings.spool_dir, settings.quarantine_dir)
        self.committer = GroupCommitter(sessions, self.spool, settings.spool_dir / ".sqlite-write.lock")

    def __call__(self, event: Any) -> Dataset | int:
        try:
            outcome, keys = self.receive(event)
        except ReceiveError as exc:
            log.warning("C-STORE refused: %s (status 0x%04X)", exc, status_dataset(exc).Status)
            return status_dataset(exc)
        except Exception as exc:  # a bug or I/O fault: never ack, never echo values (PHI)
            log.error("C-STORE failed: %s", type(exc).__name__)
            return status_dataset(exc)
        log.debug("C-STORE %s sop=%s study=%s", outcome.value, keys.sop_key, keys.study_key)
        return SUCCESS

    def close(self) -> None:
        self.committer.close()

    def receive(self, event: Any) -> tuple[Outcome, InstanceKeys]:
        self.check_disk()
        held: HeldFile | None = None
        kept = False
        try:
            with self.committer.arriving():  # a group being gathered waits for this one
                encoded = event.encoded_dataset()
                incoming = self.describe(encoded, event)
                held = self.spool.write_temp(encoded)
                self.spool.place(held)
            indexed = self.committer.submit(incoming, held)
            kept = indexed.kept
        finally:
            if held is not None and not kept:
                self.spool.discard(held)  # an identical duplicate, or the transaction failed
        return indexed.outcome, incoming.keys

    def check_disk(self) -> None:
        free_mb = shutil.disk_usage(self.spool.spool_dir).free / MB
        if free_mb < self.settings.min_free_disk_mb:
            raise DiskBelowWatermark(f"disk below {self.settings.min_free_disk_mb} MB free")

    def describe(self, encoded: bytes, event: Any) -> Incoming:
        request = event.request
        received = Received(
            affected_sop_class_uid=str(request.AffectedSOPClassUID or ""),
            affected_sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
            transfer_syntax_uid=str(event.context.transfer_syntax),
            max_sequence_depth=self.settings.max_sequence_depth,
        )
        ds = parse(encoded)
        validate(ds, received)
        try:
            tags = technical_tags(ds, self.pseudonymizer)
        except Exception as exc:  # a malformed technical value, e.g. text in an IS attribute
            raise CannotUnderstand(f"technical tags unreadable ({type(exc).__name__})") from None
        return Incoming(
            keys=instance_keys(ds, self.pseudonymizer),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid=received.transfer_syntax_uid,
            modality=str(ds.get("Modality") or "")[:16],
            tags=tags,
            calling_ae=str(event.assoc.requestor.ae_title).strip()[:16],
        )
