"""Old vs new malignancy ensemble (and members) on the same held-out patches:
(a) the shipped cards' test partition (malignancy_set seed 0, 400 cases, patient split seed 0; 60 patches) —
    unseen by both sets (the new members were fine-tuned on seed-1 cases);
(b) a fresh set, malignancy_set seed 2, 400 cases (all held out for both).
Usage: nice -n 19 .venv/bin/python compare_malignancy.py OLD_DIR NEW_DIR"""
import json, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
from ai_engine.models.card import load_model
from ai_engine.train.classification import MALIGNANCY_MODELS
from ai_engine.train.data import malignancy_set, parse_data
from ai_engine.train.loop import predict
from ai_engine.train.run import partition
from ai_engine.train.tasks import classification_metrics

src = parse_data("synthetic")
sets = {"seed0_n400_test_partition": partition(malignancy_set(src, 400, 0), 0).test,
        "seed2_n400_all": malignancy_set(src, 400, 2)}
out = {}
for label, d in zip(("old", "new"), sys.argv[1:3]):
    members = {n: load_model(n, Path(d), "demo")[0] for n in MALIGNANCY_MODELS}
    for sname, s in sets.items():
        probs = {n: predict(m, s.x, torch.device("cpu"), transform=lambda t: torch.softmax(t.float(), 1)).numpy()
                 for n, m in members.items()}
        y = s.y.numpy()
        res = {n: classification_metrics(p, y) for n, p in probs.items()}
        res["ensemble"] = classification_metrics(np.mean(list(probs.values()), axis=0), y)
        res["n"] = int(len(y))
        out.setdefault(sname, {})[label] = res
print(json.dumps(out, indent=1))
