"""Sealing re-identification maps: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the
site key with HKDF-SHA256, so the database never holds the map in clear and a DB dump alone is
useless without the site key."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dicom_node.privacy.errors import ReidentificationMapError, VaultError
from dicom_node.privacy.reidmap import ReidentificationMap

_INFO = b"pulmonode/reidentification-map/fernet/v1"  # fixed label: separates this key from other uses


def _fernet(site_key: str) -> Fernet:
    if not site_key:
        raise VaultError("site key is empty: cannot derive the re-identification map key")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(site_key.encode("utf-8"))))


def seal(reid_map: ReidentificationMap, site_key: str) -> bytes:
    return _fernet(site_key).encrypt(reid_map.to_json().encode("utf-8"))


def unseal(ciphertext: bytes, site_key: str) -> ReidentificationMap:
    try:
        plaintext = _fernet(site_key).decrypt(ciphertext)
    except InvalidToken as exc:
        raise VaultError(
            "cannot open the re-identification map: wrong site key, or the ciphertext is corrupt"
        ) from exc
    try:
        return ReidentificationMap.from_json(plaintext)
    except ReidentificationMapError as exc:
        raise VaultError(f"re-identification map decrypted but unreadable: {exc}") from exc
