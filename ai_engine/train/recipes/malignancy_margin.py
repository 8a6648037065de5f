"""Fine-tune a malignancy ensemble member with an auxiliary margin loss, then ship it as the plain
2-class model.

Trained on the label alone, the classifiers learned size, density and calcification but hardly any
margin (weights README: held-out AUC at the no-margin ceiling of the label model). Here the final
linear layer gets 3 more outputs during training, scored against the phantom's exact margin (round /
lobulated / spiculated) with weight AUX_WEIGHT. The shared features must then encode the margin.
Before saving, the extra rows are dropped: the shipped network is the registry's architecture, and
its 2 logits are exactly the trained ones.

Usage: [OUT_ROOT=DIR] [CACHE=FILE.pt] python malignancy_margin.py NAME INIT_DIR N_CASES EPOCHS STEPS LR AUX_WEIGHT [THREADS]
Data seed 11 (as malignancy_train.py); scored on 400 fresh patches (malignancy_set seed 2).
Writes OUT_ROOT/margin-NAME-N_CASES-EPOCHSxSTEPS-LR-AUX_WEIGHT/ (weights, card, heldout_seed2_probs.npy)."""
import os, sys, time
from dataclasses import dataclass
from pathlib import Path
import logging
import torch
from torch import nn
THREADS = int(sys.argv[8]) if len(sys.argv) > 8 else 2
torch.set_num_threads(THREADS)
# fp32 ConvNeXt's backward slowed 10× after 5 epochs (28 s → 5 min an epoch): denormal gradients
torch.set_flush_denormal(True)
from ai_engine.models.heads import set_rows
from ai_engine.synthetic.truth import MORPHOLOGIES
from ai_engine.train import run as runmod
from ai_engine.train.data import cached_set, malignancy_set, parse_data
from ai_engine.train.loop import TensorSet, predict
from ai_engine.train.tasks import ClassificationTask, classification_metrics

name, INIT = sys.argv[1], Path(sys.argv[2])
N, epochs, steps, lr, aux = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
OUT = Path(os.environ.get("OUT_ROOT", "recipes-out")) / f"margin-{name}-{N}-{epochs}x{steps}-{lr}-{aux}"
SEED, N_MAL = 11, 2
# the shipped members were trained on malignancy_set seed 11 too, with another split (3,000 cases), so
# this run's validation and test partitions hold patches the starting weights were trained on
OVERLAP = ("validation and test partitions overlap the patches the init weights were trained on "
           "(malignancy_set seed 11, other split); held-out figures: metrics.ensemble_heldout_seed2 and pulmonode evaluate")


@dataclass
class MarginAuxTask(ClassificationTask):
    """Cross-entropy on malignancy (logits 0–1) + aux_weight × cross-entropy on margin (logits 2–4);
    validation scores the malignancy logits only, so early stopping follows malignancy AUC."""
    aux_weight: float = 0.5

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = nn.functional.cross_entropy
        return ce(logits[:, :N_MAL], y[:, 0]) + self.aux_weight * ce(logits[:, N_MAL:], y[:, 1])

    def describe(self) -> str:
        return f"cross-entropy on malignancy + {self.aux_weight} × cross-entropy on the margin (auxiliary head)"

    def evaluate(self, model: nn.Module, data: TensorSet, device: torch.device) -> dict[str, float]:
        prob = predict(model, data.x, device, transform=lambda t: torch.softmax(t[:, :N_MAL], 1), bf16=self.bf16).numpy()
        return classification_metrics(prob, data.y[:, 0].numpy())


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # per-epoch AUC
t0 = time.time()
src = parse_data("synthetic")
data = cached_set(os.environ.get("CACHE"), lambda: malignancy_set(src, N, SEED, with_margin=True))
print("data", len(data), f"{time.time()-t0:.0f}s", flush=True)
tuned = runmod.finetune_member(
    name, INIT, data, lambda bf16: MarginAuxTask(spatial_dims=3, n_classes=N_MAL, seed=SEED, bf16=bf16, aux_weight=aux),
    n_cases=N, epochs=epochs, steps=steps, lr=lr, seed=SEED, threads=THREADS,
    prepare=lambda m: set_rows(m, N_MAL + len(MORPHOLOGIES)))
print("history", [(h["epoch"], round(h["loss"], 3), round(h["auc"], 3)) for h in tuned.result.history], flush=True)
set_rows(tuned.model, N_MAL)
notes = {"script": f"recipes/malignancy_margin.py {name} {INIT} {N} {epochs} {steps} {lr} {aux} {THREADS}",
         "auxiliary_margin_loss": {"weight": aux, "classes": list(MORPHOLOGIES), "dropped_before_saving": True},
         "held_out_caveat": OVERLAP}
out, heldout = runmod.save_finetuned(name, tuned, src, OUT, INIT, notes)
print("metrics", out.card.metrics["validation"], out.card.metrics["test"], f"{time.time()-t0:.0f}s", flush=True)
print("heldout seed2", heldout, f"{time.time()-t0:.0f}s", flush=True)
