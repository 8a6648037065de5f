"""The node's one configuration object.

Built once in the CLI (``Settings.load``) from, in rising priority: defaults, an optional TOML
file (``--config``), and ``PULMONODE_*`` environment variables; then passed down explicitly.
Nothing here runs at import time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEMO_SITE_KEY = "pulmonode-demo-site-key-not-for-clinical-use"


class CallingAE(BaseModel):
    """One allowed calling AE title, optionally pinned to a peer host/IP."""

    ae_title: str
    host: str | None = None


class DicomDestination(BaseModel):
    """A PACS that takes our results by C-STORE (DIMSE) or STOW-RS (DICOMweb)."""

    name: str
    kind: Literal["dimse", "stow"] = "dimse"
    ae_title: str = "ORTHANC"
    host: str = "127.0.0.1"
    port: int = 4242
    url: str | None = None  # STOW-RS base URL, e.g. http://127.0.0.1:8042/dicom-web
    username: str | None = None
    password: str | None = None


class HL7Destination(BaseModel):
    """An EHR interface engine that takes ORU^R01 over MLLP."""

    name: str = "ehr"
    host: str = "127.0.0.1"
    port: int = 2575
    sending_application: str = "PULMONODE"
    sending_facility: str = "PULMONODE"
    receiving_application: str = "EHR"
    receiving_facility: str = "HOSPITAL"
    ack_timeout_seconds: float = 10.0


class TLSSettings(BaseModel):
    """Optional (mutual) TLS on the DICOM port."""

    enabled: bool = False
    certfile: Path | None = None
    keyfile: Path | None = None
    ca_file: Path | None = None  # set → client certificates are required and checked


class Settings(BaseSettings):
    """Every setting of the node. Env: ``PULMONODE_<NAME>``; nested: ``PULMONODE_TLS__ENABLED``."""

    model_config = SettingsConfigDict(
        env_prefix="PULMONODE_", env_nested_delimiter="__", extra="forbid"
    )

    demo_mode: bool = False
    ae_title: str = "PULMONODE"
    dicom_host: str = "0.0.0.0"
    dicom_port: int = 11112
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = Path("./data")
    database_url: str | None = None  # default: SQLite in data_dir
    allowed_calling_aes: list[CallingAE] = Field(default_factory=list)  # empty → any AE accepted
    max_associations: int = 16
    scp_processes: int = 1  # >1: several SCP processes share the port (SO_REUSEPORT)
    tls: TLSSettings = Field(default_factory=TLSSettings)
    min_free_disk_mb: int = 512  # below this watermark C-STORE answers 0xA700
    max_sequence_depth: int = 8

    stable_seconds: float = 60.0  # as Orthanc's StableAge
    min_ct_slices: int = 32
    allow_secondary_capture: bool = False  # SC screenshots carry burned-in PHI risk

    site_key: str = DEMO_SITE_KEY
    retain_dates_shifted: bool = True  # Retain Longitudinal Temporal Information, Modified Dates
    retain_patient_characteristics: bool = True

    workers: int = 1
    lease_seconds: float = 120.0
    heartbeat_seconds: float = 10.0
    max_attempts: int = 3
    model_profile: Literal["demo", "paper"] = "demo"
    weights_dir: Path | None = None
    device: str = "cpu"
    # the U-Net card's mirrored passes (5 U-Net passes instead of 1: better CPM and fewer FPs on
    # held-out phantoms, see ai_engine/weights/README.md); False runs the plain pass only, with the
    # card's detection threshold calibrated for it
    unet_mirrored_passes: bool = True

    pacs: list[DicomDestination] = Field(default_factory=list)
    ehr: list[HL7Destination] = Field(default_factory=list)
    delivery_max_backoff_seconds: float = 300.0
    delivery_timeout_seconds: float = 30.0  # one C-STORE/STOW/MLLP exchange
    delivery_lease_seconds: float = 90.0  # a crashed sender's claim expires after this

    @field_validator("ae_title")
    @classmethod
    def _ae_title_valid(cls, value: str) -> str:
        if not 0 < len(value) <= 16 or "\\" in value or not value.isprintable():
            raise ValueError(f"ae_title {value!r}: 1-16 printable characters, no backslash")
        return value

    @model_validator(mode="after")
    def _refuse_demo_key(self) -> "Settings":
        if not self.demo_mode and self.site_key == DEMO_SITE_KEY:
            raise ValueError(
                "site_key is the public demo key: set PULMONODE_SITE_KEY (or site_key in the "
                "config file) to a secret of your site, or run in demo mode"
            )
        if len(self.site_key) < 16:
            raise ValueError("site_key must be at least 16 characters")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'pulmonode.db').resolve()}"

    @property
    def spool_dir(self) -> Path:
        """Received instances exactly as the modality sent them (PHI)."""
        return self.data_dir / "spool"

    @property
    def deid_dir(self) -> Path:
        """De-identified copies: the only images the AI engine reads."""
        return self.data_dir / "deid"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> "Settings":
        """Defaults < TOML file < environment < explicit overrides (CLI flags)."""
        if config_file is None:
            return cls(**overrides)
        path = Path(config_file)
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"config file {path}: {exc}") from exc
        with_file = type(
            cls.__name__,
            (cls,),
            {"model_config": {**cls.model_config, "toml_file": path}, "__module__": cls.__module__},
        )
        return with_file(**overrides)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)
