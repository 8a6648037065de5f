"""Result objects → re-identification → files ready for the outbox.

Builders (``dicom_node.results``) work on the de-identified study; here their datasets are mapped
back onto the original study (``dicom_node.privacy.reidentify``), checked for leaked pseudonyms,
and written durably under ``results_dir/job-<id>/``. The ORU^R01 for the EHR is built from the same
findings and the original order context. Output UIDs are derived from (study, version, object) so
a re-run or re-send is idempotent.
"""

from __future__ import annotations

import os
import time

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from pydicom.dataset import Dataset

from ai_engine.findings import CTFindings, LungRadsAssessment, Nodule
from dicom_node import __version__
from dicom_node.config import Settings
from dicom_node.privacy.pseudonym import Pseudonymizer
from dicom_node.privacy.reidentify import leaked_pseudonyms, reidentify
from dicom_node.privacy.reidmap import ReidentificationMap
from dicom_node.privacy.study import fsync_dir, write_instance
from dicom_node.results import AlgorithmInfo, build_not_eligible_sr, build_results
from hl7.oru import LungRads, MessageHeader, NoduleResult, OrderContext, ResultFindings, build_oru

Clock = Callable[[], datetime]


class LeakedPseudonymError(RuntimeError):
    """A result still carries a pseudonym after re-identification: never deliver it."""


@dataclass(frozen=True)
class ResultFile:
    kind: str  # seg | sr | kos | pdf | oru
    path: Path
    sop_instance_uid: str | None


def uid_factory(settings: Settings, reid_map: ReidentificationMap, version: int) -> Callable[[str], str]:
    """Deterministic output UIDs per (study, version, object kind)."""
    pseudo = Pseudonymizer(settings.site_key)
    return lambda kind: pseudo.uid(f"result|{reid_map.study_uid}|v{version}|{kind}")


def algorithm_info(settings: Settings, findings: CTFindings) -> AlgorithmInfo:
    device_uid = Pseudonymizer(settings.site_key).uid(f"device|{settings.ae_title}")
    return AlgorithmInfo.from_models(findings.models, version=__version__, device_uid=device_uid)


def publish_findings(
    sources: Sequence[Dataset], findings: CTFindings, reid_map: ReidentificationMap, *,
    job_id: int, version: int, settings: Settings, clock: Clock = lambda: datetime.now(timezone.utc),
    timings: dict[str, float] | None = None,
) -> list[ResultFile]:
    """SEG, SR, KOS, PDF and ORU for an analysed study, re-identified and on disk. ``timings``
    (optional) receives the seconds spent building and re-identifying."""
    timings = {} if timings is None else timings
    uid_for = uid_factory(settings, reid_map, version)
    started = time.perf_counter()
    bundle = build_results(sources, findings, algorithm_info(settings, findings), uid_for, clock)
    timings["build"] = time.perf_counter() - started
    kinds = [k for k, ds in (("seg", bundle.seg), ("sr", bundle.sr), ("kos", bundle.kos), ("pdf", bundle.pdf)) if ds is not None]
    out_dir = settings.results_dir / f"job-{job_id}"
    started = time.perf_counter()
    files = _write_dicom(zip(kinds, bundle.datasets), reid_map, out_dir)
    timings["reidentify_write"] = time.perf_counter() - started
    _write_bytes(out_dir / "report.pdf", bundle.pdf_bytes)  # for the dashboard and the demo; no PHI
    oru = oru_text(findings, reid_map, settings, version=version, now=clock(),
                   control_id=uid_for("oru").rsplit(".", 1)[-1][:20])
    _write_bytes(out_dir / "oru.hl7", oru.encode("utf-8"))
    return files + [ResultFile("oru", out_dir / "oru.hl7", None)]


def publish_not_eligible(
    sources: Sequence[Dataset], reason: str, reid_map: ReidentificationMap, *,
    job_id: int, version: int, settings: Settings, clock: Clock = lambda: datetime.now(timezone.utc),
) -> list[ResultFile]:
    """A short SR in the PACS saying why the study was not analysed."""
    sr = build_not_eligible_sr(sources, reason, uid_factory(settings, reid_map, version), clock)
    return _write_dicom([("sr", sr)], reid_map, settings.results_dir / f"job-{job_id}")


def _write_dicom(items, reid_map: ReidentificationMap, out_dir: Path) -> list[ResultFile]:  # type: ignore[no-untyped-def]
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for kind, ds in items:
        original = reidentify(ds, reid_map)
        leaks = leaked_pseudonyms(original, reid_map)
        if leaks:
            raise LeakedPseudonymError(f"{kind}: {len(leaks)} pseudonymous values left after re-identification")
        files.append(ResultFile(kind, write_instance(original, out_dir), str(original.SOPInstanceUID)))
    fsync_dir(out_dir)
    return files


def _write_bytes(path: Path, data: bytes) -> None:
    """Durably: temp file, fsync, atomic rename, directory fsync."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)


def oru_text(findings: CTFindings, reid_map: ReidentificationMap, settings: Settings, *,
             version: int, now: datetime, control_id: str) -> str:
    """ORU^R01 for the EHR: the original patient and order, one OBX per finding. A later version
    of a re-opened study is sent as a correction (OBR-25 C)."""
    ehr = settings.ehr[0] if settings.ehr else None
    header = MessageHeader(
        sending_application=ehr.sending_application if ehr else "PULMONODE",
        sending_facility=ehr.sending_facility if ehr else "PULMONODE",
        receiving_application=ehr.receiving_application if ehr else "EHR",
        receiving_facility=ehr.receiving_facility if ehr else "HOSPITAL",
    )
    results = ResultFindings(
        nodules=tuple(_nodule_result(n) for n in findings.nodules),
        exam_lung_rads=_lung_rads(findings.exam_lung_rads),
        disclaimer=findings.disclaimer,
    )
    return build_oru(order_context(reid_map), results, control_id=control_id, now=now,
                     correction=version > 1, header=header)


def order_context(reid_map: ReidentificationMap) -> OrderContext:
    a = reid_map.attributes
    return OrderContext(
        patient_id=a.get("PatientID", ""),
        patient_name=a.get("PatientName", ""),
        accession=a.get("AccessionNumber", ""),
        study_uid=reid_map.original_study_uid,
        issuer=a.get("IssuerOfPatientID") or None,
        birth_date=_da(a.get("PatientBirthDate", "")),
        sex=a.get("PatientSex", ""),
        study_datetime=_dt(a.get("StudyDate", ""), a.get("StudyTime", "")),
    )


def _nodule_result(n: Nodule) -> NoduleResult:
    return NoduleResult(
        label=n.label, long_axis_mm=n.long_axis_mm, short_axis_mm=n.short_axis_mm,
        mean_diameter_mm=n.mean_diameter_mm, volume_mm3=n.volume_mm3, mean_hu=n.mean_hu,
        nodule_type=n.nodule_type.value, calcified=n.calcified,
        malignancy_probability=n.malignancy_probability, malignant=n.malignant,
        subtype=n.subtype.value if n.subtype else None,
        lung_rads=_lung_rads(n.lung_rads) if n.lung_rads else None, location=n.lobe,
    )


def _lung_rads(a: LungRadsAssessment) -> LungRads:
    return LungRads(category=a.category, management=a.management, s_modifier=a.s_modifier)


def _da(value: str) -> date | None:
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _dt(day: str, time_of_day: str) -> datetime | None:
    try:
        return datetime.strptime(day[:8] + (time_of_day.split(".")[0] + "000000")[:6], "%Y%m%d%H%M%S")
    except ValueError:
        return None
