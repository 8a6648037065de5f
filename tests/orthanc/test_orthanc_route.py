"""Orthanc beside the node: the configuration written from the template, start/stop/restart, the
REST helpers, DICOMweb URLs, and route.lua forwarding stable image series (never our results)
to a real storage SCP playing the node."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_node import orthanc_ctl
from dicom_node.orthanc_ctl import OrthancServer
from tests.conftest import free_port
from tests.deliver.peers import StorageSCP
from tests.helpers import write_study

STABLE_AGE_S = 1
LUA_GRACE_S = 1.0  # OnStableStudy runs just after Orthanc marks the study stable


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[StorageSCP, int]]:
    scp, port = StorageSCP(ae_title="PULMONODE"), free_port()
    with scp.serving(port):
        yield scp, port


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, node: tuple[StorageSCP, int]) -> Iterator[OrthancServer]:
    server = OrthancServer(
        tmp_path_factory.mktemp("orthanc"), free_port(), free_port(),
        node_ae="PULMONODE", node_host="127.0.0.1", node_port=node[1], stable_age=STABLE_AGE_S,
    )
    with server:
        yield server


def storescu(server: OrthancServer, files: list[Path]) -> None:
    """Send files to Orthanc with dcmtk, as a modality would."""
    result = subprocess.run(
        ["storescu", "-aet", "MODALITY", "-aec", server.aet, "127.0.0.1", str(server.dicom_port), *map(str, files)],
        capture_output=True, text=True, env={**os.environ, "TCP_NODELAY": "1"}, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def ct_study(tmp_path: Path, n: int = 4, seed: int | None = None) -> list[Path]:
    """A fresh CT study (random seed: unique UIDs); the same seed with more slices adds slices."""
    seed = seed if seed is not None else random.randrange(10**5, 10**6)
    return write_study(tmp_path / f"ct{seed}-{n}", seed=seed, shape=(n, 16, 16))


def result_object(source: Path, out: Path, *, modality: str, manufacturer: str = "pulmonode", series_number: int = 901) -> Path:
    """A node result in the source's study: a Basic Text SR, or a CT copy in a new series."""
    ds = pydicom.dcmread(source)
    if modality == "SR":
        ds = _sr_like(ds)
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Manufacturer, ds.SeriesNumber = manufacturer, series_number
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def _sr_like(ct: Dataset) -> Dataset:
    sr = Dataset()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber"):
        setattr(sr, keyword, getattr(ct, keyword, ""))
    sr.Modality, sr.ValueType, sr.InstanceNumber = "SR", "CONTAINER", 1
    return sr


def wait_stable(server: OrthancServer, source: Path, timeout_s: float = 20.0) -> None:
    """Until Orthanc has marked the source's study stable (and its Lua callback has had time)."""
    study = server.find_study(str(pydicom.dcmread(source, stop_before_pixels=True).StudyInstanceUID))
    time.sleep(STABLE_AGE_S)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not server.study(study)["IsStable"]:
        time.sleep(0.2)
    assert server.study(study)["IsStable"]
    time.sleep(LUA_GRACE_S)


def uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}


def test_config_is_the_template_with_this_instances_values(tmp_path: Path) -> None:
    assert orthanc_ctl.is_installed(), orthanc_ctl.INSTALL_COMMAND
    server = OrthancServer(tmp_path, 18042, 14242, "NODEAE", "10.0.0.5", 11112, 2, route=False)
    cfg = server.config()
    assert (cfg["HttpPort"], cfg["DicomPort"], cfg["DicomAet"], cfg["StableAge"]) == (18042, 14242, "ORTHANC", 2)
    assert cfg["DicomModalities"] == {"pulmonode": ["NODEAE", "10.0.0.5", 11112]}
    assert cfg["DicomWeb"]["Enable"] is True and cfg["DicomWeb"]["Root"] == "/dicom-web/"
    assert cfg["DicomWeb"]["Host"] == "127.0.0.1:18042"
    assert all(Path(p).is_file() for p in cfg["Plugins"]) and cfg["Plugins"][0].endswith("libOrthancDicomWeb.so")
    assert cfg["StorageDirectory"].startswith(str(tmp_path)) and cfg["IndexDirectory"].startswith(str(tmp_path))
    assert cfg["LuaScripts"] == [] and cfg["AuthenticationEnabled"] is False
    routed = OrthancServer(tmp_path, 1, 2, credentials=("pacs", "secret")).config()
    assert Path(routed["LuaScripts"][0]).read_text().count("OnStableStudy") == 1
    assert routed["AuthenticationEnabled"] is True and routed["RegisteredUsers"] == {"pacs": "secret"}


def test_stable_ct_is_forwarded_once_and_our_results_never(orthanc: OrthancServer, node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scp, _ = node
    seed = random.randrange(10**5, 10**6)
    ct = ct_study(tmp_path, seed=seed)
    storescu(orthanc, ct)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not uids(ct) <= set(scp.counts()):
        time.sleep(0.2)
    assert uids(ct) <= set(scp.counts()), "the stable CT study was not forwarded"

    sr = result_object(ct[0], tmp_path / "results" / "sr.dcm", modality="SR")
    storescu(orthanc, [sr])  # re-stabilises the study: nothing may be sent again
    wait_stable(orthanc, sr)
    counts = scp.counts()
    assert all(counts[uid] == 1 for uid in uids(ct))
    assert not uids([sr]) & set(counts)

    late = ct_study(tmp_path, n=len(ct) + 1, seed=seed)[-1]
    assert not uids([late]) & uids(ct)
    storescu(orthanc, [late])  # a late slice of the same series: the series goes again
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not uids([late]) <= set(scp.counts()):
        time.sleep(0.2)
    assert uids([late]) <= set(scp.counts())
    assert not uids([sr]) & set(scp.counts())


def test_study_of_only_our_results_is_not_forwarded(orthanc: OrthancServer, node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scp, _ = node
    source = ct_study(tmp_path, n=1)[0]
    ours = [
        result_object(source, tmp_path / "r" / "sr.dcm", modality="SR", series_number=5),  # SR modality
        result_object(source, tmp_path / "r" / "ct-ours.dcm", modality="CT", series_number=3),  # Manufacturer
        result_object(source, tmp_path / "r" / "ct-9xx.dcm", modality="CT", manufacturer="ACME", series_number=902),
    ]
    storescu(orthanc, ours)
    study = orthanc.find_study(str(pydicom.dcmread(source).StudyInstanceUID))
    assert study is not None and len(orthanc.instances_of_study(study)) == 3
    wait_stable(orthanc, source)
    assert not uids(ours) & set(scp.counts())


def test_rest_helpers_dicomweb_urls_and_restart(orthanc: OrthancServer, tmp_path: Path) -> None:
    files = ct_study(tmp_path, n=2)
    storescu(orthanc, files)
    study_uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    study = orthanc.find_study(study_uid)
    assert study in orthanc.studies()
    instance = orthanc.find_instance(str(pydicom.dcmread(files[1]).SOPInstanceUID))
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.get_instance_file(instance)))
    assert stored.PixelData == pydicom.dcmread(files[1]).PixelData
    qido = httpx.get(f"{orthanc.dicomweb_url}/studies", params={"StudyInstanceUID": study_uid}).json()
    assert f"127.0.0.1:{orthanc.http_port}/dicom-web/studies/{study_uid}" in qido[0]["00081190"]["Value"][0]

    orthanc.stop()  # waits for the old process to exit, so it cannot hold the ports or the index
    assert not orthanc.running
    orthanc.start()  # same ports, same directories
    assert orthanc.find_study(study_uid) == study  # the index and storage survived the restart
