"""Start, stop and query the Orthanc PACS shipped beside the node (demo and tests).

The configuration is ``orthanc/orthanc.json`` (a valid template) with this instance's ports,
directories and the node's DICOM address filled in; ``orthanc/route.lua`` forwards stable image
studies to the node. Orthanc runs as a child process; ``stop`` waits for it to exit so a restart
never races the old process for its ports or its index.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_COMMAND = "sudo apt-get install -y orthanc orthanc-dicomweb"
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "orthanc"
NODE_MODALITY = "pulmonode"  # the DicomModalities key route.lua sends to


class OrthancError(RuntimeError):
    """Orthanc is missing, would not start, or answered a REST call with an error."""


def is_installed() -> bool:
    """True when the Orthanc server and its DICOMweb plugin are where Debian installs them."""
    return ORTHANC_BINARY.exists() and DICOMWEB_PLUGIN.exists()


class OrthancServer:
    """One Orthanc process with its own storage under ``work_dir``."""

    def __init__(
        self,
        work_dir: Path,
        http_port: int,
        dicom_port: int,
        node_ae: str = "PULMONODE",
        node_host: str = "127.0.0.1",
        node_port: int = 11112,
        stable_age: int = 60,
        *,
        aet: str = "ORTHANC",
        route: bool = True,
        credentials: tuple[str, str] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.node = (node_ae, node_host, node_port)
        self.stable_age = stable_age
        self.aet = aet
        self.route = route
        self.credentials = credentials
        self.overrides = overrides or {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def config_path(self) -> Path:
        return self.work_dir / "orthanc.json"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "orthanc.log"

    def config(self) -> dict[str, Any]:
        """The template with this instance's values."""
        cfg = json.loads((TEMPLATE_DIR / "orthanc.json").read_text(encoding="utf-8"))
        cfg.update(
            StorageDirectory=str(self.work_dir / "storage"),
            IndexDirectory=str(self.work_dir / "index"),
            HttpPort=self.http_port,
            DicomPort=self.dicom_port,
            DicomAet=self.aet,
            StableAge=self.stable_age,
            DicomModalities={NODE_MODALITY: list(self.node)},
            LuaScripts=[str(TEMPLATE_DIR / "route.lua")] if self.route else [],
            Plugins=[str(DICOMWEB_PLUGIN)],
        )
        cfg["DicomWeb"]["Host"] = f"127.0.0.1:{self.http_port}"  # returned URLs keep the port
        if self.credentials:
            cfg.update(AuthenticationEnabled=True, RegisteredUsers=dict([self.credentials]))
        cfg.update(self.overrides)
        return cfg

    def start(self, timeout_s: float = 30.0) -> None:
        """Write the configuration, start Orthanc and wait until its REST API answers."""
        if not is_installed():
            raise OrthancError(f"Orthanc or its DICOMweb plugin is not installed: {INSTALL_COMMAND}")
        if self.running:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        env = {**os.environ, "TCP_NODELAY": "1"}  # Debian's build stalls ~40 ms per image without it
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(ORTHANC_BINARY), str(self.config_path)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise OrthancError(f"Orthanc exited during start-up; see {self.log_path}")
            try:
                if self._client().get("/system", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise OrthancError(f"Orthanc did not answer on {self.url} within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then wait for the process to exit (SIGKILL after ``timeout_s``)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> "OrthancServer":
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- REST helpers -------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        auth = httpx.BasicAuth(*self.credentials) if self.credentials else None
        return httpx.Client(base_url=self.url, auth=auth, timeout=30.0)

    def _get(self, path: str) -> Any:
        with self._client() as client:
            response = client.get(path)
        _raise_for(response, path)
        return response.json()

    def studies(self) -> list[str]:
        """Orthanc identifiers of every stored study."""
        return list(self._get("/studies"))

    def study(self, study_id: str) -> dict[str, Any]:
        """Orthanc's JSON for one study (``MainDicomTags``, ``Series``, ``IsStable``, …)."""
        return dict(self._get(f"/studies/{study_id}"))

    def instances_of_study(self, study_id: str) -> list[dict[str, Any]]:
        """The instances of one study (Orthanc's JSON, with ``MainDicomTags``)."""
        return list(self._get(f"/studies/{study_id}/instances"))

    def series_of_study(self, study_id: str) -> list[dict[str, Any]]:
        """The series of one study (``MainDicomTags`` with Modality, ``Instances`` ids)."""
        return list(self._get(f"/studies/{study_id}/series"))

    def modalities_of_study(self, study_id: str) -> dict[str, list[str]]:
        """Modality → instance ids (Modality is a series-level tag in Orthanc)."""
        out: dict[str, list[str]] = {}
        for series in self.series_of_study(study_id):
            out.setdefault(series["MainDicomTags"].get("Modality", ""), []).extend(series["Instances"])
        return out

    def find_study(self, study_instance_uid: str) -> str | None:
        """The Orthanc identifier of the study with this Study Instance UID, if stored."""
        found = self._find("Study", {"StudyInstanceUID": study_instance_uid})
        return found[0] if found else None

    def find_instance(self, sop_instance_uid: str) -> str | None:
        found = self._find("Instance", {"SOPInstanceUID": sop_instance_uid})
        return found[0] if found else None

    def _find(self, level: str, query: dict[str, str]) -> list[str]:
        with self._client() as client:
            response = client.post("/tools/find", json={"Level": level, "Query": query})
        _raise_for(response, "/tools/find")
        return list(response.json())

    def get_instance_file(self, instance_id: str) -> bytes:
        """The stored DICOM file (Part 10 bytes) of one instance."""
        with self._client() as client:
            response = client.get(f"/instances/{instance_id}/file")
        _raise_for(response, f"/instances/{instance_id}/file")
        return response.content

    def statistics(self) -> dict[str, Any]:
        return dict(self._get("/statistics"))


def _raise_for(response: httpx.Response, path: str) -> None:
    if response.status_code >= 400:
        raise OrthancError(f"Orthanc {path}: HTTP {response.status_code} {response.text[:200]}")
