"""End-to-end fixtures: a real Orthanc, a real MLLP listener (the EHR), the node, dcmtk's storescu."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from ai_engine.findings import NoduleType
from ai_engine.synthetic import NoduleSpec, lung_point_mm
from ai_engine.findings import Side, Zone
from dicom_node.config import DicomDestination, HL7Destination, Settings
from dicom_node.db.models import Job
from dicom_node.orthanc_ctl import OrthancServer
from dicom_node.service import Node, start_node
from dicom_node.synth import SyntheticStudy, write_synthetic_ct
from hl7.listener import MLLPListener
from tests.conftest import free_port

# Physically small (160 × 160 × 100 mm) so the AI runs in seconds; the phantom scales the chest.
SHAPE_ZYX = (40, 128, 128)
SPACING_MM = (1.25, 1.25, 2.5)


def small_study(out_dir: Path, seed: int) -> SyntheticStudy:
    """A synthetic chest CT with one clear 12 mm solid nodule in the right upper zone."""
    centre = lung_point_mm(seed, Side.RIGHT, Zone.UPPER, shape_zyx=SHAPE_ZYX, spacing_mm=SPACING_MM, clearance_mm=10)
    spec = [NoduleSpec(centre_mm=centre, diameter_mm=12.0, nodule_type=NoduleType.SOLID, morphology="round",
                       calcified=False)]
    return write_synthetic_ct(out_dir, seed=seed, shape_zyx=SHAPE_ZYX, spacing_mm=SPACING_MM, nodule_spec=spec)


def storescu(files: list[Path], port: int, ae_title: str = "PULMONODE") -> None:
    """The modality: dcmtk's storescu, Nagle off as a tuned modality would run it."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    subprocess.run(["storescu", "-aet", "CT01", "-aec", ae_title, "127.0.0.1", str(port), *map(str, files)],
                   check=True, capture_output=True, env=env, timeout=120)


@dataclass
class Site:
    """A hospital on loopback: PACS, EHR and the node's settings (the node itself per test)."""

    settings: Settings
    orthanc: OrthancServer
    ehr: MLLPListener
    tmp: Path

    def start_node(self) -> Node:
        return start_node(self.settings)

    def wait_job(self, node_sessions, predicate: Callable[[list[Job]], bool], timeout_s: float = 240) -> list[Job]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with node_sessions() as s:
                jobs = list(s.scalars(select(Job).order_by(Job.id)))
            if predicate(jobs):
                return jobs
            if any(j.state == "failed" for j in jobs):
                raise AssertionError(f"job failed: {[ (j.id, j.reason) for j in jobs]}")
            time.sleep(0.3)
        raise AssertionError(f"timed out; jobs: {[(j.id, j.state, j.reason) for j in jobs]}")


@pytest.fixture
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    db_url = getattr(request, "param", None) or f"sqlite:///{tmp_path / 'node.db'}"
    orthanc = OrthancServer(tmp_path / "orthanc", free_port(), free_port(), route=False)
    ehr = MLLPListener(port=0)
    ehr.start()
    settings = Settings(
        demo_mode=True, data_dir=tmp_path / "node", database_url=db_url, dicom_host="127.0.0.1",
        dicom_port=free_port(), http_port=free_port(), stable_seconds=1.0, min_free_disk_mb=16,
        min_ct_slices=32,
        pacs=[DicomDestination(name="orthanc", kind="dimse", ae_title="ORTHANC", host="127.0.0.1", port=orthanc.dicom_port)],
        ehr=[HL7Destination(name="ehr", host="127.0.0.1", port=ehr.port, ack_timeout_seconds=5)],
        delivery_max_backoff_seconds=2.0,
    )
    yield Site(settings, orthanc, ehr, tmp_path)
    ehr.stop()
    orthanc.stop()
