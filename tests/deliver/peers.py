"""Real DICOM peers for delivery and routing tests: a pynetdicom storage SCP that records what it
receives and answers a scripted status."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification


class StorageSCP:
    """Records every C-STORE's SOP Instance UID (and modality); answers ``status(uid)``."""

    def __init__(self, ae_title: str = "PULMONODE", status: Callable[[str], int] = lambda uid: 0x0000,
                 delay_s: float = 0.0) -> None:
        self.ae_title = ae_title
        self.status = status
        self.delay_s = delay_s
        self.received: list[str] = []
        self.modalities: list[str] = []
        self._lock = threading.Lock()

    def _on_store(self, event) -> int:  # type: ignore[no-untyped-def]
        ds = event.dataset
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.received.append(str(ds.SOPInstanceUID))
            self.modalities.append(str(ds.get("Modality", "")))
        return self.status(str(ds.SOPInstanceUID))

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.received)

    def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.counts()) >= n:
                return True
            time.sleep(0.1)
        return False

    @contextmanager
    def serving(self, port: int) -> Iterator["StorageSCP"]:
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        try:
            yield self
        finally:
            server.shutdown()
