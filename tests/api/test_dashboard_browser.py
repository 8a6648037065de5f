"""The operator dashboard in a real browser (headless Chromium): the page's script fetches the
API and renders jobs and deliveries; a dead delivery shows its Replay button."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest
import uvicorn

from dicom_node.api.app import create_app
from dicom_node.db.models import Delivery, Job, ResultObject, Study
from dicom_node.db.session import make_engine, make_sessionmaker
from tests.conftest import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def served_dashboard(tmp_path, settings_factory):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    from dicom_node.db.migrate import upgrade

    upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with factory() as s:
        study = Study(study_key="2.25.987654321", patient_key="PNXYZ")
        job = Job(study=study, state="results_built", kind="ct",
                  summary={"nodules": 3, "lung_rads": "4A", "has_pdf": True})
        s.add_all([study, job])
        s.flush()
        result = ResultObject(job_id=job.id, kind="sr", path="results/sr.dcm")
        s.add(result)
        s.flush()
        s.add(Delivery(job_id=job.id, result_id=result.id, destination="orthanc", channel="dimse",
                       state="dead", attempts=4, last_error="0xA900: refused by the PACS"))
        s.commit()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings_factory(database_url=url), factory),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def test_dashboard_renders_jobs_and_dead_deliveries(served_dashboard: str, tmp_path) -> None:
    assert CHROMIUM, "Debian's chromium is installed by `make system-deps`"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", served_dashboard],
        capture_output=True, text=True, timeout=120,
    )
    dom = result.stdout
    assert 'data-job-id="1"' in dom, dom[-2000:]
    assert "4A" in dom and "results_built" in dom
    assert 'data-delivery-id="1"' in dom and "0xA900: refused by the PACS" in dom
    assert ">Replay</button>" in dom
    assert "synthetic phantoms" in dom
