"""Train the malignancy members from scratch on one GPU, on a stream of fresh patches (session 15).

Why: fine-tuned on 5,000 patches with a margin loss, the demo DenseNet121-3D never learned to see
lobulation (recipes README, session 14). Here the networks start from scratch, with the margin loss
from their first step, and no patch is seen more than a few times: CPU workers render new patches
(malignancy_set's recipe: half malignant, label model conditioned) while the GPU trains. Three
networks train side by side on the same batches: session 14's narrow demo DenseNet121-3D, the
demo ConvNeXt-Tiny-3D and the wider DenseNet121-3D that is now the demo profile.

- Half the patches are rendered at 1 mm, as malignancy_set's; the other half at a scanner-like
  spacing (x = y ~ U(0.6, 1.3) mm, z ~ U(1.0, 2.0) mm) and resampled to 1 mm by linear
  interpolation, as the pipeline resamples a CT before it cuts the 64 mm patches.
- Loss: cross-entropy on malignancy + AUX_WEIGHT × cross-entropy on the margin (3 extra logits,
  dropped before saving, as malignancy_margin.py). Adam, weight decay 1e-4, cosine annealing over
  the time budget, batch 16, bf16 autocast; augmentation as augment.py (rotation ≤ 30° about each
  axis with p .5, flips, Gaussian noise std 0.01 with p .5), done on the GPU.
- Model selection: every EVAL_EVERY_S, AUC on 400 patches of malignancy_set seed SELECT_SEED (never
  trained on); the best state of each member is kept. Held-out: malignancy_set seed 2, scored once at
  the end (and again on the CPU when the cards are written).

Usage: python malignancy_gpu.py OUT_DIR TRAIN_SECONDS [WORKERS]
Writes OUT_DIR/<member>.pt (2-logit state_dict, fp32; rewritten at each new best) and OUT_DIR/summary.json.
Imports only numpy, scipy, torch, monai and ai_engine's synthetic and model modules (what a bare
GPU machine has, with monai carried as a wheel)."""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from monai.networks.nets import DenseNet
from torch import nn

from ai_engine.evaluate.classification import roc_auc
from ai_engine.models.architectures import convnext_tiny3d, densenet121_3d
from ai_engine.models.heads import set_rows
from ai_engine.models.inputs import crop_centered, window01
from ai_engine.models.precision import autocast
from ai_engine.preprocess.window import LUNG_WINDOW_HU  # the members' hu_window, as malignancy_set
from ai_engine.synthetic.grid import Grid
from ai_engine.synthetic.patch import make_nodule_patch, nodule_scene
from ai_engine.synthetic.truth import MORPHOLOGIES, NoduleSpec, NoduleTruth
from ai_engine.train.data import case_seed

STREAM_SEED, SELECT_SEED, HELDOUT_SEED = 31, 33, 2
N_SELECT = N_HELDOUT = 400
PATCH, BATCH, AUX_WEIGHT, WEIGHT_DECAY = 64, 16, 1.0, 1e-4


def densenet_narrow(profile: str) -> nn.Module:
    """The demo DenseNet121-3D up to session 14 (16 initial features, growth 8, blocks 2-4-4; 48k
    parameters), trained beside the wider one that is the demo profile since (architectures.py)."""
    net = DenseNet(3, 1, 2, init_features=16, growth_rate=8, block_config=(2, 4, 4), bn_size=2)
    net.features.pool0 = nn.Identity()
    return net


# ConvNeXt's demo collapses at 1e-3 (architectures.py)
LR = {"densenet121-3d": 1e-3, "convnext-tiny-3d": 2e-4, "densenet121-3d-wide": 1e-3}
# the names are those of session 15's run, which wrote densenet121-3d.pt (the narrow one) beside the wide one
BUILD = {"densenet121-3d": densenet_narrow, "convnext-tiny-3d": convnext_tiny3d, "densenet121-3d-wide": densenet121_3d}
HEADS = ("class_layers.out.", "head.")  # the final linear layer's keys (MONAI DenseNet, ConvNeXt3D)
POOL_CAPACITY, IN_FLIGHT, EVAL_EVERY_S = 60_000, 512, 30.0  # capacity on the GPU (31 GB); 2,000 on a CPU
N_MAL = 2


def scanner_patch(seed: int, malignant: bool) -> tuple[np.ndarray, NoduleTruth]:
    """make_nodule_patch on an anisotropic scanner grid, resampled (linear) to a 1 mm 64³ cube."""
    rng = np.random.default_rng(seed)
    sxy, sz = float(rng.uniform(0.6, 1.3)), float(rng.uniform(1.0, 2.0))
    nxy, nz = int(math.ceil(70 / sxy)), int(math.ceil(70 / sz))
    hu, truth = nodule_scene(rng, Grid.centred((nz, nxy, nxy), (sxy, sxy, sz)), NoduleSpec(malignant=malignant))
    iso = ndimage.zoom(hu, (sz, sxy, sxy), order=1)
    return crop_centered(iso, [(n - 1) / 2 for n in iso.shape], (PATCH,) * 3, fill=-1000.0), truth


def render(job: tuple[int, int, bool]) -> tuple[np.ndarray, int, int]:
    stream, i, scanner = job
    seed, malignant = case_seed(stream, i), bool(i % 2)
    patch, truth = scanner_patch(seed, malignant) if scanner else make_nodule_patch(seed, malignant=malignant)
    return (window01(patch, LUNG_WINDOW_HU).astype(np.float16), int(truth.malignant),
            MORPHOLOGIES.index(truth.morphology))


