"""Train the malignancy members whole on one GPU, on a stream of patches cut from whole phantoms (session 19).

Why: on the CPU (sessions 16–18) only the DenseNet's tail and the ConvNeXt's last layer could be
retrained on the pipeline's own patches; the DenseNet's frozen stem then held margin or size, not
both, and the ConvNeXt's 4 mm patchify stem could not be taught margins (recipes README, session
18). Here CPU workers render whole phantoms and cut their nodules as the pipeline does
(malignancy_phantom.phantom_patches: 8 nodules a phantom, half malignant) while the GPU trains
several candidates side by side on the same augmented batches:

- densenet-warm: the shipped DenseNet121-3D, every layer trained;
- densenet-scratch: the demo DenseNet121-3D from scratch;
- densenet-s19: session 19's densenet-scratch (warm/densenet-scratch-s19.pt), trained on;
- convnext-warm: the shipped ConvNeXt-Tiny-3D, every layer trained;
- convnext-s2-*: a ConvNeXt-Tiny-3D with a 2 mm patchify stem (CONVNEXT_S2), from scratch, at two
  learning rates.

Loss: cross-entropy on malignancy + AUX_WEIGHT × cross-entropy on the margin + SIZE_WEIGHT × the
squared error of a row regressing the standardised log diameter, and, when CALC_WEIGHT / TYPE_WEIGHT
are set in the environment (session 21; 0 by default), cross-entropies on calcification and the
nodule type (malignancy_phantom.aux_loss; the rows are cut off before saving). Adam, weight decay
1e-4, linear warm-up over WARMUP steps then cosine to zero over the time budget, batch 16, bf16
autocast on a GPU (fp32 on a CPU), the paper's augmentation on the GPU (malignancy_gpu.augment).
Selection: every EVAL_EVERY_S, AUC on the validation phantoms' patches (malignancy_phantom's val
split, phantoms 0–59); each candidate's best state is written at once (a cut-short run keeps it),
and its last state at the end.

Session 19 (H200, 470 s, the five candidates other than densenet-s19, 13 workers): 2,890 steps
over 18,088 patches (the workers rendered 38 patches a second). Nothing beat the shipped members;
the scratch DenseNet read size but not yet lobulation (recipes README, session 19). Name fewer
candidates for more steps each, e.g. densenet-s19,convnext-warm.

Usage: python -m ai_engine.train.recipes.malignancy_phantom_gpu OUT_DIR TRAIN_SECONDS [WORKERS [NAME,...]]
Writes OUT_DIR/<candidate>.pt (best, 2-logit state_dict, fp32), OUT_DIR/<candidate>-last.pt and
OUT_DIR/summary.json."""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ai_engine.evaluate.classification import roc_auc
from ai_engine.models.architectures import densenet121_3d
from ai_engine.models.card import load_model
from ai_engine.models.convnext import ConvNeXt3D
from ai_engine.models.precision import autocast
from ai_engine.train.recipes.malignancy_gpu import AUX_WEIGHT, WEIGHT_DECAY, augment, probabilities, save_plain
from ai_engine.train.recipes.malignancy_phantom import (CALC_WEIGHT, PHANTOM_BASE, SHIPPED, TYPE_WEIGHT, aux_loss,
                                                         phantom_patches, targets, widen)

BATCH, SIZE_WEIGHT, WARMUP, EVAL_EVERY_S, N_VAL = 16, 1.0, 200, 25.0, 60
POOL_CAPACITY, IN_FLIGHT = 40_000, 64  # patches kept on the GPU (20 GB at fp16); phantoms being rendered
MIN_FILLED = 256  # patches rendered before the first step (and the clock) starts
CONVNEXT_S2 = dict(depths=(1, 1, 3, 1), dims=(24, 48, 96, 192), drop_path_rate=0.0, layer_scale_init=0.1,
                   stem_stride=2)


def convnext_s2() -> nn.Module:
    return ConvNeXt3D(1, 2, **CONVNEXT_S2)


def shipped(name: str) -> Callable[[], nn.Module]:
    return lambda: load_model(name, SHIPPED, "demo")[0].float()


# session 19's densenet-scratch at its last step (2,890; fp16), kept so a later GPU session goes on from it
S19_DENSENET = Path(__file__).resolve().parent / "warm" / "densenet-scratch-s19.pt"
S19_DENSENET_SHA256 = "ea649300d3c1440e9abbd02c9193bd3728b72a4e53818ce8ce7c8a15234c80ea"


def session19_densenet() -> nn.Module:
    data = S19_DENSENET.read_bytes()
    if hashlib.sha256(data).hexdigest() != S19_DENSENET_SHA256:
        raise SystemExit(f"{S19_DENSENET}: sha256 is not session 19's")
    net = densenet121_3d("demo")
    state = torch.load(S19_DENSENET, map_location="cpu", weights_only=True)
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    return net


# name: (build, lr)
CANDIDATES: dict[str, tuple[Callable[[], nn.Module], float]] = {
    "densenet-warm": (shipped("densenet121-3d"), 3e-4),
    "densenet-scratch": (lambda: densenet121_3d("demo"), 1e-3),
    "densenet-s19": (session19_densenet, 5e-4),  # densenet-scratch, continued
    "convnext-warm": (shipped("convnext-tiny-3d"), 1e-4),
    "convnext-s2-lr2e-4": (convnext_s2, 2e-4),
    "convnext-s2-lr5e-4": (convnext_s2, 5e-4),
}


