"""Ingest throughput: one CT series sent by dcmtk storescu to pulmonode's SCP, dcmtk storescp
and Orthanc, on 1 and 4 parallel associations (4 storescu processes, a quarter each).

Prints images/s per receiver and the ratio pulmonode / storescp measured in this same run.
storescp writes files without fsync; pulmonode fsyncs each file and its directory and commits
an index row before every acknowledgement, so the ratio is the price of that durability.

    python bench/ingest.py                  # 300 slices of 512×512, 3 repeats (median)
    python bench/ingest.py --smoke          # 20 slices of 64×64, 1 association, one repeat
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai_engine.findings import CTVolume
from dicom_node.db.migrate import upgrade
from dicom_node.modality import FictitiousPatient, SeriesUIDs, ct_slices, write_ct_series

NODELAY = {**os.environ, "TCP_NODELAY": "1"}  # dcmtk and Debian's Orthanc: Nagle off
ORTHANC = "/usr/sbin/Orthanc"


@dataclass(frozen=True)
class Plan:
    slices: int
    size: int
    associations: tuple[int, ...]
    repeats: int
    scp_processes: int
    orthanc: bool
    db_url: str | None = None  # default: SQLite beside the spool, fresh per run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited early ({proc.args[0]}, code {proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def write_series(out_dir: Path, slices: int, size: int) -> list[Path]:
    """A body ellipse with two lungs and noise, written slice by slice by the fictitious CT."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    body = ((y - size / 2) / (size * 0.45)) ** 2 + ((x - size / 2) / (size * 0.48)) ** 2 <= 1
    lungs = sum(((y - size / 2) / (size * 0.3)) ** 2 + ((x - c) / (size * 0.16)) ** 2 <= 1
                for c in (size * 0.3, size * 0.7)).astype(bool)
    base = np.where(body, 40.0, -1000.0)
    base[lungs] = -850.0
    rng = np.random.default_rng(0)
    hu = np.stack([base + rng.normal(0, 10, base.shape) for _ in range(slices)]).astype(np.float32)
    volume = CTVolume(hu=hu, spacing_mm=(0.7, 0.7, 1.0), origin_mm=(-180.0, -180.0, -150.0))
    return write_ct_series(ct_slices(volume, FictitiousPatient.from_seed(1), SeriesUIDs.from_seed(1)), out_dir)


def send(port: int, aet: str, files: list[Path], associations: int) -> float:
    """Seconds for ``associations`` storescu processes to send their share of ``files``."""
    shares = [files[i * len(files) // associations:(i + 1) * len(files) // associations] for i in range(associations)]
    start = time.perf_counter()
    senders = [subprocess.Popen(["storescu", "-aec", aet, "127.0.0.1", str(port), *map(str, share)],
                                env=NODELAY, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for share in shares]
    failures = [s.stderr.read().decode(errors="replace") for s in senders if s.wait(600) != 0]  # type: ignore[union-attr]
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"storescu to {aet} failed: {failures[0][-500:]}")
    return elapsed


@contextmanager
def running(cmd: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(port, proc)
            yield
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def pulmonode(work: Path, port: int, plan: Plan) -> tuple[list[str], dict[str, str], str]:
    url = fresh_database(plan.db_url, work)
    upgrade(url)
    env = {**NODELAY, "PULMONODE_DEMO_MODE": "true", "PULMONODE_DATA_DIR": str(work / "data"),
           "PULMONODE_DICOM_HOST": "127.0.0.1", "PULMONODE_DICOM_PORT": str(port),
           "PULMONODE_DATABASE_URL": url, "PULMONODE_SCP_PROCESSES": str(plan.scp_processes),
           "PULMONODE_MIN_FREE_DISK_MB": "64"}
    return [sys.executable, "-m", "dicom_node.receive"], env, "PULMONODE"


def fresh_database(admin_url: str | None, work: Path) -> str:
    """SQLite in ``work``, or a new database on the PostgreSQL server of ``admin_url``."""
    if admin_url is None:
        return f"sqlite:///{work / 'pulmonode.db'}"
    name = bench_database(work)
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def bench_database(work: Path) -> str:
    return f"pn_bench_{work.name.replace('-', '_').lower()}"


def _admin(admin_url: str, *statements: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def storescp(work: Path, port: int, _plan: Plan) -> tuple[list[str], dict[str, str], str]:
    (work / "out").mkdir()
    return ["storescp", "--fork", "-aet", "STORESCP", "-od", str(work / "out"), str(port)], NODELAY, "STORESCP"


def orthanc(work: Path, port: int, _plan: Plan) -> tuple[list[str], dict[str, str], str]:
    config = {"Name": "bench", "StorageDirectory": str(work / "storage"), "IndexDirectory": str(work / "index"),
              "DicomAet": "ORTHANC", "DicomPort": port, "HttpPort": free_port(), "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "StorageCompression": False,
              "Plugins": [], "HttpServerEnabled": True}
    path = work / "orthanc.json"
    path.write_text(json.dumps(config))
    return [ORTHANC, str(path)], NODELAY, "ORTHANC"


Receiver = Callable[[Path, int, Plan], tuple[list[str], dict[str, str], str]]


def measure(receiver: Receiver, files: list[Path], associations: int, plan: Plan, root: Path) -> float:
    """Median images/s over ``plan.repeats`` runs, each against a fresh, empty receiver."""
    rates = []
    for _ in range(plan.repeats):
        work = Path(tempfile.mkdtemp(dir=root))
        port = free_port()
        cmd, env, aet = receiver(work, port, plan)
        with running(cmd, port, env, work / "receiver.log"):
            rates.append(len(files) / send(port, aet, files, associations))
        if plan.db_url and receiver is pulmonode:
            _admin(plan.db_url, f'DROP DATABASE IF EXISTS "{bench_database(work)}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    return statistics.median(rates)


def run(plan: Plan) -> dict[tuple[str, int], float]:
    receivers: dict[str, Receiver] = {"pulmonode": pulmonode, "storescp": storescp}
    if plan.orthanc and Path(ORTHANC).exists():
        receivers["orthanc"] = orthanc
    with tempfile.TemporaryDirectory(prefix="pn-ingest-") as tmp:
        root = Path(tmp)
        files = write_series(root / "series", plan.slices, plan.size)
        mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"series: {len(files)} slices {plan.size}x{plan.size}, {mb:.0f} MB; pulmonode "
              f"scp_processes={plan.scp_processes}, {'PostgreSQL' if plan.db_url else 'SQLite'}; "
              f"median of {plan.repeats}")
        results = {}
        for associations in plan.associations:
            for name, receiver in receivers.items():
                rate = measure(receiver, files, associations, plan, root)
                results[(name, associations)] = rate
                print(f"{name:10s} {associations} assoc: {rate:8.1f} images/s", flush=True)
    for associations in plan.associations:
        ratio = results[("pulmonode", associations)] / results[("storescp", associations)]
        print(f"ratio pulmonode/storescp, {associations} assoc: {ratio:.2f}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="20 small slices, 1 association, once")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scp-processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--db-url", help="PostgreSQL admin URL (a fresh database per run); default SQLite")
    args = parser.parse_args(argv)
    if args.smoke:
        plan = Plan(slices=20, size=64, associations=(1,), repeats=1, scp_processes=1, orthanc=False)
    else:
        plan = Plan(slices=args.slices, size=512, associations=(1, 4), repeats=args.repeats,
                    scp_processes=args.scp_processes, orthanc=not args.no_orthanc, db_url=args.db_url)
    run(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
