"""bench/inference.py --smoke runs end to end (so the benchmark cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ai_engine.models.precision import bf16_fast

ROOT = Path(__file__).resolve().parents[2]


def test_inference_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "inference.py"), "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["matmul_fp32_gflops"] > 0 and result["total_s"] > 0
    assert {"resample", "lung_mask", "segmentation", "malignancy"} <= set(result["stages_s"])
    assert result["tta_passes"] >= 1 and 0 < result["segmentation_s_without_tta"] and "U-Net passes" in proc.stdout
    runtimes = result["unet"]["runtimes"]
    assert {"eager fp32", "torchscript frozen fp32"} <= set(runtimes)
    # bf16 is timed only where the CPU has bf16 kernels (the pipeline falls back to fp32 elsewhere)
    assert ("eager bf16 autocast" in runtimes) == result["bf16_native"] == bf16_fast("cpu")
    assert runtimes["torchscript frozen fp32"]["mask_dice_vs_fp32"] > 0.99
    assert runtimes["eager fp32 channels_last_3d"]["mask_dice_vs_fp32"] > 0.99
    assert result["unet"]["card_runtime"] in runtimes  # the pipeline's own runtime is among those timed
    assert all(r["gflops_per_s"] > 0 for r in runtimes.values())
    assert "GFLOP/s" in proc.stdout and "vs eager fp32" in proc.stdout
