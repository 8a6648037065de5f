"""Turn malignancy_gpu.py's output into shipped members: weights (fp16) + model cards, scored on the CPU.

Usage: python malignancy_gpu_cards.py GPU_OUT OUT_DIR [DENSENET_FILE]
GPU_OUT holds <member>.pt and summary.json from malignancy_gpu.py; DENSENET_FILE (default
densenet121-3d.pt) names the state to ship as densenet121-3d (e.g. densenet121-3d-wide.pt once the
demo profile is that width). Each card records the GPU run, the member's AUC on the selection set,
its fp32 and bf16 AUC on 400 held-out patches (malignancy_set seed 2; bf16 kept where they differ by
≤ 0.005, as run.save_trained), and the ensemble's metrics on that set and on the test partition of
malignancy_set(3000, seed 12) (split seed 11), patches no member trained on. The pipeline's
malignant threshold is then calibrated by ``calibrate_malignancy`` (recipes README)."""
import json, sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(2)
from ai_engine.models import registry
from ai_engine.models.card import ModelCard, load_model, save_checkpoint, write_card
from ai_engine.train.classification import _record_ensemble
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import malignancy_set, parse_data
from ai_engine.train.loop import predict
from ai_engine.train.run import BF16_TOLERANCE, HELDOUT_SEED, partition
from ai_engine.train.tasks import classification_metrics

GPU_OUT, OUT = Path(sys.argv[1]), Path(sys.argv[2])
FILES = {"densenet121-3d": sys.argv[3] if len(sys.argv) > 3 else "densenet121-3d.pt", "convnext-tiny-3d": "convnext-tiny-3d.pt"}
summary = json.loads((GPU_OUT / "summary.json").read_text())
source, cpu = parse_data("synthetic"), torch.device("cpu")
held = malignancy_set(source, 400, HELDOUT_SEED)
softmax = lambda t: torch.softmax(t.float(), 1)
OUT.mkdir(parents=True, exist_ok=True)
for name, file in FILES.items():
    model = registry.build(name, "demo")
    model.load_state_dict(torch.load(GPU_OUT / file, map_location="cpu"))
    run = summary["members"][Path(file).stem]
    scored = {bf16: classification_metrics(predict(model, held.x, cpu, transform=softmax, bf16=bf16).numpy(), held.y.numpy())
              for bf16 in (False, True)}
    delta = max(abs(scored[True][k] - scored[False][k]) for k in scored[False])
    spec = replace(registry.entry(name).spec, bf16_autocast=bool(delta <= BF16_TOLERANCE))
    training = {"script": f"recipes/malignancy_gpu.py OUT {summary['train_seconds']:g} 14 (GPU), then "
                          f"recipes/malignancy_gpu_cards.py OUT DIR {FILES['densenet121-3d']}",
                "device": summary["device"], "from_scratch": True, "train_seconds": summary["train_seconds"],
                "steps": summary["steps"], "patches_rendered": summary["patches_rendered"],
                "batch_size": summary["batch"], "lr": run["lr"], "optimizer": "Adam", "weight_decay": 1e-4,
                "scheduler": "cosine annealing over the time budget", "bf16": True, "profile": "demo",
                "loss": "cross-entropy on malignancy + 1.0 × cross-entropy on the margin (auxiliary head, dropped before saving)",
                "augmentation": "rotation ≤30° about each axis (p .5), flips, Gaussian noise std 0.01 (p .5), on the GPU",
                "data": "a stream of fresh patches (malignancy_set's recipe, stream seed 31), half rendered at 1 mm, "
                        "half on a scanner grid (x = y 0.6–1.3 mm, z 1.0–2.0 mm) resampled to 1 mm",
                "selection": f"the best of every 30 s on 400 patches of malignancy_set seed 33 (step {run['best_step']})",
                "reproducibility": "seeded, but the steps and the order of the patches follow the GPU's and the "
                                   "workers' timing: a rerun trains an equivalent, not an identical, network"}
    metrics = {"selection_auc": run["select_auc"], "heldout_seed2": scored[spec.bf16_autocast],
               "heldout_seed2_fp32": scored[False], "bf16_minus_fp32_max_abs": delta,
               "history_selection_auc": [{"t": h["t"], "steps": h["steps"], "auc": h[Path(file).stem]} for h in summary["history"]]}
    card = ModelCard(name=name, architecture=registry.entry(name).architecture, profile="demo", data_source=source.name,
                     input_spec=spec, training=training, metrics=metrics)
    save_checkpoint(model, card, OUT, half=True)
    print(name, scored[False]["auc"], scored[True]["auc"], flush=True)

members = [load_model(n, OUT, "demo") for n in FILES]  # as shipped: fp16 weights, sha256 checked
probs = {n: predict(m, held.x, cpu, transform=softmax).numpy() for (m, _), n in zip(members, FILES)}
ens = classification_metrics(np.mean(list(probs.values()), axis=0), held.y.numpy())
res = {f"{n}_auc": classification_metrics(p, held.y.numpy())["auc"] for n, p in probs.items()}
res.update(ensemble_auc=ens["auc"], ensemble_accuracy=ens["accuracy"],
           data="malignancy_set('synthetic', 400, seed=2): 400 patches never trained on")
test = partition(malignancy_set(source, 3000, 12), 11).test
cards = _record_ensemble(members, test, OUT, TrainConfig(seed=11, n_cases=3000))
for c in cards:
    write_card(replace(c, metrics={**c.metrics, "ensemble_heldout_seed2": res, "ensemble_test_data":
                                   "test partition (450 patches) of malignancy_set('synthetic', 3000, seed=12), patient split seed 11"}), OUT)
print(json.dumps({"ensemble_test": cards[0].metrics["ensemble_test"], "heldout_seed2": res}, indent=1))
