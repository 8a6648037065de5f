"""When bf16 autocast runs: a card's ``bf16_autocast`` says bf16 is accurate enough for a model;
the device decides whether it is also fast. oneDNN has bf16 kernels only on CPUs with
AVX512-BF16 or AMX; elsewhere autocast emulates them (the demo U-Net ran 37× slower than fp32 on
an AVX2-only EPYC), so there it falls back to fp32."""

from __future__ import annotations

import contextlib
import functools

import torch


@functools.cache
def _cpu_bf16() -> bool:
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def bf16_fast(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 convolutions natively (faster than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_bf16()


def autocast(enabled: bool, device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked for and fast on ``device``, else a no-op (fp32)."""
    device = torch.device(device)
    if not (enabled and bf16_fast(device)):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
