"""An MLLP listener that plays the EHR (demo and tests), built on hl7apy's MLLP server.

Every message received is parsed with hl7apy, kept, and acknowledged with MSA-1 = ``ack_code``
(AA, AE or AR) and MSA-2 = its MSH-10. ``ack_code = "drop"`` sends no ACK and holds the
connection open, as a lost ACK looks to the sender. A message hl7apy cannot parse gets AE.

    python -m hl7.listener --port 2575 [--host 127.0.0.1] [--ack AA|AE|AR|drop]

prints one line per message (type, control ID, result status, OBX count, reply: no patient data).
"""

from __future__ import annotations

import argparse
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from hl7apy.exceptions import HL7apyException
from hl7apy.mllp import MLLPRequestHandler, MLLPServer
from hl7apy.parser import parse_message

from hl7.ack import build_ack
from hl7.mllp import END_BLOCK, START_BLOCK

ACK_MODES = ("AA", "AE", "AR", "drop")


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the EHR saw it, and what it answered."""

    text: str
    message_type: str  # MSH-9, e.g. ORU^R01^ORU_R01
    control_id: str  # MSH-10
    result_status: str  # OBR-25 of the first OBR, "" if none
    obx_count: int
    reply: str  # AA, AE, AR or drop
    parse_error: str = ""

    def summary(self) -> str:
        status = f" OBR-25={self.result_status}" if self.result_status else ""
        error = f" ({self.parse_error})" if self.parse_error else ""
        return f"{self.message_type} control={self.control_id}{status} OBX={self.obx_count} -> {self.reply}{error}"


class MLLPListener:
    """A threaded MLLP server on ``host:port`` (port 0: any free port, see ``.port``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: Callable[[ReceivedMessage], None] | None = None,
        ack_code: str = "AA",
        drop_hold_seconds: float = 30.0,
    ) -> None:
        if ack_code not in ACK_MODES:
            raise ValueError(f"ack_code {ack_code!r}: one of {ACK_MODES}")
        self.host = host
        self.requested_port = port
        self.on_message = on_message
        self.ack_code = ack_code  # may be changed while running
        self.drop_hold_seconds = drop_hold_seconds
        self._messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._ack_ids = itertools.count(1)
        self._server: _Server | None = None
        self._bound_port = 0
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (kept after stop, so a test can find the listener down there)."""
        return self._bound_port or self.requested_port

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def start(self) -> "MLLPListener":
        self._server = _Server(self.host, self._bound_port or self.requested_port, self)
        self._bound_port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="mllp-listener", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "MLLPListener":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def receive(self, text: str) -> str | None:
        """Record ``text`` and return the ACK to send (None: send none)."""
        mode = self.ack_code
        received = _inspect(text, mode)
        with self._lock:
            self._messages.append(received)
        if self.on_message is not None:
            self.on_message(received)
        if mode == "drop":
            return None
        code = "AE" if received.parse_error else mode
        return build_ack(
            text, code, control_id=f"ACK{next(self._ack_ids)}", now=datetime.now(timezone.utc),
            text=received.parse_error,
        )


def _inspect(text: str, mode: str) -> ReceivedMessage:
    fields = text.split("\r", 1)[0].split("|")
    message_type, control_id = (fields + [""] * 10)[8], (fields + [""] * 10)[9]
    try:
        message = parse_message(text)
    except HL7apyException as exc:
        reply = "drop" if mode == "drop" else "AE"
        return ReceivedMessage(text, message_type, control_id, "", 0, reply, f"unparseable: {exc}")
    return ReceivedMessage(
        text, message_type, control_id, _first(message, "OBR", 25), len(_segments(message, "OBX")), mode
    )


def _segments(element, name: str) -> list:  # type: ignore[no-untyped-def]
    """All segments called ``name`` anywhere in a parsed message (groups included)."""
    found = []
    for child in element.children:
        if child.classname == "Segment":
            found += [child] if child.name == name else []
        else:
            found += _segments(child, name)
    return found


def _first(message, segment: str, field: int) -> str:  # type: ignore[no-untyped-def]
    segments = _segments(message, segment)
    if not segments:
        return ""
    return str(getattr(segments[0], f"{segment.lower()}_{field}").to_er7())


class _Handler(MLLPRequestHandler):
    """hl7apy's MLLP framing and reading; every message goes to the listener."""

    def _route_message(self, msg: str) -> str:
        reply = self.server.listener.receive(msg)
        if reply is None:
            self._hold()
            return ""
        return (START_BLOCK + reply.encode(self.encoding) + END_BLOCK).decode(self.encoding)

    def _hold(self) -> None:
        """Keep the connection open without answering until the sender gives up (or a cap)."""
        self.request.settimeout(self.server.listener.drop_hold_seconds)
        try:
            self.request.recv(1)
        except OSError:
            pass


class _Server(MLLPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, port: int, listener: MLLPListener) -> None:
        self.listener = listener
        super().__init__(host, port, handlers={}, timeout=10, request_handler_class=_Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MLLP listener that plays the EHR and prints each message")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2575)
    parser.add_argument("--ack", default="AA", choices=ACK_MODES)
    args = parser.parse_args(argv)
    listener = MLLPListener(args.host, args.port, on_message=lambda m: print(m.summary(), flush=True), ack_code=args.ack)
    listener.start()
    print(f"MLLP listener on {args.host}:{listener.port} (ACK {args.ack}); Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()


if __name__ == "__main__":
    main()
