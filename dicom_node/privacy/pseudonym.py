"""Keyed pseudonyms: HMAC-SHA256 under the site key.

Deterministic for one site key (references across a study's instances stay consistent, a re-sent
instance maps to the same pseudonym) and unlinkable across keys. UIDs become ``2.25.<int>``
(PS3.5 B.2: a UUID-derived UID, ≤ 44 characters); other identifiers become short tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Pseudonymizer:
    site_key: str

    def _digest(self, domain: str, value: str) -> bytes:
        msg = f"{domain}\x00{value}".encode("utf-8")
        return hmac.new(self.site_key.encode("utf-8"), msg, hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        """A UID → ``2.25.<128-bit int>``."""
        return "2.25." + str(int.from_bytes(self._digest("uid", value.strip())[:16], "big"))

    def token(self, value: str, domain: str = "id", length: int = 16) -> str:
        """An identifier (PatientID, AccessionNumber, …) → an upper-case base32 token."""
        raw = base64.b32encode(self._digest(domain, value.strip())).decode("ascii")
        return raw[:length]

    def patient_id(self, value: str) -> str:
        return "PN" + self.token(value, "patient", 14)

    def date_shift_days(self, patient_id: str, max_days: int = 365) -> int:
        """A per-patient shift in [-max_days, -1] for Retain Longitudinal Temporal Information
        with Modified Dates: intervals within a patient are kept, absolute dates are not."""
        n = int.from_bytes(self._digest("dateshift", patient_id.strip())[:4], "big")
        return -(1 + n % max_days)