def _worker_init() -> None:
    import SimpleITK as sitk  # resampling threads would oversubscribe the cores the workers share
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    torch.set_num_threads(1)


def rows_to_targets(rows: np.ndarray) -> torch.Tensor:
    """[n, 5] float: malignant, margin class, calcified, type, standardised log diameter
    (malignancy_phantom.targets)."""
    y, size = targets(rows)
    return torch.cat([y.float(), size[:, None]], 1)


def lr_at(base: float, step: int, frac: float) -> float:
    return base * min(1.0, step / WARMUP) * 0.5 * (1 + math.cos(math.pi * frac))


def main(out_dir: Path, seconds: float, workers: int, names: list[str] | None = None) -> None:
    names = names or list(CANDIDATES)
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:  # before any GPU time is spent
        raise SystemExit(f"unknown candidate(s) {', '.join(unknown)}; known: {', '.join(CANDIDATES)}")
    pool = mp.get_context("fork").Pool(workers, initializer=_worker_init)  # before CUDA starts: fork is safe
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(19)
    torch.backends.cudnn.benchmark = True
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    val = pool.map(phantom_patches, range(PHANTOM_BASE["val"], PHANTOM_BASE["val"] + N_VAL), chunksize=1)
    val_x = torch.from_numpy(np.concatenate([v[0] for v in val]))[:, None]
    val_y = np.concatenate([v[1] for v in val])[:, 0].astype(int)
    print(f"validation {len(val_y)} patches in {time.time() - t0:.0f}s on {device}", flush=True)
    models, opts = {}, {}
    for name in names:
        build, lr = CANDIDATES[name]
        m = build()
        widen(m)
        models[name] = m.to(device).train()
        opts[name] = torch.optim.Adam(models[name].parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    best = {k: (-1.0, 0) for k in models}
    capacity = POOL_CAPACITY if device.type == "cuda" else 512
    xs = torch.empty((capacity, 1, 64, 64, 64), dtype=torch.float16, device=device)
    ts = torch.empty((capacity, 5), dtype=torch.float32, device=device)
    filled, submitted, pending, steps, history = 0, 0, [], 0, []
    base = PHANTOM_BASE["train"]
    ce = nn.functional.cross_entropy
    start = last_eval = time.time()
    while True:
        while len(pending) < IN_FLIGHT:
            pending.append(pool.apply_async(phantom_patches, (base + submitted,)))
            submitted += 1
        ready = [p for p in pending if p.ready()]
        pending = [p for p in pending if not p.ready()]
        for p in ready:
            try:
                x, rows = p.get()
            except Exception as exc:  # one phantom lost is no reason to lose the run
                print(f"a phantom failed: {exc!r}", flush=True)
                continue
            j = torch.arange(filled, filled + len(x), device=device) % capacity
            xs[j] = torch.from_numpy(x)[:, None].to(device)
            ts[j] = rows_to_targets(rows).to(device)
            filled += len(x)
        if filled < MIN_FILLED:
            time.sleep(0.05)
            start = last_eval = time.time()  # the budget is for training
            continue
        elapsed = time.time() - start
        frac = min(1.0, elapsed / seconds)
        idx = torch.randint(0, min(filled, capacity), (BATCH,), device=device)
        xb, tb = augment(xs[idx].float()), ts[idx]
        y, aux, size = tb[:, 0].long(), tb[:, :4].long(), tb[:, 4]
        steps += 1
        for name, m in models.items():
            for g in opts[name].param_groups:
                g["lr"] = lr_at(CANDIDATES[name][1], steps, frac)
            with autocast(device.type == "cuda", device):  # a CPU's bf16 backward pass can abort (README, session 19)
                logits = m(xb).float()
            loss = ce(logits[:, :2], y) + aux_loss(logits, aux, size, SIZE_WEIGHT)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
        if time.time() - last_eval >= EVAL_EVERY_S or frac >= 1.0:
            last_eval = time.time()
            row = {"t": round(elapsed), "steps": steps, "patches": filled, "phantoms": filled // 8}
            for name, m in models.items():
                auc = roc_auc(val_y, probabilities(m, val_x, device))
                row[name] = round(auc, 4)
                if auc > best[name][0]:
                    best[name] = (auc, steps)
                    save_plain(m.state_dict(), out_dir / f"{name}.pt")
            history.append(row)
            print(row, flush=True)
            _write_summary(out_dir, device, seconds, steps, filled, best, history)
        if frac >= 1.0:
            break
    pool.terminate()
    for name, m in models.items():
        save_plain(m.state_dict(), out_dir / f"{name}-last.pt")
    _write_summary(out_dir, device, seconds, steps, filled, best, history)


def _write_summary(out_dir: Path, device: torch.device, seconds: float, steps: int, filled: int, best: dict,
                   history: list) -> None:
    summary = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
               "train_seconds": seconds, "steps": steps, "patches_rendered": filled, "batch": BATCH,
               "size_weight": SIZE_WEIGHT, "calc_weight": CALC_WEIGHT, "type_weight": TYPE_WEIGHT,
               "aux_weight": AUX_WEIGHT, "warmup_steps": WARMUP,
               "validation": f"{N_VAL} phantoms of malignancy_phantom's val split ({PHANTOM_BASE['val']}+)",
               "candidates": {k: {"lr": CANDIDATES[k][1], "best_val_auc": round(a, 4), "best_step": s}
                              for k, (a, s) in best.items()},
               "convnext_s2": CONVNEXT_S2, "history": history}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else max(1, mp.cpu_count() - 3),
         sys.argv[4].split(",") if len(sys.argv) > 4 else None)
