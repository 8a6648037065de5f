"""The worker's main functions: one call per step of the flow (ARCHITECTURE.md's table).

``assemble()`` runs in the assembler loop: stable studies → complete → series selection →
de-identification → queue (or not eligible / quarantined). ``analyse(job)`` runs in a worker on a
claimed job: load the de-identified series → ai_engine → result objects → re-identification →
files; it returns the ``finish`` step that records results and outbox rows under the job's lease.
The delivery sender does the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.assemble.series import InstanceTags, NotEligible, Selection, select_series
from dicom_node.assemble.stability import complete_stable_studies
from dicom_node.config import Settings
from dicom_node.db.models import Instance, Job, ReidentificationMap, ResultObject
from dicom_node.deliver.outbox import enqueue
from dicom_node.jobs.lifecycle import transition
from dicom_node.jobs.queue import ClaimedJob
from dicom_node.jobs.states import JobState
from dicom_node.load import load_ct
from dicom_node.privacy import vault
from dicom_node.privacy.deidentify import DeidContext
from dicom_node.privacy.errors import BurnedInRiskError
from dicom_node.privacy.reidmap import ReidentificationMap as ReidMap
from dicom_node.privacy.study import deidentify_study, read_dicom
from dicom_node.publish import ResultFile, publish_findings, publish_not_eligible

log = logging.getLogger(__name__)
Finish = Callable[[Session, Job], None]
ANALYSABLE = {"ct"}  # chest X-ray and pathology models are not shipped yet


class Pipeline:
    """Holds what the steps share: settings, the session factory, the loaded models."""

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = session_factory
        self._models: Any = None

    # -- assembler loop: assemble → de-identify → queue ---------------------------------------

    def assemble(self) -> None:
        complete_stable_studies(self.sessions, self.settings)
        with self.sessions() as session:
            ids = session.scalars(select(Job.id).where(Job.state == JobState.COMPLETE.value).order_by(Job.id)).all()
        for job_id in ids:
            self.prepare(job_id)

    def prepare(self, job_id: int) -> None:
        """COMPLETE → DEIDENTIFIED → QUEUED, or NOT_ELIGIBLE / QUARANTINED with the reason."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.state != JobState.COMPLETE.value:
                return  # superseded or taken meanwhile
            instances = _instances(session, job)
            choice = select_series([InstanceTags.from_row(i) for i in instances],
                                   min_ct_slices=self.settings.min_ct_slices)
            if isinstance(choice, Selection) and choice.kind.value not in ANALYSABLE:
                choice = NotEligible(f"{choice.kind.value} study: no {choice.kind.value} model is installed on this node")
            if isinstance(choice, NotEligible):
                self._not_eligible(session, job, instances, choice.reason)
                return
            self._deidentify(session, job, [i for i in instances if i.id in set(choice.instance_ids)], choice)

    def _deidentify(self, session: Session, job: Job, chosen: list[Instance], choice: Selection) -> None:
        ctx = DeidContext.from_settings(self.settings)
        started = time.perf_counter()
        try:
            deidentify_study(self._paths(chosen), self._deid_dir(job.id), ctx)
        except BurnedInRiskError as exc:
            job.reason = "burned-in annotation risk: never analysed"
            transition(session, job, JobState.QUARANTINED, reason=job.reason)
            session.commit()
            log.warning("job %d quarantined: %s", job.id, type(exc).__name__)
            return
        session.add(ReidentificationMap(study_id=job.study_id, study_version=job.study_version,
                                        ciphertext=vault.seal(ctx.reid_map(), self.settings.site_key)))
        job.kind, job.series_key = choice.kind.value, choice.series_key
        transition(session, job, JobState.DEIDENTIFIED, instances=len(chosen),
                   seconds=round(time.perf_counter() - started, 3))
        transition(session, job, JobState.QUEUED)
        session.commit()

    def _not_eligible(self, session: Session, job: Job, instances: list[Instance], reason: str) -> None:
        """The PACS gets a short SR saying why; built on a de-identified reference instance."""
        job.reason = reason
        files: list[ResultFile] = []
        ctx = DeidContext.from_settings(self.settings)
        if instances:
            ref = deidentify_study(self._paths(instances[:1]), self._deid_dir(job.id), ctx)
            files = publish_not_eligible([read_dicom(p) for p in ref], reason, ctx.reid_map(),
                                         job_id=job.id, version=job.study_version, settings=self.settings)
        transition(session, job, JobState.NOT_ELIGIBLE, reason=reason)
        _record_results(session, job, files, self.settings)
        session.commit()

    # -- worker: AI → result objects → re-identification → outbox -----------------------------

    def analyse(self, claimed: ClaimedJob) -> Finish:
        """Runs the CT pipeline on the de-identified copy; returns the lease-checked finish step."""
        from ai_engine.pipelines.ct_nodules import analyze_ct

        started = time.perf_counter()
        reid_map = self._reid_map(claimed)
        sources, volume = load_ct(sorted(self._deid_dir(claimed.job_id).glob("*.dcm")))
        stages = {"load": time.perf_counter() - started}
        findings = analyze_ct(volume, self.models(), self.pipeline_config())
        stages["inference"] = sum(findings.timings_s.values())
        files = publish_findings(sources, findings, reid_map, job_id=claimed.job_id,
                                 version=claimed.study_version, settings=self.settings, timings=stages)
        summary = {
            "nodules": len(findings.nodules),
            "lung_rads": findings.exam_lung_rads.category,
            "max_malignancy": round(max((n.malignancy_probability for n in findings.nodules), default=0.0), 3),
            "seconds": round(time.perf_counter() - started, 2),
            "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
            "inference_seconds": {k: round(v, 3) for k, v in findings.timings_s.items()},
            "has_pdf": any(f.kind == "pdf" for f in files),
            "synthetic_models": findings.synthetic_trained,
            "nodule_table": [_nodule_row(n) for n in findings.nodules],
        }

        def finish(session: Session, job: Job) -> None:
            job.summary = summary
            _record_results(session, job, files, self.settings)

        return finish

    def pipeline_config(self) -> Any:
        """How the CT pipeline runs here: the device and the U-Net's mirrored passes, from settings."""
        from ai_engine.pipelines.ct_nodules import PipelineConfig

        return PipelineConfig(device=self.settings.device, tta=self.settings.unet_mirrored_passes)

    def models(self) -> Any:
        if self._models is None:
            from ai_engine.pipelines.models import CTModels

            if self.settings.weights_dir is None:
                self._models = CTModels.load(profile=self.settings.model_profile)
            else:
                self._models = CTModels.load(self.settings.weights_dir, self.settings.model_profile)
        return self._models

    def _reid_map(self, claimed: ClaimedJob) -> ReidMap:
        with self.sessions() as session:
            row = session.scalars(select(ReidentificationMap).where(
                ReidentificationMap.study_id == claimed.study_id,
                ReidentificationMap.study_version == claimed.study_version,
            ).order_by(ReidentificationMap.id.desc())).first()
        if row is None:
            from dicom_node.jobs.errors import PermanentJobError

            raise PermanentJobError(f"job {claimed.job_id}: no re-identification map stored")
        return vault.unseal(row.ciphertext, self.settings.site_key)

    def _paths(self, instances: list[Instance]) -> list[Path]:
        return [self.settings.data_dir / i.spool_path for i in instances]

    def _deid_dir(self, job_id: int) -> Path:
        return self.settings.deid_dir / f"job-{job_id}"


def _instances(session: Session, job: Job) -> list[Instance]:
    return list(session.scalars(select(Instance).where(Instance.study_id == job.study_id).order_by(Instance.id)))


def _record_results(session: Session, job: Job, files: list[ResultFile], settings: Settings) -> None:
    rows = [ResultObject(job_id=job.id, kind=f.kind, sop_instance_uid=f.sop_instance_uid,
                         path=str(f.path.relative_to(settings.data_dir))) for f in files]
    enqueue(session, job, rows, settings)


def _nodule_row(n: Any) -> dict[str, Any]:
    """Per-nodule values for the dashboard and the demo (no identifiers)."""
    return {
        "label": n.label, "location": n.lobe, "mean_diameter_mm": n.mean_diameter_mm,
        "volume_mm3": round(n.volume_mm3, 1), "type": n.nodule_type.value,
        "malignancy": round(n.malignancy_probability, 3),
        "subtype": n.subtype.value if n.subtype else None,
        "lung_rads": n.lung_rads.category if n.lung_rads else "",
    }
