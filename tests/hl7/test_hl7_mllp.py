"""MLLP client against the hl7apy-based listener (and a scripted misbehaving peer), on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from hl7.ack import build_ack, parse_ack
from hl7.errors import AckError
from hl7.listener import MLLPListener
from hl7.mllp import AckOutcome, frame, send, unframe
from hl7.oru import build_oru
from tests.conftest import free_port
from tests.hl7.oru_samples import NOW, sample_findings, sample_order

ORU = build_oru(sample_order(), sample_findings(), control_id="PN-777", now=NOW, correction=False)


@pytest.fixture
def listener() -> Iterator[MLLPListener]:
    with MLLPListener("127.0.0.1", 0, drop_hold_seconds=5.0) as running:
        yield running


def test_aa_is_delivered_and_the_listener_parsed_the_oru(listener: MLLPListener) -> None:
    result = send(ORU, "127.0.0.1", listener.port, timeout=5)
    assert result.outcome is AckOutcome.DELIVERED
    assert result.ack is not None and (result.ack.code, result.ack.control_id) == ("AA", "PN-777")
    (received,) = listener.messages
    assert received.text == ORU
    assert (received.message_type, received.control_id) == ("ORU^R01^ORU_R01", "PN-777")
    assert (received.result_status, received.obx_count, received.reply) == ("F", 27, "AA")


@pytest.mark.parametrize(("code", "outcome"), [("AE", AckOutcome.RETRY), ("AR", AckOutcome.REJECTED)])
def test_ae_retries_and_ar_is_rejected(listener: MLLPListener, code: str, outcome: AckOutcome) -> None:
    listener.ack_code = code
    result = send(ORU, "127.0.0.1", listener.port, timeout=5)
    assert result.outcome is outcome
    assert result.detail.startswith(f"ACK {code}")


def test_lost_ack_times_out_and_the_resend_carries_the_same_control_id(listener: MLLPListener) -> None:
    listener.ack_code = "drop"
    started = time.monotonic()
    first = send(ORU, "127.0.0.1", listener.port, timeout=0.5)
    assert first.outcome is AckOutcome.RETRY and "no ACK" in first.detail
    assert 0.4 < time.monotonic() - started < 4.0
    listener.ack_code = "AA"
    second = send(ORU, "127.0.0.1", listener.port, timeout=5)
    assert second.outcome is AckOutcome.DELIVERED
    assert [(m.control_id, m.reply) for m in listener.messages] == [("PN-777", "drop"), ("PN-777", "AA")]
    assert listener.messages[0].text == listener.messages[1].text == ORU


def test_listener_down_is_a_refused_connection_to_retry(listener: MLLPListener) -> None:
    listener.stop()
    result = send(ORU, "127.0.0.1", listener.port, timeout=2)
    assert result.outcome is AckOutcome.RETRY and "refused" in result.detail
    listener.start()  # same port again
    assert send(ORU, "127.0.0.1", listener.port, timeout=5).outcome is AckOutcome.DELIVERED


def scripted_peer(reply: bytes | None) -> tuple[int, threading.Thread]:
    """Accept one connection, read one frame, answer ``reply`` raw (None: close at once)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with server, server.accept()[0] as conn:
            data = b""
            while b"\x1c\r" not in data:
                data += conn.recv(65536)
            if reply is not None:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


def test_ack_for_another_message_is_not_a_delivery() -> None:
    wrong = build_ack(ORU.replace("PN-777", "PN-999"), "AA", control_id="A1", now=NOW)
    port, thread = scripted_peer(frame(wrong))
    result = send(ORU, "127.0.0.1", port, timeout=5)
    thread.join(5)
    assert result.outcome is AckOutcome.RETRY
    assert "MSA-2 'PN-999' does not match MSH-10 'PN-777'" in result.detail


@pytest.mark.parametrize(("reply", "detail"), [(None, "without an ACK"), (b"\x0bnot hl7\x1c\r", "unusable ACK")])
def test_closed_connection_or_garbage_reply_is_retried(reply: bytes | None, detail: str) -> None:
    port, thread = scripted_peer(reply)
    result = send(ORU, "127.0.0.1", port, timeout=5)
    thread.join(5)
    assert result.outcome is AckOutcome.RETRY and detail in result.detail


def test_ack_parsing_and_framing() -> None:
    ack = parse_ack(build_ack(ORU, "AE", control_id="A2", now=NOW, text="bad OBX|5"))
    assert (ack.code, ack.control_id, ack.text) == ("AE", "PN-777", "bad OBX|5")
    enhanced = parse_ack("MSH|^~\\&|EHR|H|PN|PN|20260101||ACK|X|P|2.5\rMSA|CA|PN-1")
    assert (enhanced.code, enhanced.control_id) == ("AA", "PN-1")
    with pytest.raises(AckError, match="MSA-1"):
        parse_ack("MSH|^~\\&|EHR|H|PN|PN|20260101||ACK|X|P|2.5\rMSA|ZZ|PN-1")
    with pytest.raises(AckError):
        parse_ack("hello")
    assert unframe(b"junk" + frame("MSH|x")) == "MSH|x"
    with pytest.raises(AckError, match="MLLP frame"):
        unframe(b"MSH|x")


def test_listener_command_prints_a_summary_without_patient_data() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hl7.listener", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert "MLLP listener on" in process.stdout.readline()
        assert send(ORU, "127.0.0.1", port, timeout=10).outcome is AckOutcome.DELIVERED
        line = process.stdout.readline()
    finally:
        process.terminate()
        process.wait(10)
    assert "ORU^R01^ORU_R01 control=PN-777 OBR-25=F OBX=27 -> AA" in line
    assert "MÜLLER" not in line and "SYN000042" not in line
