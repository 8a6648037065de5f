"""The Storage SCP: who may associate, which objects and encodings we take, how we listen.

``build_ae`` configures a pynetdicom AE; ``start_scp`` starts it in this process (threaded,
one thread per association); ``serve_forever`` is ``pulmonode scp``: with ``scp_processes > 1``
several forked processes listen on the same port (SO_REUSEPORT) and the kernel spreads the
associations over them, so fsync waits and Python work overlap across cores.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydicom import config as pydicom_config
from pydicom import uid
from pynetdicom import AE, _config, evt
from pynetdicom.acse import ACSE
from pynetdicom.sop_class import Verification
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import CallingAE, Settings, TLSSettings
from dicom_node.db.session import make_engine, make_sessionmaker
from dicom_node.receive.recovery import recover
from dicom_node.receive.store import StoreHandler

log = logging.getLogger(__name__)

STORAGE_SOP_CLASSES: tuple[str, ...] = (
    uid.CTImageStorage,
    uid.EnhancedCTImageStorage,
    uid.ComputedRadiographyImageStorage,
    uid.DigitalXRayImageStorageForPresentation,
    uid.DigitalXRayImageStorageForProcessing,
    uid.DigitalMammographyXRayImageStorageForPresentation,
    uid.DigitalMammographyXRayImageStorageForProcessing,
    uid.SecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
    uid.VLWholeSlideMicroscopyImageStorage,
    uid.VLPhotographicImageStorage,
)
# Every one decodable here: pydicom (native, deflate, RLE), pylibjpeg-libjpeg (JPEG),
# pyjpegls (JPEG-LS), pylibjpeg-openjpeg (JPEG 2000). pynetdicom picks, per context, the first
# of these the requestor proposed, so the order is our preference: keep the sender's lossless
# compression (no transcoding on its side), else native, and lossy only when nothing else is
# proposed (we never ask a sender to make a lossy copy of native data).
TRANSFER_SYNTAXES: tuple[str, ...] = (
    uid.JPEGLSLossless,
    uid.JPEG2000Lossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLossless,
    uid.RLELossless,
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.JPEGLSNearLossless,
    uid.JPEG2000,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
)
RESTART_DELAY_S = 1.0
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE not recognized


@dataclass(frozen=True)
class CallingPolicy:
    """Which calling AE titles may associate, each optionally only from some addresses."""

    allowed: tuple[tuple[str, frozenset[str] | None], ...]

    @classmethod
    def from_settings(cls, entries: list[CallingAE]) -> "CallingPolicy":
        return cls(tuple((e.ae_title.strip(), _addresses(e.host) if e.host else None) for e in entries))

    def allows(self, ae_title: str, address: str) -> bool:
        if not self.allowed:
            return True  # no list configured: any AE
        title = ae_title.strip()
        return any(t == title and (hosts is None or address in hosts) for t, hosts in self.allowed)


def _addresses(host: str) -> frozenset[str]:
    """A configured host as the set of IP addresses a peer connecting from it would show."""
    try:
        return frozenset({host} | {info[4][0] for info in socket.getaddrinfo(host, None)})
    except OSError:
        return frozenset({host})


class _PolicyACSE(ACSE):
    """pynetdicom's ACSE, refusing calling AEs (and AE/host pairs) our policy does not allow."""

    policy: CallingPolicy

    def _negotiate_as_acceptor(self) -> None:
        request = self.requestor.primitive
        if not self.policy.allows(str(request.calling_ae_title), str(self.requestor.address)):
            self.requestor.ae_title = request.calling_ae_title
            log.warning("association rejected: calling AE not allowed from %s", self.requestor.address)
            self.send_reject(*REJECT_CALLING_AE)
            evt.trigger(self.assoc, evt.EVT_REJECTED, {})
            self.assoc.kill()
            return
        super()._negotiate_as_acceptor()


class _PolicyRequestHandler(RequestHandler):
    def _create_association(self) -> Any:
        assoc = super()._create_association()
        acse = _PolicyACSE(assoc)
        acse.policy = self.server.calling_policy  # type: ignore[attr-defined]
        assoc.acse = acse
        return assoc


