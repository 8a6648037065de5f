"""End-to-end latency: last image sent → SEG/SR in Orthanc and ORU acknowledged.

Real peers on 127.0.0.1: dcmtk's storescu (the modality), the node (SCP, workers, sender), Orthanc
(the PACS) and an MLLP listener (the EHR). The stability wait is excluded: the clock starts when
the study is declared complete (JOB_COMPLETE) and stops when the job is DELIVERED (every result
stored in Orthanc and the ORU ACKed). Prints the per-stage breakdown and, as the reference
measured in the same run, the U-Net's own share (total / segmentation).

    python bench/e2e.py            # 512×512×300 CT at 0.7×0.7×1.0 mm (goal ≤ 15 s on 2 CPU cores)
    python bench/e2e.py --smoke    # a small CT, seconds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dicom_node.config import DicomDestination, HL7Destination, Settings  # noqa: E402
from dicom_node.db.models import AuditEvent, Job  # noqa: E402
from dicom_node.orthanc_ctl import OrthancServer  # noqa: E402
from dicom_node.service import start_node  # noqa: E402
from dicom_node.synth import write_synthetic_ct  # noqa: E402
from hl7.listener import MLLPListener  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.e2e.conftest import storescu  # noqa: E402

FULL = ((300, 512, 512), (0.7, 0.7, 1.0))
SMOKE = ((40, 128, 128), (1.25, 1.25, 2.5))
GOAL_S = 15.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    shape, spacing = SMOKE if args.smoke else FULL
    with tempfile.TemporaryDirectory(prefix="pulmonode-e2e-") as tmp:
        return run(Path(tmp), shape, spacing)


def run(tmp: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> int:
    orthanc = OrthancServer(tmp / "orthanc", free_port(), free_port(), route=False)
    ehr = MLLPListener(port=0)
    settings = Settings(
        demo_mode=True, data_dir=tmp / "node", dicom_host="127.0.0.1", dicom_port=free_port(),
        http_port=free_port(), stable_seconds=1.0, min_free_disk_mb=64,
        pacs=[DicomDestination(name="orthanc", host="127.0.0.1", port=orthanc.dicom_port)],
        ehr=[HL7Destination(name="ehr", host="127.0.0.1", port=0)],
    )
    orthanc.start()
    ehr.start()
    settings = settings.model_copy(update={"ehr": [HL7Destination(name="ehr", host="127.0.0.1", port=ehr.port)]})
    study = write_synthetic_ct(tmp / "ct", seed=11, shape_zyx=shape, spacing_mm=spacing, n_nodules=4)
    node = start_node(settings)
    try:
        node_models_warm(node)
        sent = time.perf_counter()
        storescu(study.files, settings.dicom_port)
        print(f"sent {len(study.files)} slices {shape[2]}×{shape[1]}×{shape[0]} in {time.perf_counter() - sent:.2f} s")
        job = wait_delivered(node.session_factory)
        with node.session_factory() as s:
            events = {e.event: e for e in s.scalars(select(AuditEvent).where(AuditEvent.job_id == job.id))}
    finally:
        node.stop()
        ehr.stop()
        orthanc.stop()
    return report(job, events)


def node_models_warm(node) -> None:  # type: ignore[no-untyped-def]
    """Load the models before the clock starts, as a running node has them loaded."""
    from ai_engine.pipelines.models import CTModels

    CTModels.load()


def wait_delivered(sessions, timeout_s: float = 900) -> Job:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sessions() as s:
            job = s.scalars(select(Job).order_by(Job.id.desc())).first()
        if job is not None and job.state in {"delivered", "failed"}:
            if job.state == "failed":
                raise SystemExit(f"job failed: {job.reason}")
            return job
        time.sleep(0.2)
    raise SystemExit("not delivered in time")


def report(job: Job, events: dict[str, AuditEvent]) -> int:
    def at(name: str) -> float:
        return events[name].at.timestamp()

    total = at("JOB_DELIVERED") - at("JOB_COMPLETE")
    stages = job.summary.get("stage_seconds", {})
    inference = job.summary.get("inference_seconds", {})
    rows = [("de-identify", float(events["JOB_DEIDENTIFIED"].detail.get("seconds", 0.0))),
            ("queue wait", at("JOB_RUNNING") - at("JOB_QUEUED")),
            ("load", stages.get("load", 0.0)), ("inference", stages.get("inference", 0.0)),
            ("build SEG/SR/KOS/PDF", stages.get("build", 0.0)),
            ("re-identify + write", stages.get("reidentify_write", 0.0)),
            ("deliver (PACS + EHR ACK)", at("JOB_DELIVERED") - at("JOB_RESULTS_BUILT"))]
    print(f"{'stage':<28}{'seconds':>9}")
    for name, seconds in rows:
        print(f"{name:<28}{seconds:>9.2f}")
    for name, seconds in inference.items():
        print(f"  inference: {name:<15}{seconds:>9.2f}")
    segmentation = inference.get("segmentation", float("nan"))
    print(f"{'total (complete → delivered)':<28}{total:>9.2f}")
    print(f"ratio total / U-Net segmentation (same run): {total / segmentation:.2f}")
    print(f"ratio total / {GOAL_S:.0f} s goal: {total / GOAL_S:.2f}")
    print(f"nodules found: {job.summary.get('nodules')} (synthetic-trained models, research use only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
