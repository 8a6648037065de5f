"""bf16 autocast runs only where the device has bf16 kernels; elsewhere the models run fp32."""

from __future__ import annotations

import pytest
import torch

from ai_engine.models import precision


@pytest.mark.parametrize("native", [False, True])
def test_autocast_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(precision, "_cpu_bf16", lambda: native)
    conv = torch.nn.Conv3d(1, 2, 3)
    with torch.no_grad(), precision.autocast(True, "cpu"):
        out = conv(torch.rand(2, 1, 6, 6, 6))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    assert precision.bf16_fast("cpu") is native


def test_autocast_off_when_not_asked(monkeypatch):
    monkeypatch.setattr(precision, "_cpu_bf16", lambda: True)
    with torch.no_grad(), precision.autocast(False, "cpu"):
        assert torch.nn.Linear(3, 2)(torch.rand(2, 3)).dtype == torch.float32


def test_meta_device_has_no_bf16_kernels():
    assert not precision.bf16_fast("meta")
