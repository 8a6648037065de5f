"""What bounds malignancy_phantom_gpu.py's steps: each candidate's training step on the GPU, and the
workers' phantom rendering, measured in one process (session 19).

Prints, per candidate: ms per step (batch 16, bf16 autocast on a GPU, fp32 on a CPU, Adam) in the
default memory format and in channels_last_3d, and their ratio; the augmentation's ms per batch;
and the phantoms (8 patches each) rendered per second by WORKERS workers against one.

Usage: python bench/gpu_train_throughput.py [WORKERS] [STEPS]
       python bench/gpu_train_throughput.py --smoke   (one phantom, one step, the ConvNeXt only; the tests run it)"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time

import torch
from torch import nn

from ai_engine.models.precision import autocast
from ai_engine.train.recipes.malignancy_gpu import augment
from ai_engine.train.recipes.malignancy_phantom import PHANTOM_BASE, SIZE_ROW, phantom_patches, widen
from ai_engine.train.recipes.malignancy_phantom_gpu import CANDIDATES, _worker_init

BATCH = 16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_ms(name: str, device: torch.device, channels_last: bool, steps: int, warmup: int = 5) -> float:
    build, lr = CANDIDATES[name]
    net = build()
    widen(net)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    net = net.to(device).to(memory_format=fmt).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x = torch.rand(BATCH, 1, 64, 64, 64, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (BATCH,), device=device)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        with autocast(device.type == "cuda", device):  # a CPU's bf16 backward can abort (recipes README, s. 19)
            logits = net(x).float()
        loss = nn.functional.cross_entropy(logits[:, :2], y) + logits[:, SIZE_ROW].square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - t0) / steps * 1e3


def render_rate(workers: int, phantoms: int) -> float:
    seeds = range(PHANTOM_BASE["train"], PHANTOM_BASE["train"] + phantoms)
    with mp.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
        t0 = time.perf_counter()
        pool.map(phantom_patches, seeds, chunksize=1)
        return phantoms / (time.perf_counter() - t0)


def main(workers: int, steps: int, smoke: bool = False) -> None:
    phantoms = (1, workers) if smoke else (2, 3 * workers)
    one, many = render_rate(1, phantoms[0]), render_rate(workers, phantoms[1])  # before CUDA starts: fork is safe
    out = {"phantoms_per_s": {"1 worker": round(one, 3), f"{workers} workers": round(many, 3),
                              "ratio": round(many / one, 2)}}
    print(out, flush=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    x = torch.rand(BATCH, 1, 64, 64, 64, device=device)
    augment(x)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        augment(x)
    _sync(device)
    out["augment_ms"] = round((time.perf_counter() - t0) / steps * 1e3, 2)
    out["device"] = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    for name in ("convnext-warm",) if smoke else ("densenet-scratch", "convnext-warm", "convnext-s2-lr2e-4"):
        plain, last = (step_ms(name, device, fmt, steps, 1 if smoke else 5) for fmt in (False, True))
        out[name] = {"ms_per_step": round(plain, 2), "channels_last_3d_ms": round(last, 2),
                     "channels_last_speedup": round(plain / last, 2)}
        print(name, out[name], flush=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--smoke"]:
        main(1, 1, smoke=True)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else max(1, mp.cpu_count() - 1),
             int(sys.argv[2]) if len(sys.argv) > 2 else 50)
