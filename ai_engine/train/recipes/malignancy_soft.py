"""Fine-tune a malignancy ensemble member on the label model's posterior (soft targets).

The shipped members learned from the sampled label, a coin flip on the label model's probability:
with p near 0.5 the same picture is called malignant or benign at random, and the networks learned
size, density and spiculation at a fraction of their weight (recipes README, session 12). A phantom
also knows P(malignant | everything drawn about it) exactly (``labels.posterior_malignant``: AUC
0.951 against the sampled labels, the label model's ceiling), so here each patch's target is that
probability and the loss is the cross-entropy against it. Synthetic phantoms only: a real dataset
has only its labels. Validation and the held-out score use the sampled labels, as evaluate does.

Usage: [OUT_ROOT=DIR] [CACHE=FILE.pt] python malignancy_soft.py NAME INIT_DIR N_CASES EPOCHS STEPS LR [THREADS]
Data seed 13 (no patch the shipped members were trained on, seed 11); scored on 400 fresh patches
(malignancy_set seed 2). Writes OUT_ROOT/soft-NAME-N_CASES-EPOCHSxSTEPS-LR/ (weights, card,
heldout_seed2_probs.npy)."""
import os, sys, time
from dataclasses import dataclass
from pathlib import Path
import logging
import numpy as np, torch
from torch import nn
THREADS = int(sys.argv[7]) if len(sys.argv) > 7 else 2
torch.set_num_threads(THREADS)
torch.set_flush_denormal(True)  # see malignancy_margin.py: fp32 ConvNeXt's backward slows 10× on denormals
from ai_engine.models.inputs import window01
from ai_engine.models.registry import LUNG_WINDOW_HU
from ai_engine.synthetic import make_nodule_patch
from ai_engine.synthetic.labels import posterior_malignant
from ai_engine.train import run as runmod
from ai_engine.train.data import case_seed, cached_set, parse_data
from ai_engine.train.loop import TensorSet, predict
from ai_engine.train.tasks import ClassificationTask, classification_metrics

name, INIT = sys.argv[1], Path(sys.argv[2])
N, epochs, steps, lr = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
OUT = Path(os.environ.get("OUT_ROOT", "recipes-out")) / f"soft-{name}-{N}-{epochs}x{steps}-{lr}"
SEED = 13


def soft_set(n_cases: int, seed: int) -> TensorSet:
    """malignancy_set's patches (half conditioned malignant), y [N, 2] = (sampled label, posterior)."""
    xs, ys, ids = [], [], []
    for i in range(n_cases):
        patch, truth = make_nodule_patch(seed=case_seed(seed, i), malignant=bool(i % 2))
        xs.append(window01(patch, LUNG_WINDOW_HU).astype(np.float16))
        ys.append([float(truth.malignant), posterior_malignant(truth)])
        ids.append(f"synthetic-{seed}-{i}")
    return TensorSet(torch.from_numpy(np.stack(xs))[:, None], torch.tensor(ys), tuple(ids))


@dataclass
class SoftTargetTask(ClassificationTask):
    """Cross-entropy against the posterior (y[:, 1]); validation scores the sampled label (y[:, 0])."""

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q = y[:, 1].float()
        logp = torch.log_softmax(logits, 1)
        return -(q * logp[:, 1] + (1 - q) * logp[:, 0]).mean()

    def describe(self) -> str:
        return "cross-entropy against the label model's posterior P(malignant | the drawn attributes)"

    def evaluate(self, model: nn.Module, data: TensorSet, device: torch.device) -> dict[str, float]:
        prob = predict(model, data.x, device, transform=lambda t: torch.softmax(t, 1), bf16=self.bf16).numpy()
        return classification_metrics(prob, data.y[:, 0].long().numpy())


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # per-epoch AUC
t0 = time.time()
src = parse_data("synthetic")
data = cached_set(os.environ.get("CACHE"), lambda: soft_set(N, SEED))
print("data", len(data), f"{time.time()-t0:.0f}s", flush=True)
tuned = runmod.finetune_member(name, INIT, data, lambda bf16: SoftTargetTask(spatial_dims=3, n_classes=2, seed=SEED, bf16=bf16),
                               n_cases=N, epochs=epochs, steps=steps, lr=lr, seed=SEED, threads=THREADS)
print("history", [(h["epoch"], round(h["loss"], 3), round(h["auc"], 3)) for h in tuned.result.history], flush=True)
notes = {"script": f"recipes/malignancy_soft.py {name} {INIT} {N} {epochs} {steps} {lr} {THREADS}",
         "targets": "the label model's posterior P(malignant | drawn attributes), synthetic phantoms only "
                    "(ai_engine.synthetic.labels.posterior_malignant); metrics against the sampled labels"}
out, heldout = runmod.save_finetuned(name, tuned, src, OUT, INIT, notes)
print("metrics", out.card.metrics["validation"], out.card.metrics["test"], f"{time.time()-t0:.0f}s", flush=True)
print("heldout seed2", heldout, f"{time.time()-t0:.0f}s", flush=True)
