"""Warm-start fine-tune of the malignancy ensemble members on fresh synthetic patches (data seed 1,
disjoint from the seed-0 cases the shipped members saw), then record the ensemble's test metrics.
Usage: nice -n 19 .venv/bin/python malignancy_finetune.py N_CASES OUT_DIR NAME:EPOCHS:STEPS:LR [...]"""
import sys, time
from dataclasses import replace
from pathlib import Path
import torch
torch.set_num_threads(2)
from ai_engine.models.card import load_model, read_card, write_card
from ai_engine.train import run as runmod
from ai_engine.train.classification import MALIGNANCY_MODELS, _record_ensemble
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import malignancy_set, parse_data
from ai_engine.train.tasks import ClassificationTask

SEED = 1
N, OUT = int(sys.argv[1]), Path(sys.argv[2])
import os
INIT_DIR = Path(os.environ.get("INIT_DIR", "ai_engine/weights"))
t0 = time.time()
source = parse_data("synthetic")
parts = runmod.partition(malignancy_set(source, N, SEED), SEED)
print("data", len(parts.train), len(parts.val), len(parts.test), f"{time.time()-t0:.0f}s", flush=True)


for arg in sys.argv[3:]:
    name, epochs, steps, lr, *prec = arg.split(":")  # optional ":fp32": no bf16 autocast (faster for ConvNeXt on CPU)
    bf16 = prec != ["fp32"]
    task = ClassificationTask(spatial_dims=3, n_classes=2, seed=SEED, bf16=bf16, monitor="auc")
    cfg = TrainConfig(epochs=int(epochs), batch_size=16, n_cases=N, steps_per_epoch=int(steps), lr=float(lr),
                      patience=int(epochs), seed=SEED, progress=False, bf16=bf16)
    res = runmod.train_model(name, parts, task, cfg, source, OUT, init_from=INIT_DIR)
    card = read_card(OUT, name, "demo")
    write_card(replace(card, training={**card.training, "init_from": f"{INIT_DIR} {name}-demo sha256 "
                                       f"{read_card(INIT_DIR, name, 'demo').sha256}",
                                       "script": "scripts/malignancy_finetune.py " + " ".join(sys.argv[1:])}), OUT)
    print(name, "history", res.history, flush=True)
    print(name, "metrics", res.card.metrics, f"{time.time()-t0:.0f}s", flush=True)
members = [load_model(n, OUT, "demo") for n in MALIGNANCY_MODELS]
cards = _record_ensemble(members, parts.test, OUT, TrainConfig(seed=SEED, n_cases=N))
print("ensemble_test", cards[0].metrics["ensemble_test"], f"{time.time()-t0:.0f}s", flush=True)
