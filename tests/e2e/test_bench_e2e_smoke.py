"""bench/e2e.py runs (smoke size) and prints its per-stage table and ratios, so it cannot rot."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_e2e_bench_smoke() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "e2e.py"), "--smoke"], capture_output=True,
                         text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    for stage in ("de-identify", "inference", "build SEG/SR/KOS/PDF", "re-identify + write", "deliver"):
        assert stage in out.stdout
    ratio_line = next(line for line in out.stdout.splitlines() if line.startswith("ratio total / U-Net"))
    assert float(ratio_line.rsplit(":", 1)[1]) > 1.0  # the whole is more than the U-Net alone
