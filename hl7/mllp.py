"""MLLP (Minimal Lower Layer Protocol) client: send one HL7 message, wait for its ACK.

A message is framed as ``0x0B <message> 0x1C 0x0D``. ``send`` never raises for transport
trouble: it returns what the caller should do next. A resend must be the SAME text, with the
SAME MSH-10, so the receiver can recognise a duplicate.

    AA                                                 → DELIVERED
    AE, timeout, connection refused/lost, lost ACK,
    unparseable ACK, MSA-2 ≠ MSH-10                    → RETRY
    AR                                                 → REJECTED (dead letter)
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from enum import Enum

from hl7.ack import Ack, message_header, parse_ack
from hl7.errors import AckError

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
ENCODING = "utf-8"  # MSH-18 UNICODE UTF-8


class AckOutcome(str, Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class SendResult:
    """The outcome, why (safe to log: no message content), and the ACK when one came."""

    outcome: AckOutcome
    detail: str
    ack: Ack | None = None


def frame(message: str) -> bytes:
    return START_BLOCK + message.encode(ENCODING) + END_BLOCK


def unframe(data: bytes) -> str:
    """The message inside one MLLP frame (bytes before the start block are ignored)."""
    start = data.find(START_BLOCK)
    end = data.find(END_BLOCK, start + 1)
    if start < 0 or end < 0:
        raise AckError("reply is not an MLLP frame (0x0B ... 0x1C 0x0D)")
    return data[start + 1 : end].decode(ENCODING, errors="replace")


def send(
    message: str, host: str, port: int, timeout: float = 10.0, *, connect_timeout: float | None = None
) -> SendResult:
    """Send ``message`` over a new connection and classify the ACK (see the module docstring)."""
    control_id = message_header(message)["10"]
    try:
        with socket.create_connection((host, port), timeout=connect_timeout or timeout) as sock:
            sock.sendall(frame(message))
            reply = _read_frame(sock, timeout)
    except ConnectionRefusedError:
        return SendResult(AckOutcome.RETRY, f"connection refused by {host}:{port}")
    except TimeoutError:
        return SendResult(AckOutcome.RETRY, f"no ACK from {host}:{port} within {timeout:g} s")
    except OSError as exc:
        return SendResult(AckOutcome.RETRY, f"connection to {host}:{port} failed: {exc}")
    if reply is None:
        return SendResult(AckOutcome.RETRY, f"{host}:{port} closed the connection without an ACK")
    return classify(reply, control_id)


def _read_frame(sock: socket.socket, timeout: float) -> bytes | None:
    """Bytes up to and including the end block; None if the peer closed first."""
    deadline = time.monotonic() + timeout
    data = b""
    while END_BLOCK not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


def classify(reply: bytes, control_id: str) -> SendResult:
    """Map a framed reply to the sender's next step."""
    try:
        ack = parse_ack(unframe(reply))
    except AckError as exc:
        return SendResult(AckOutcome.RETRY, f"unusable ACK: {exc}")
    if ack.control_id != control_id:
        return SendResult(AckOutcome.RETRY, f"ACK MSA-2 {ack.control_id!r} does not match MSH-10 {control_id!r}", ack)
    outcome = {"AA": AckOutcome.DELIVERED, "AE": AckOutcome.RETRY, "AR": AckOutcome.REJECTED}[ack.code]
    detail = f"ACK {ack.code}" + (f": {ack.text}" if ack.text else "")
    return SendResult(outcome, detail, ack)
