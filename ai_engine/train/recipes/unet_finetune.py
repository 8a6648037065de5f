"""Fine-tune the shipped unet3d-demo on phantoms enriched with small solid nodules (4-10 mm) and
vessel-centred hard negatives; then calibrate/evaluate the pipeline with ai_engine.train.calibrate.
Usage: nice -n 19 .venv/bin/python unet_finetune.py N_PHANTOMS EPOCHS STEPS OUT_DIR  (seed 0)."""
import sys, time
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(2)
from ai_engine.findings import NoduleType
from ai_engine.models.card import read_card, write_card
from ai_engine.models.inputs import crop_centered, window01
from ai_engine.models.registry import LUNG_WINDOW_HU
from ai_engine.synthetic import NoduleSpec, make_ct_phantom
from ai_engine.train import run as runmod
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import parse_data
from ai_engine.train.loop import TensorSet
from ai_engine.train.segmentation import TRAIN_PATCH, calibrate_probability
from ai_engine.train.tasks import SegmentationTask

SEED = 0
N, EPOCHS, STEPS, OUT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
import os
INIT_DIR = Path(os.environ.get("INIT_DIR", "ai_engine/weights"))
# "solid" (round 1) or "mixed" (round 2: one small solid, part-solid and ground-glass nodule each)
SMALL_TYPES = os.environ.get("SMALL_TYPES", "solid")
P = TRAIN_PATCH
t0 = time.time()


def case(i):
    rng = np.random.default_rng([SEED, i, 99])
    types = [NoduleType.SOLID] * 2 if SMALL_TYPES == "solid" else list(NoduleType)
    specs = [NoduleSpec(diameter_mm=float(rng.uniform(4, 10)), nodule_type=t) for t in types]
    specs.append(NoduleSpec())
    ph = make_ct_phantom(seed=int(rng.integers(2**31)), shape_zyx=(200, 288, 288), spacing_mm=(1.0, 1.0, 1.0),
                         nodule_spec=specs)
    img = window01(ph.volume.hu, LUNG_WINDOW_HU)
    mask = (np.asarray(ph.nodule_mask) > 0).astype(np.uint8)
    cs = []
    for n in ph.nodules:
        k = 3 if n.diameter_mm < 10 else 2
        cs += [np.asarray(n.centre_zyx) + rng.uniform(-P / 4, P / 4, 3) for _ in range(k)]
    lung = np.asarray(ph.lung_mask) & (mask == 0)
    lung_idx = np.argwhere(lung)
    dense_idx = np.argwhere(lung & (ph.volume.hu > -400))  # vessels/airway walls: the hard negatives
    n_neg = len(cs)
    cs += [lung_idx[k] for k in rng.integers(len(lung_idx), size=n_neg // 2)]
    src = dense_idx if len(dense_idx) else lung_idx
    cs += [src[k] for k in rng.integers(len(src), size=n_neg - n_neg // 2)]
    xs = [crop_centered(img, c, (P,) * 3) for c in cs]
    ys = [crop_centered(mask, c, (P,) * 3) for c in cs]
    return xs, ys, [f"ft-{SEED}-{i}"] * len(cs)


X, Y, IDS = [], [], []
for i in range(N):
    x, y, ids = case(i)
    X += x; Y += y; IDS += ids
    if i % 10 == 0:
        print(f"phantom {i} {time.time()-t0:.0f}s patches={len(X)}", flush=True)
data = TensorSet(torch.from_numpy(np.stack(X))[:, None], torch.from_numpy(np.stack(Y))[:, None].long(), tuple(IDS))
del X, Y
parts = runmod.partition(data, SEED)
print("partition", len(parts.train), len(parts.val), len(parts.test), f"{time.time()-t0:.0f}s", flush=True)


cfg = TrainConfig(epochs=EPOCHS, batch_size=8, n_cases=N, steps_per_epoch=STEPS, patience=EPOCHS, lr=3e-4,
                  seed=SEED, progress=False)
res = runmod.train_model("unet3d", parts, SegmentationTask(seed=SEED, bf16=True), cfg, parse_data("synthetic"), OUT,
                         calibrate=calibrate_probability, init_from=INIT_DIR)
print("history", res.history, flush=True)
card = read_card(OUT, "unet3d", "demo")
card_training = {**card.training, "init_from": f"{INIT_DIR} unet3d-demo sha256 {read_card(INIT_DIR, 'unet3d', 'demo').sha256}",
                 "sampling": f"phantoms with small 4-10 mm nodules ({SMALL_TYPES}: {SMALL_TYPES == 'solid' and '2 solid' or '1 solid, 1 part-solid, 1 ground-glass'}) + 1 drawn; 3 jittered patches per nodule < 10 mm "
                             "(2 otherwise), equal negatives: half random lung, half lung voxels > -400 HU (vessels)",
                 "script": f"INIT_DIR={INIT_DIR} SMALL_TYPES={SMALL_TYPES} scripts/unet_finetune.py " + " ".join(sys.argv[1:])}
from dataclasses import replace
write_card(replace(card, training=card_training), OUT)
print("metrics", card.metrics, f"{time.time()-t0:.0f}s", flush=True)
