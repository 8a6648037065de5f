"""Train the U-Net on cached shards (unet_shards.py), fresh or warm-started; the other demo models are
copied from INIT_DIR so OUT is a complete weight set for calibrate.py.
Usage: THREADS=2 [DICE=batch|patch] [HARD=K] python unet_train.py OUT EPOCHS STEPS LR INIT_DIR|none "SHARD_GLOB"
(patient split seed 0; DICE: SegmentationTask.dice, batch by default; HARD=K: the training patches
holding a nodule the INIT_DIR U-Net misses, max probability < 0.3 on it, are repeated K more times)"""
import os, sys, time, glob, shutil
from dataclasses import replace
from pathlib import Path
import numpy as np, torch
from scipy import ndimage
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
from ai_engine.train import run as runmod
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import parse_data
from ai_engine.models.card import load_model
from ai_engine.train.loop import TensorSet, predict
from ai_engine.train.segmentation import calibrate_probability
from ai_engine.train.tasks import SegmentationTask
OUT, EPOCHS, STEPS, LR, INIT, GLOB = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
t0 = time.time()
X, Y, I = [], [], []
for f in sorted(glob.glob(GLOB)):
    d = np.load(f); X.append(torch.from_numpy(d["x"])); Y.append(torch.from_numpy(d["y"])); I += list(d["ids"])
data = TensorSet(torch.cat(X), torch.cat(Y), tuple(str(i) for i in I)); del X, Y
parts = runmod.partition(data, 0)
print("partition", len(parts.train), len(parts.val), len(parts.test), f"{time.time()-t0:.0f}s", flush=True)
OUT.mkdir(parents=True, exist_ok=True)
init = None if INIT == "none" else Path(INIT)


def missed(weights: Path, patches: TensorSet) -> np.ndarray:
    """Indices of the patches with a nodule component whose highest probability is < 0.3."""
    model, card = load_model("unet3d", weights)
    prob = predict(model, patches.x, torch.device("cpu"), transform=lambda t: torch.softmax(t, 1)[:, 1],
                   bf16=card.input_spec.bf16_autocast).numpy()
    out = []
    for i in range(len(patches)):
        labels, n = ndimage.label(patches.y[i, 0].numpy() > 0)
        if n and min(ndimage.maximum(prob[i], labels, range(1, n + 1))) < 0.3:
            out.append(i)
    return np.array(out, dtype=int)


HARD = int(os.environ.get("HARD", "0"))
if HARD and init:
    hard = missed(init, parts.train)
    print("hard patches", len(hard), "of", len(parts.train), flush=True)
    parts = replace(parts, train=runmod._join(parts.train, parts.train.subset(np.repeat(hard, HARD))))
if init:  # the other models come along unchanged so the directory is a full weight set
    for n in ("densenet121-3d", "convnext-tiny-3d", "efficientnet-b3"):
        for ext in (".pt", ".json"):
            shutil.copy(init / f"{n}-demo{ext}", OUT / f"{n}-demo{ext}")
cfg = TrainConfig(epochs=EPOCHS, batch_size=8, n_cases=len(set(I)), steps_per_epoch=STEPS, patience=EPOCHS, lr=LR, seed=0, progress=False)
res = runmod.train_model("unet3d", parts, SegmentationTask(seed=0, bf16=True, dice=os.environ.get("DICE", "batch")), cfg, parse_data("synthetic"), OUT,
                         calibrate=calibrate_probability, init_from=init)
print("history", [(h["epoch"], round(h["loss"], 3), round(h["dice"], 3)) for h in res.history], flush=True)
print("metrics", res.card.metrics, f"{time.time()-t0:.0f}s", flush=True)
