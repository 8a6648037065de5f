"""General acknowledgement (ACK) messages: parse the EHR's reply, and build one (the listener).

MSA-1 acknowledgement codes (HL7 Table 0008): AA accept, AE error, AR reject; the enhanced-mode
CA/CE/CR mean the same at the commit level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from hl7.errors import AckError
from hl7.oru import dtm, escape, unescape

ACK_CODES = frozenset({"AA", "AE", "AR"})
ENHANCED_TO_ORIGINAL = {"CA": "AA", "CE": "AE", "CR": "AR"}


@dataclass(frozen=True)
class Ack:
    """The parts of an ACK the sender acts on."""

    code: str  # AA, AE or AR
    control_id: str  # MSA-2: the MSH-10 of the message acknowledged
    text: str = ""  # MSA-3, if the receiver explained itself


def parse_ack(text: str) -> Ack:
    """Parse an ACK (any HL7 v2 version, tolerant validation); raises AckError if unusable."""
    try:
        message = parse_message(text.strip("\r\n"), find_groups=False)
        msa = message.msa
        code = msa.msa_1.to_er7().strip().upper()
        control_id = unescape(msa.msa_2.to_er7().strip())
        detail = unescape(msa.msa_3.to_er7().strip())
    except (HL7apyException, AttributeError, IndexError) as exc:
        raise AckError(f"not an HL7 ACK with an MSA segment: {exc}") from exc
    code = ENHANCED_TO_ORIGINAL.get(code, code)
    if code not in ACK_CODES:
        raise AckError(f"MSA-1 acknowledgment code {code!r} is not AA, AE or AR")
    return Ack(code=code, control_id=control_id, text=detail)


def message_header(text: str) -> dict[str, str]:
    """MSH-3..6, MSH-9, MSH-10, MSH-11, MSH-12 of a message as ER7 strings (for replies/logs)."""
    try:
        msh = parse_message(text.strip("\r\n"), find_groups=False).msh
        fields = {n: getattr(msh, f"msh_{n}").to_er7() for n in (3, 4, 5, 6, 9, 10, 11, 12)}
    except (HL7apyException, AttributeError) as exc:
        raise AckError(f"not an HL7 message with an MSH segment: {exc}") from exc
    return {str(k): v for k, v in fields.items()}


def build_ack(
    incoming: str, code: str, *, control_id: str, now: datetime, text: str = ""
) -> str:
    """The ACK^<trigger> for an ``incoming`` message: sender/receiver swapped, MSA-2 = its MSH-10."""
    if code not in ACK_CODES:
        raise AckError(f"acknowledgment code {code!r} is not AA, AE or AR")
    msh = message_header(incoming)
    trigger = (msh["9"].split("^") + ["", ""])[1]
    ack = Message("ACK", version="2.5.1", validation_level=VALIDATION_LEVEL.STRICT)
    ack.msh.msh_3, ack.msh.msh_4 = msh["5"], msh["6"]
    ack.msh.msh_5, ack.msh.msh_6 = msh["3"], msh["4"]
    ack.msh.msh_7 = dtm(now)
    ack.msh.msh_9 = f"ACK^{trigger}^ACK" if trigger else "ACK"
    ack.msh.msh_10 = escape(control_id)
    ack.msh.msh_11 = msh["11"] or "P"
    ack.msh.msh_12 = "2.5.1"
    ack.msa.msa_1 = code
    ack.msa.msa_2 = msh["10"]
    if text:
        ack.msa.msa_3 = escape(text)
    return ack.to_er7()
