"""`pulmonode demo`: the whole loop on one machine, on embedded defaults.

Orthanc (the PACS) ← a synthetic patient's chest CT by C-STORE; Orthanc's routing script forwards
the stable study to the node; the node de-identifies, analyses, builds SEG/SR/KOS/PDF, re-identifies
them and stores them back into the original study in Orthanc, and sends an ORU^R01 to an MLLP
listener standing in for the EHR. Prints progress and a summary.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE
from sqlalchemy import select

from dicom_node.config import DicomDestination, HL7Destination, Settings
from dicom_node.db.models import Job
from dicom_node.jobs.states import JobState
from dicom_node.orthanc_ctl import INSTALL_COMMAND, OrthancServer, is_installed
from dicom_node.service import start_node
from dicom_node.synth import SyntheticStudy, write_synthetic_ct
from hl7.listener import MLLPListener, ReceivedMessage

SIZES = {  # (z, y, x), spacing (x, y, z) mm
    "small": ((120, 256, 256), (1.4, 1.4, 2.5)),
    "full": ((300, 512, 512), (0.7, 0.7, 1.0)),
}
RESULT_MODALITIES = {"SEG", "SR", "KO", "DOC"}
DEMO_SEED = 7
TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Ports:
    dicom: int
    http: int
    orthanc_http: int
    orthanc_dicom: int
    mllp: int


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    if not is_installed():
        print(f"Orthanc is needed for the demo. Install it with:\n  {INSTALL_COMMAND}")
        return 1
    data_dir = args.data_dir or Path("pulmonode-demo")
    ports = Ports(*(_port(p) for p in (11112, 8080, 8042, 4242, 2575)))
    settings = _demo_settings(settings, data_dir, ports)
    step("setup", f"data in {data_dir.resolve()}; synthetic-trained models (research use only)")
    orthanc = OrthancServer(data_dir / "orthanc", ports.orthanc_http, ports.orthanc_dicom,
                            node_ae=settings.ae_title, node_port=ports.dicom, stable_age=2)
    listener = MLLPListener(port=ports.mllp, on_message=_print_oru)
    orthanc.start()
    listener.start()
    node = start_node(settings)
    try:
        step("pacs", f"Orthanc up: {orthanc.url}  (DICOM {ports.orthanc_dicom}, DICOMweb {orthanc.dicomweb_url})")
        step("node", f"pulmonode up: DICOM {settings.ae_title}@127.0.0.1:{ports.dicom}, dashboard http://127.0.0.1:{ports.http}/")
        shape, spacing = SIZES[args.size]
        study = write_synthetic_ct(data_dir / "modality" / f"seed-{DEMO_SEED}", seed=DEMO_SEED,
                                   shape_zyx=shape, spacing_mm=spacing, n_nodules=4)
        step("modality", study.summary().replace("\n", "\n           "))
        _send(study, "ORTHANC", ports.orthanc_dicom)
        job = _follow(node.session_factory)
        return _report(job, study, orthanc, listener, settings)
    finally:
        if getattr(args, "keep_running", False):
            step("running", "Ctrl-C stops Orthanc, the node and the listener")
            _wait_forever()
        node.stop()
        listener.stop()
        orthanc.stop()


def step(tag: str, text: str) -> None:
    print(f"[{tag:>8}] {text}", flush=True)


def _demo_settings(settings: Settings, data_dir: Path, ports: Ports) -> Settings:
    return settings.model_copy(update=dict(
        demo_mode=True, data_dir=data_dir, dicom_host="127.0.0.1", dicom_port=ports.dicom,
        http_port=ports.http, stable_seconds=2.0, min_free_disk_mb=64,
        pacs=[DicomDestination(name="orthanc", kind="dimse", ae_title="ORTHANC", host="127.0.0.1", port=ports.orthanc_dicom)],
        ehr=[HL7Destination(name="ehr", host="127.0.0.1", port=ports.mllp)],
    ))


def _send(study: SyntheticStudy, ae_title: str, port: int) -> None:
    """The modality: C-STORE every slice to the PACS on one association."""
    ae = AE(ae_title="PHANTOMCT")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    if not assoc.is_established:
        raise RuntimeError(f"association to {ae_title}@127.0.0.1:{port} failed")
    started, failed = time.monotonic(), 0
    try:
        for path in study.files:
            status = assoc.send_c_store(dcmread(path))
            failed += int(getattr(status, "Status", 0xFFFF) != 0x0000)
    finally:
        assoc.release()
    step("c-store", f"{len(study.files) - failed}/{len(study.files)} slices stored in Orthanc "
                    f"in {time.monotonic() - started:.1f} s; Orthanc forwards the stable study to the node")


def _follow(session_factory) -> Job:  # type: ignore[no-untyped-def]
    """Print each job state change until the study is delivered (or fails)."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + TIMEOUT_S
    final = {JobState.DELIVERED.value, JobState.FAILED.value, JobState.NOT_ELIGIBLE.value, JobState.QUARANTINED.value}
    while time.monotonic() < deadline:
        with session_factory() as session:
            jobs = session.scalars(select(Job).order_by(Job.id)).all()
        for job in jobs:
            if seen.get(job.id) != job.state:
                seen[job.id] = job.state
                step("job", f"job {job.id} (study version {job.study_version}): {job.state}"
                     + (f" — {job.reason}" if job.reason else ""))
        done = [j for j in jobs if j.state in final]
        if done and not [j for j in jobs if j.state not in final | {JobState.SUPERSEDED.value}]:
            return done[-1]
        time.sleep(0.5)
    raise RuntimeError(f"the study was not delivered within {TIMEOUT_S:.0f} s")


