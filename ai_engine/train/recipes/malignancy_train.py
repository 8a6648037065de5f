"""Train one malignancy ensemble member on synthetic nodule patches (data seed 11), fresh or warm-started,
then score it on 400 fresh patches (malignancy_set seed 2, never trained on).
Usage: [INIT=WEIGHTS_DIR] [TAG=-suffix] [OUT_ROOT=DIR] [CACHE=FILE.pt] python malignancy_train.py NAME N_CASES EPOCHS STEPS LR [THREADS]
Writes OUT_ROOT/mal-NAME-N_CASES-EPOCHSxSTEPS-LR[TAG]/ (weights, card, heldout_seed2_probs.npy)."""
import sys, time
from pathlib import Path
import numpy as np, torch
THREADS=int(sys.argv[6]) if len(sys.argv)>6 else 1
torch.set_num_threads(THREADS)
from ai_engine.train import run as runmod
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import cached_set, malignancy_set, parse_data
from ai_engine.train.loop import predict
from ai_engine.train.tasks import ClassificationTask, classification_metrics
name, N, epochs, steps, lr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
OUT = Path(__import__("os").environ.get("OUT_ROOT", "recipes-out")) / (f"mal-{name}-{N}-{epochs}x{steps}-{lr}" + __import__("os").environ.get("TAG", ""))
SEED = 11
t0=time.time()
src = parse_data("synthetic")
import os
data = cached_set(os.environ.get("CACHE"), lambda: malignancy_set(src, N, SEED))
parts = runmod.partition(data, SEED)
print("data", len(parts.train), f"{time.time()-t0:.0f}s", flush=True)
bf16 = name != "convnext-tiny-3d"
task = ClassificationTask(spatial_dims=3, n_classes=2, seed=SEED, bf16=bf16, monitor="auc")
cfg = TrainConfig(epochs=epochs, batch_size=16, n_cases=N, steps_per_epoch=steps, lr=lr, patience=epochs, seed=SEED, progress=False, bf16=bf16, num_threads=THREADS)
init = Path(os.environ['INIT']) if os.environ.get('INIT') else None
res = runmod.train_model(name, parts, task, cfg, src, OUT, init_from=init)
print("history", [(h["epoch"], round(h["loss"],3), round(h["auc"],3)) for h in res.history], flush=True)
print("metrics", res.card.metrics["validation"], res.card.metrics["test"], f"{time.time()-t0:.0f}s", flush=True)
held = malignancy_set(src, 400, 2)
p = predict(res.model, held.x, torch.device("cpu"), transform=lambda t: torch.softmax(t.float(), 1)).numpy()
np.save(OUT / "heldout_seed2_probs.npy", p)
print("heldout seed2", classification_metrics(p, held.y.numpy()), f"{time.time()-t0:.0f}s", flush=True)
