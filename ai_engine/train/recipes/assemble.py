"""Assemble the final weight set (EfficientNet-B3 from ai_engine/weights) and record the malignancy ensemble's
metrics in both member cards. Usage: [TEST_SEED=11] python assemble.py OUT UNET_DIR DENSENET_DIR CONVNEXT_DIR
The ensemble's test partition is that of malignancy_set(3000, TEST_SEED), split seed 11. Session 5's
members were fine-tuned on seed-11 patches under another split, so that set was assembled with
TEST_SEED=12 (patches no member has seen)."""
import os, shutil, sys, json
from dataclasses import replace
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(2)
from ai_engine.models.card import load_model, read_card, write_card
from ai_engine.train.classification import MALIGNANCY_MODELS, _record_ensemble
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import malignancy_set, parse_data
from ai_engine.train.loop import predict
from ai_engine.train.run import partition
from ai_engine.train.tasks import classification_metrics
OUT, UNET, DENSE, CNX = (Path(a) for a in sys.argv[1:5])
OUT.mkdir(parents=True, exist_ok=True)
for src, name in ((UNET, "unet3d"), (DENSE, "densenet121-3d"), (CNX, "convnext-tiny-3d"), (Path("ai_engine/weights"), "efficientnet-b3")):
    for ext in (".pt", ".json"):
        shutil.copy(src / f"{name}-demo{ext}", OUT / f"{name}-demo{ext}")
src = parse_data("synthetic")
TEST_SEED = int(os.environ.get("TEST_SEED", "11"))
test = partition(malignancy_set(src, 3000, TEST_SEED), 11).test
members = [load_model(n, OUT, "demo") for n in MALIGNANCY_MODELS]
cards = _record_ensemble(members, test, OUT, TrainConfig(seed=11, n_cases=3000))
held = malignancy_set(src, 400, 2)
probs = {n: predict(m, held.x, torch.device("cpu"), transform=lambda t: torch.softmax(t.float(), 1)).numpy() for (m, _), n in zip(members, MALIGNANCY_MODELS)}
y = held.y.numpy()
res = {f"{n}_auc": classification_metrics(p, y)["auc"] for n, p in probs.items()}
ens = classification_metrics(np.mean(list(probs.values()), axis=0), y)
res.update(ensemble_auc=ens["auc"], ensemble_accuracy=ens["accuracy"],
           data="malignancy_set('synthetic', 400, seed=2): 400 patches never trained on (recipes/malignancy_train.py, assemble step)")
for n in MALIGNANCY_MODELS:
    c = read_card(OUT, n, "demo")
    write_card(replace(c, metrics={**c.metrics, "ensemble_heldout_seed2": res,
                                   "ensemble_test_data": f"test partition (450 patches) of malignancy_set('synthetic', 3000, seed={TEST_SEED}), patient split seed 11"}), OUT)
print(json.dumps({"ensemble_test": cards[0].metrics["ensemble_test"], "heldout_seed2": res}, indent=1))