def _report(job: Job, study: SyntheticStudy, orthanc: OrthancServer, listener: MLLPListener,
            settings: Settings) -> int:
    orthanc_id = orthanc.find_study(study.uids.study)
    modalities = sorted(orthanc.modalities_of_study(orthanc_id)) if orthanc_id else []
    _wait_for_oru(listener)
    print()
    print("pulmonode demo — RESEARCH USE ONLY: models trained on synthetic phantoms, not patient data")
    print(f"  job {job.id}: {job.state}; {job.summary.get('nodules', 0)} nodules; exam Lung-RADS "
          f"{job.summary.get('lung_rads', '-')}; analysis {job.summary.get('seconds', '-')} s")
    _print_nodule_table(job.summary.get("nodule_table", []), study)
    print(f"  in Orthanc, original study (patient {study.patient.patient_id}): {', '.join(m for m in modalities if m)}")
    if orthanc_id:
        print(f"  Orthanc Explorer: {orthanc.url}/app/explorer.html#study?uuid={orthanc_id}")
    pdf = settings.results_dir / f"job-{job.id}" / "report.pdf"
    if pdf.exists():
        print(f"  PDF report: {pdf.resolve()}")
    print(f"  EHR (MLLP listener) received {len(listener.messages)} ORU^R01 message(s)")
    print(f"  queue at a glance: PULMONODE_DEMO_MODE=true pulmonode --data-dir {settings.data_dir} status")
    ok = job.state == JobState.DELIVERED.value and RESULT_MODALITIES & set(modalities) and listener.messages
    return 0 if ok else 1


def _print_nodule_table(rows: list[dict], study: SyntheticStudy) -> None:  # type: ignore[type-arg]
    print(f"  {'#':>2}  {'location':<24} {'size mm':>8} {'type':<13} {'malignancy':>10} {'subtype':<24} {'Lung-RADS':<9}")
    for r in rows:
        print(f"  {r['label']:>2}  {r['location']:<24} {r['mean_diameter_mm']:>8.1f} {r['type']:<13} "
              f"{r['malignancy']:>10.2f} {r.get('subtype') or '-':<24} {r['lung_rads']:<9}")
    truth = json.loads((study.out_dir / "truth.json").read_text())["nodules"]
    print("  synthetic ground truth: " + "; ".join(
        f"{t['diameter_mm']:.1f} mm {t['type']} {'malignant' if t['malignant'] else 'benign'} ({t['side']} {t['zone']})"
        for t in truth))


def _print_oru(message: ReceivedMessage) -> None:
    step("ehr", f"MLLP listener received {message.summary()}")


def _wait_for_oru(listener: MLLPListener, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not listener.messages and time.monotonic() < deadline:
        time.sleep(0.2)


def _port(preferred: int) -> int:
    """The conventional port when free, else any free port (a second demo, a busy machine)."""
    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free TCP port")


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
