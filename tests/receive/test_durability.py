"""The SCP as its own process (``python -m dicom_node.receive``): kill -9 mid-association,
restart, and check that every acknowledged instance survived and nothing else counts."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
from pathlib import Path

from pynetdicom import AE
from sqlalchemy import select

from dicom_node.config import DEMO_SITE_KEY
from dicom_node.db.models import Instance, Study
from dicom_node.db.session import make_engine, make_sessionmaker
from dicom_node.privacy.pseudonym import Pseudonymizer
from tests.conftest import free_port
from tests.helpers import write_study
from tests.receive.scp_process import scp_process
from tests.receive.scu import storescu

SLICES = 40


def hour_dirs(data_dir: Path) -> list[Path]:
    spool = data_dir / "spool"
    return sorted(p for p in spool.iterdir() if p.is_dir() and p.name not in ("tmp", "unindexed"))


def spooled(data_dir: Path) -> list[str]:
    return [p.relative_to(data_dir).as_posix() for d in hour_dirs(data_dir) for p in d.glob("*.dcm")]


def send_until_killed(port: int, files: list[Path], kill_after: int, proc: subprocess.Popen) -> dict[str, int]:
    """Send one by one with pynetdicom, recording each status; after ``kill_after`` acks the SCP
    is killed -9 a moment later, while the next C-STORE is on the wire."""
    from pydicom import dcmread
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    ae = AE(ae_title="CRASHSCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="PULMONODE")
    assert assoc.is_established
    acked: dict[str, int] = {}
    for path in files:
        ds = dcmread(path)
        if len(acked) == kill_after:
            threading.Timer(0.002, os.killpg, (proc.pid, signal.SIGKILL)).start()
        if not assoc.is_established:
            break
        rsp = assoc.send_c_store(ds)
        if "Status" in rsp:
            acked[ds.SOPInstanceUID] = int(rsp.Status)
    assoc.abort()
    return acked


def test_kill_9_mid_association_loses_no_acknowledged_instance(db_url, tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    files = write_study(tmp_path / "study", seed=31, shape=(SLICES, 64, 64))
    with scp_process(data_dir, port, db_url) as proc:
        acked = send_until_killed(port, files, kill_after=12, proc=proc)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    successes = {uid for uid, status in acked.items() if status == 0}
    assert 12 <= len(successes) < SLICES  # killed mid-study

    stray = data_dir / "spool" / "tmp" / "0123456789abcdef.part"  # as a crash mid-write leaves
    stray.write_bytes(b"half a dataset")
    uncommitted = hour_dirs(data_dir)[-1] / "fedcba9876543210.dcm"  # as a crash between rename and commit leaves
    uncommitted.write_bytes(b"placed, never committed")
    with scp_process(data_dir, port, db_url):  # the restart recovers the spool first
        assert not list((data_dir / "spool" / "tmp").glob("*.part"))
        assert (data_dir / "spool" / "unindexed" / uncommitted.name).exists() and not uncommitted.exists()
        engine = make_engine(db_url)
        with make_sessionmaker(engine)() as session:
            rows = list(session.scalars(select(Instance)))
        pseudo = Pseudonymizer(DEMO_SITE_KEY)
        indexed = {row.sop_key for row in rows}
        acked_keys = {pseudo.uid(uid) for uid in successes}
        assert acked_keys <= indexed  # every 0x0000 survived
        assert len(indexed - acked_keys) <= 1  # at most the one in flight, committed as the kill hit
        for row in rows:
            assert hashlib.sha256((data_dir / row.spool_path).read_bytes()).hexdigest() == row.sha256
        assert sorted(spooled(data_dir)) == sorted(r.spool_path for r in rows)

        result = storescu(port, files)  # the modality re-sends the whole study
        assert result.returncode == 0, result.stderr
        with make_sessionmaker(engine)() as session:
            sop_keys = list(session.scalars(select(Instance.sop_key)))
            assert len(session.scalars(select(Study)).all()) == 1
        engine.dispose()
    assert sorted(sop_keys) == sorted(set(sop_keys)) and len(sop_keys) == SLICES
    assert len(spooled(data_dir)) == SLICES  # in place; an orphan would be in unindexed/


def test_several_processes_share_the_port(db_url, tmp_path):
    """scp_processes=3: four parallel storescu associations, one study, every instance once."""
    data_dir, port = tmp_path / "data", free_port()
    files = write_study(tmp_path / "study", seed=32, shape=(24, 64, 64))
    with scp_process(data_dir, port, db_url, PULMONODE_SCP_PROCESSES="3") as proc:
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 3
        senders = [
            subprocess.Popen(["storescu", "-aec", "PULMONODE", "127.0.0.1", str(port), *map(str, files[i::4])],
                             env={**os.environ, "TCP_NODELAY": "1"})
            for i in range(4)
        ]
        assert [s.wait(60) for s in senders] == [0, 0, 0, 0]
        engine = make_engine(db_url)
        with make_sessionmaker(engine)() as session:
            assert len(session.scalars(select(Instance)).all()) == 24
            assert len(session.scalars(select(Study)).all()) == 1
        engine.dispose()
    assert proc.returncode == 0  # SIGTERM stopped the children and the parent cleanly
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