class _Server(ThreadedAssociationServer):
    """pynetdicom's threaded server plus our calling-AE policy and, optionally, SO_REUSEPORT."""

    def __init__(self, *args: Any, calling_policy: CallingPolicy, reuse_port: bool, **kwargs: Any) -> None:
        self.calling_policy = calling_policy
        self.reuse_port = reuse_port
        super().__init__(*args, request_handler=_PolicyRequestHandler, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        client, address = self.socket.accept()
        # Responses are small writes: without this, Nagle + the peer's delayed ACK add ~40 ms each.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context:
            # The handshake happens on the association's first read, in its own thread: a peer
            # that connects and stays silent must not stall the accept loop (pynetdicom
            # handshakes here, in the listener thread).
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address

    def server_bind(self) -> None:
        if self.reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def shutdown(self) -> None:
        socketserver.BaseServer.shutdown(self)  # stop serve_forever (pynetdicom's also edits ae._servers)
        self.server_close()
        for assoc in self.active_associations:
            assoc.abort()


@dataclass
class ScpHandle:
    """A running SCP in this process."""

    ae: AE
    server: _Server
    thread: threading.Thread | None
    handler: StoreHandler

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def shutdown(self) -> None:
        self.server.shutdown()
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.handler.close()


def build_ae(settings: Settings) -> AE:
    """The AE: Verification + the storage classes we analyse, in every syntax we can decode."""
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = 0  # unlimited: the peer sends whole datasets in few PDUs
    # per process: the kernel spreads connections unevenly over SO_REUSEPORT listeners
    ae.maximum_associations = settings.max_associations
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    return ae


def tls_context(tls: TLSSettings) -> ssl.SSLContext | None:
    """Server-side TLS (≥ 1.2); with ``ca_file``, client certificates are required (mutual TLS)."""
    if not tls.enabled:
        return None
    if tls.certfile is None or tls.keyfile is None:
        raise ValueError("tls.enabled needs tls.certfile and tls.keyfile")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.certfile), str(tls.keyfile))
    if tls.ca_file is not None:
        context.load_verify_locations(cafile=str(tls.ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def start_scp(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    block: bool = False,
    reuse_port: bool = False,
) -> ScpHandle:
    """Listen on ``settings.dicom_host:dicom_port``. Non-blocking: returns a handle with
    ``.shutdown()``; blocking: serves until the server is shut down, then returns the handle.
    ``reuse_port``: share the port with sibling processes (SO_REUSEPORT)."""
    quiet_libraries()
    ae = build_ae(settings)
    handler = StoreHandler(settings, sessions)
    server = ae.make_server(
        (settings.dicom_host, settings.dicom_port),
        ssl_context=tls_context(settings.tls),
        evt_handlers=[(evt.EVT_C_STORE, handler)],
        server_class=_Server,
        calling_policy=CallingPolicy.from_settings(settings.allowed_calling_aes),
        reuse_port=reuse_port,
    )
    if block:
        handle = ScpHandle(ae, server, None, handler)
        server.serve_forever()
        return handle
    thread = threading.Thread(target=server.serve_forever, name="pulmonode-scp", daemon=True)
    thread.start()
    log.info("SCP %s listening on %s:%d", settings.ae_title, settings.dicom_host, server.server_address[1])
    return ScpHandle(ae, server, thread, handler)


def quiet_libraries() -> None:
    """Process-wide: keep PHI out of logs. pynetdicom's DIMSE dumps log UIDs, and pydicom's
    reading validation warns (and logs) with the offending value, e.g. a malformed name."""
    _config.LOG_HANDLER_LEVEL = "none"
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE


def recover_spool(settings: Settings) -> None:
    """Before serving (and before forking): clear what a crash left in the spool."""
    engine = make_engine(settings.db_url)
    try:
        recover(settings, make_sessionmaker(engine))
    finally:
        engine.dispose()


def serve_forever(settings: Settings) -> None:
    """``pulmonode scp``: serve until SIGTERM/SIGINT, in ``settings.scp_processes`` processes."""
    recover_spool(settings)
    if settings.scp_processes <= 1:
        _serve_one(settings, reuse_port=False)
        return
    children = {_fork_child(settings) for _ in range(settings.scp_processes)}
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()
        for pid in children:
            os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        pid, status = os.wait()
        children.discard(pid)
        if not stopping.is_set():  # a child died: replace it so capacity stays as configured
            log.error("SCP process %d exited (status %d); restarting it", pid, status)
            time.sleep(RESTART_DELAY_S)  # a child that cannot start must not spin the parent
            children.add(_fork_child(settings))


def _fork_child(settings: Settings) -> int:
    pid = os.fork()
    if pid == 0:  # child: its own engine and server (nothing is shared across fork)
        code = 0
        try:
            _serve_one(settings, reuse_port=True)
        except BaseException:
            log.exception("SCP process failed")
            code = 1
        os._exit(code)
    return pid


def _serve_one(settings: Settings, *, reuse_port: bool) -> None:
    engine = make_engine(settings.db_url)
    handle = start_scp(settings, make_sessionmaker(engine), reuse_port=reuse_port)
    stopped = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopped.wait(1.0):
        pass
    handle.shutdown()
    engine.dispose()