def rotation_matrices(n: int, device: torch.device) -> torch.Tensor:
    """Per sample: rotate about each axis by U(-30°, 30°) with p .5 (identity otherwise)."""
    ang = (torch.rand(n, 3, device=device) * 2 - 1) * math.radians(30.0)
    ang = ang * (torch.rand(n, 1, device=device) < 0.5)
    c, s = torch.cos(ang), torch.sin(ang)
    one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1).view(n, 3, 3)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1).view(n, 3, 3)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1).view(n, 3, 3)
    return rx @ ry @ rz


def augment(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    theta = torch.cat([rotation_matrices(n, x.device), torch.zeros(n, 3, 1, device=x.device)], 2)
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    for axis in (2, 3, 4):
        flip = torch.rand(n, device=x.device) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1, 1), x.flip(axis), x)
    noisy = (torch.rand(n, device=x.device) < 0.5).view(n, 1, 1, 1, 1)
    return x + noisy * 0.01 * torch.randn_like(x)


def save_plain(state: dict[str, torch.Tensor], path: Path) -> None:
    """The state as the registry's 2-logit member: the margin rows of the final layer dropped."""
    torch.save({n: (v[:N_MAL] if n.startswith(HEADS) else v).float().cpu() for n, v in state.items()}, path)


@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor, device: torch.device) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(x), 64):
        with autocast(True, device):  # fp32 where bf16 would be emulated (slow)
            logits = model(x[i:i + 64].to(device).float())
        out.append(torch.softmax(logits[:, :N_MAL].float(), 1)[:, 1].cpu())
    model.train()
    return torch.cat(out).numpy()


def fixed_set(pool: mp.pool.Pool, stream: int, n: int) -> tuple[torch.Tensor, np.ndarray]:
    rows = pool.map(render, [(stream, i, False) for i in range(n)], chunksize=8)
    return torch.from_numpy(np.stack([r[0] for r in rows]))[:, None], np.array([r[1] for r in rows])


def main(out_dir: Path, seconds: float, workers: int) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(STREAM_SEED)
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its 3D convolution kernels
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = mp.get_context("fork").Pool(workers)
    t0 = time.time()
    select_x, select_y = fixed_set(pool, SELECT_SEED, N_SELECT)
    held_x, held_y = fixed_set(pool, HELDOUT_SEED, N_HELDOUT)
    print(f"fixed sets {time.time() - t0:.0f}s on {device}", flush=True)
    models = {name: build("demo").to(device).train() for name, build in BUILD.items()}
    for m in models.values():
        set_rows(m, N_MAL + len(MORPHOLOGIES))
    opts = {k: torch.optim.Adam(m.parameters(), lr=LR[k], weight_decay=WEIGHT_DECAY) for k, m in models.items()}
    best = {k: (-1.0, None, 0) for k in models}
    capacity = POOL_CAPACITY if device.type == "cuda" else 2_000
    xs = torch.empty((capacity, 1, PATCH, PATCH, PATCH), dtype=torch.float16, device=device)
    ys = torch.empty((capacity, 2), dtype=torch.long, device=device)
    filled, submitted, pending, steps, history = 0, 0, [], 0, []
    start, last_eval = time.time(), time.time()
    while True:
        while len(pending) < IN_FLIGHT:
            pending.append(pool.apply_async(render, ((STREAM_SEED, submitted, submitted % 4 >= 2),)))
            submitted += 1
        done = [p for p in pending if p.ready()]
        pending = [p for p in pending if not p.ready()]
        for p in done:
            x, mal, margin = p.get()
            j = filled % capacity
            xs[j, 0] = torch.from_numpy(x).to(device)
            ys[j, 0], ys[j, 1] = mal, margin
            filled += 1
        if filled < 256:
            time.sleep(0.05)
            continue
        elapsed = time.time() - start
        frac = min(1.0, elapsed / seconds)
        idx = torch.randint(0, min(filled, capacity), (BATCH,), device=device)
        xb, yb = augment(xs[idx].float()), ys[idx]
        for k, m in models.items():
            for g in opts[k].param_groups:
                g["lr"] = LR[k] * 0.5 * (1 + math.cos(math.pi * frac))
            with autocast(True, device):  # fp32 where bf16 would be emulated (slow)
                logits = m(xb).float()
            ce = nn.functional.cross_entropy
            loss = ce(logits[:, :N_MAL], yb[:, 0]) + AUX_WEIGHT * ce(logits[:, N_MAL:], yb[:, 1])
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
        steps += 1
        if time.time() - last_eval >= EVAL_EVERY_S or frac >= 1.0:
            last_eval = time.time()
            row = {"t": round(elapsed), "steps": steps, "patches": filled}
            for k, m in models.items():
                auc = roc_auc(select_y, probabilities(m, select_x, device))
                row[k] = round(auc, 4)
                if auc > best[k][0]:
                    best[k] = (auc, {n: v.detach().cpu().clone() for n, v in m.state_dict().items()}, steps)
                    save_plain(best[k][1], out_dir / f"{k}.pt")  # kept should the run be cut short
            history.append(row)
            print(row, flush=True)
        if frac >= 1.0:
            break
    pool.terminate()
    summary = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
               "train_seconds": seconds, "steps": steps, "patches_rendered": filled, "batch": BATCH,
               "history": history, "members": {}}
    probs = {}
    for k, m in models.items():
        auc, state, at = best[k]
        m.load_state_dict(state)
        set_rows(m, N_MAL)
        save_plain(m.state_dict(), out_dir / f"{k}.pt")
        probs[k] = probabilities(m, held_x, device)
        summary["members"][k] = {"select_auc": round(auc, 4), "best_step": at, "lr": LR[k],
                                 "heldout_seed2_auc": round(roc_auc(held_y, probs[k]), 4)}
    summary["heldout_seed2_mean_of_all_three_auc"] = round(roc_auc(held_y, np.mean(list(probs.values()), 0)), 4)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else max(1, mp.cpu_count() - 2))
