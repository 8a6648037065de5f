"""bench/ingest.py --smoke runs end to end (real storescu, storescp and our SCP) and prints its ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ingest_bench_smoke_prints_a_ratio():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "ingest.py"), "--smoke"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rates = dict(re.findall(r"^(pulmonode|storescp)\s+1 assoc:\s+([\d.]+) images/s$", result.stdout, re.M))
    assert set(rates) == {"pulmonode", "storescp"} and all(float(v) > 0 for v in rates.values()), result.stdout
    ratio = re.search(r"^ratio pulmonode/storescp, 1 assoc: ([\d.]+)$", result.stdout, re.M)
    assert ratio is not None, result.stdout
    assert abs(float(ratio.group(1)) - float(rates["pulmonode"]) / float(rates["storescp"])) < 0.01
