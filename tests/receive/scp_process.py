"""Run the SCP as a separate process (``python -m dicom_node.receive``), as ``pulmonode scp`` does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"SCP exited early with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"SCP did not listen on {port}")


@contextmanager
def scp_process(data_dir: Path, port: int, db_url: str, **env: str) -> Iterator[subprocess.Popen]:
    """The SCP in its own process group; stopped with SIGTERM (or found already killed) on exit."""
    environment = {
        **os.environ,
        "TCP_NODELAY": "1",
        "PULMONODE_DEMO_MODE": "true",
        "PULMONODE_DATA_DIR": str(data_dir),
        "PULMONODE_DICOM_HOST": "127.0.0.1",
        "PULMONODE_DICOM_PORT": str(port),
        "PULMONODE_DATABASE_URL": db_url,
        "PULMONODE_MIN_FREE_DISK_MB": "1",
        **env,
    }
    log = (data_dir.parent / "scp.log").open("ab")  # a file, not a pipe nobody drains
    proc = subprocess.Popen([sys.executable, "-m", "dicom_node.receive"], env=environment,
                            start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
