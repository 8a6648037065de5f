"""The re-identification map of one study: what the de-identified copies replaced, to undo it on results.

Holds PHI (original UIDs and patient/study values): it is only ever stored sealed (``vault.seal``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dicom_node.privacy.errors import ReidentificationMapError

#: Patient and study module attributes restored on results (the ones highdicom copies from sources).
RESTORED_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
)

_FORMAT = "pulmonode-reid-map/1"


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ReidentificationMap:
    """``uid_map``: pseudonymous UID → original UID; ``attributes``: keyword → original value;
    ``pseudonyms``: keyword → the pseudonymous value written in its place (PatientID, PatientName,
    AccessionNumber, StudyID); ``date_shift_days``: added to the original dates (0: not shifted)."""

    study_uid: str  # the pseudonymous Study Instance UID
    uid_map: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)
    pseudonyms: Mapping[str, str] = field(default_factory=dict)
    date_shift_days: int = 0

    def __post_init__(self) -> None:
        for name in ("uid_map", "attributes", "pseudonyms"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def original_study_uid(self) -> str:
        return self.uid_map.get(self.study_uid, "")

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": _FORMAT,
                "study_uid": self.study_uid,
                "uid_map": dict(self.uid_map),
                "attributes": dict(self.attributes),
                "pseudonyms": dict(self.pseudonyms),
                "date_shift_days": self.date_shift_days,
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ReidentificationMap:
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ReidentificationMapError(f"re-identification map: format {data.get('format')!r}, expected {_FORMAT!r}")
            return cls(
                study_uid=_str(data["study_uid"]),
                uid_map=_str_map(data["uid_map"]),
                attributes=_str_map(data["attributes"]),
                pseudonyms=_str_map(data["pseudonyms"]),
                date_shift_days=int(data["date_shift_days"]),
            )
        except ReidentificationMapError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReidentificationMapError(f"re-identification map: malformed JSON ({exc!r})") from exc


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return {_str(k): _str(v) for k, v in value.items()}
