"""Fine-tune the malignancy members on 64 mm patches cut from whole synthetic phantoms (sessions 16–17).

Why: session 15's members scored AUC 0.87–0.90 on patch.py's nodule scenes but 0.79 on the
nodules the pipeline detects in evaluate's phantoms; on truth-centred cuts from phantoms they tell
lobulated from round nodules far worse than on patches (recipes README, session 15). So the
training patches here come the way the pipeline's do: a whole phantom in one of calibrate's two
evaluation geometries (EVAL_GEOMETRIES), resampled to 1 mm (preprocess.resample_isotropic, linear),
a 64³ cube cut around each nodule's centre moved by U(±JITTER_MM) per axis (a detector's centroid
is off by about that), windowed with the members' hu_window.

- render: phantoms of seeds PHANTOM_BASE[split] + i, NODULES_PER_PHANTOM nodules each, half of
  them conditioned malignant (label model, by rejection), half benign; written as float16 shards.
  Seeds are far from every other use (calibration 1,000,000+ / 2,000,000+, evaluate 10,000+).
  The population split (session 21) draws its phantoms unconditioned, as evaluate does (its
  geometry, its number of nodules, about a third malignant), to choose members as evaluate scores them.
- cache / tail: the shipped demo DenseNet121-3D, its stem (conv0 … transition1, 80% of its
  convolution work) frozen and its output cached once per patch (training patches after one draw of
  malignancy_gpu.augment, the paper's augmentation); the tail (denseblock2 … classifier, 80% of
  the parameters) fine-tuned on those outputs: cross-entropy on malignancy plus AUX_WEIGHT ×
  cross-entropy on the margin (malignancy_gpu.py's loss) plus SIZE_WEIGHT × the squared error of a
  row regressing the log diameter (session 18's experiment, 0 unless set) plus CALC_WEIGHT and
  TYPE_WEIGHT × cross-entropies on calcification and the nodule type (session 21, 0 unless set; the
  9 extra rows dropped before saving), Adam, weight decay 1e-4, cosine over the steps, batch 16,
  fp32. Why frozen: on a CPU without bf16 kernels a whole training step of the wide DenseNet takes
  seconds; the stem's low-level filters are what transfers, the context is what the tail must
  relearn. The best state by AUC on the validation patches is kept.
- head (session 16): ConvNeXt-Tiny-3D's final layer refitted as a logistic regression.
- convnext (session 17): all of ConvNeXt-Tiny-3D fine-tuned with the same loss, fp32, each batch
  augmented afresh (its whole step costs a tenth of the DenseNet's, so nothing needs freezing).

Every step starts from the members in ai_engine/weights (SHIPPED): to rerun session 16, restore
session 15's there first (git checkout 57573a4 -- ai_engine/weights); to rerun session 17, session
16's (git checkout d5fddf3 -- ai_engine/weights). Session 18 added the size row and changed tail's
seed, so sessions 16–17 rerun bit for bit only with this file as of commit 1a30b1c.
Usage (python -m ai_engine.train.recipes.malignancy_phantom ...; THREADS=n sets torch's threads):
  render DATA_DIR SPLIT FIRST COUNT     phantoms FIRST..FIRST+COUNT-1 of SPLIT (train | val | population)
  cache DATA_DIR CACHE_DIR PART PARTS   every PARTS-th shard from PART (run PART = 0..PARTS-1 at once)
  tail CACHE_DIR OUT.pt STEPS LR        writes OUT.pt (the whole 2-logit member, fp32) and OUT.pt.json
  head DATA_DIR OUT.pt                  ConvNeXt-Tiny-3D with its final layer refitted (OUT.pt, OUT.pt.json)
  convnext DATA_DIR OUT.pt STEPS LR     all of ConvNeXt-Tiny-3D fine-tuned, batches augmented afresh (session 17)
  ship DN.pt CX.pt|- DATA_DIR           into ai_engine/weights: the retrained members (fp16) and both cards"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ai_engine.evaluate.classification import roc_auc
from ai_engine.findings import NoduleType
from ai_engine.models.heads import set_rows
from ai_engine.models.card import ModelCard, load_model, save_checkpoint, write_card
from ai_engine.models.inputs import crop_centered, window01
from ai_engine.models.precision import bf16_fast
from ai_engine.preprocess.resample import resample_isotropic
from ai_engine.preprocess.window import LUNG_WINDOW_HU
from ai_engine.synthetic import Phantom, make_ct_phantom
from ai_engine.synthetic.truth import MORPHOLOGIES, NoduleSpec
from ai_engine.train.calibrate import EVAL_GEOMETRIES, youden_threshold
from ai_engine.train.data import malignancy_set, parse_data
from ai_engine.train.loop import predict
from ai_engine.train.recipes.malignancy_gpu import AUX_WEIGHT, HEADS, N_MAL, WEIGHT_DECAY, augment
from ai_engine.train.run import BF16_TOLERANCE, HELDOUT_SEED
from ai_engine.train.split import patient_folds

PHANTOM_BASE = {"train": 3_000_000, "val": 3_500_000, "population": 3_700_000}
NODULES_PER_PHANTOM = 8
JITTER_MM = 2.0
PATCH, BATCH = 64, 16
# calcified and nodule_type (an index into NODULE_TYPES) since session 21; older shards end at seed
FIELDS = ("malignant", "morphology", "diameter_mm", "seed", "calcified", "nodule_type")
NODULE_TYPES = tuple(NoduleType)
STEM_LAYERS = 6  # conv0, norm0, relu0, pool0, denseblock1, transition1
TRAIN_SHARDS = 160  # session 16 had 80 shards rendered, session 17 160
HEAD_SHARDS = 50  # ConvNeXt's refitted layer: 4,000 patches
# Session 18's experiment (not shipped): an auxiliary row regresses the standardised log diameter
# (8 mm, sd a factor e^0.5) so the pooled features carry size, as the members ranked nodules of one
# margin worse than size alone. SIZE_WEIGHT=1 in the environment turns its loss on; 0, the default,
# trains the row on nothing (it is cut off before saving either way).
SIZE_WEIGHT = float(os.environ.get("SIZE_WEIGHT", "0"))
SIZE_LOG_MEAN, SIZE_LOG_SD = math.log(8.0), 0.5
SIZE_ROW = N_MAL + len(MORPHOLOGIES)  # the final layer's rows: malignancy, margin classes, size,
CALC_ROWS = slice(SIZE_ROW + 1, SIZE_ROW + 3)  # calcified or not,
TYPE_ROWS = slice(CALC_ROWS.stop, CALC_ROWS.stop + len(NODULE_TYPES))  # the nodule type
# Session 21: rows for what the label model weighs beside margin and size, which session 20 found the
# members' features hardly hold: calcification (always benign, AUC 0.51 from the ConvNeXt's pooled
# features) and the nodule type. CALC_WEIGHT / TYPE_WEIGHT in the environment weigh their
# cross-entropies; 0, the default, trains them on nothing.
CALC_WEIGHT = float(os.environ.get("CALC_WEIGHT", "0"))
TYPE_WEIGHT = float(os.environ.get("TYPE_WEIGHT", "0"))
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
# card metrics measured on the weights or the threshold this recipe replaces
STALE_METRICS = ("ensemble_test", "ensemble_test_data", "ensemble_heldout_seed2", "pipeline_malignancy_calibration")
WARM_START_METRICS = ("selection_auc", "heldout_seed2", "heldout_seed2_fp32", "bf16_minus_fp32_max_abs",
                      "history_selection_auc", "test", "val", "history")
SHIPPED = Path(__file__).resolve().parents[2] / "weights"


def phantom_patches(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The 64³ windowed cubes (float16) of one phantom's nodules and their rows of FIELDS."""
    shape, spacing = EVAL_GEOMETRIES[seed % len(EVAL_GEOMETRIES)]
    specs = [NoduleSpec(malignant=bool(j % 2)) for j in range(NODULES_PER_PHANTOM)]
    return cut_patches(make_ct_phantom(seed, shape, spacing, nodule_spec=specs), np.random.default_rng([seed, 16]))


def population_patches(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """As phantom_patches, but the phantom's nodules as evaluate draws them: their number and labels
    unconditioned (about a third malignant, calcified ones among the benign), in evaluate's geometry.
    A selection set scored on these ranks the members as evaluate will (session 20: the conditioned
    patches hold half as many calcified nodules)."""
    shape, spacing = EVAL_GEOMETRIES[1]
    return cut_patches(make_ct_phantom(seed, shape, spacing), np.random.default_rng([seed, 16]))


def cut_patches(phantom: Phantom, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """As the pipeline cuts them: the phantom resampled to 1 mm, a cube around each nodule's centre
    (moved by up to JITTER_MM per axis), windowed."""
    iso = resample_isotropic(phantom.volume, 1.0)
    scale = np.array(phantom.volume.spacing_mm[::-1]) / np.array(iso.spacing_mm[::-1])
    cubes, rows = [], []
    for t in phantom.nodules:
        centre = np.array(t.centre_zyx) * scale + rng.uniform(-JITTER_MM, JITTER_MM, 3)
        cube = crop_centered(iso.hu, centre, (PATCH,) * 3, fill=-1000.0)
        cubes.append(window01(cube, LUNG_WINDOW_HU).astype(np.float16))
        rows.append((int(t.malignant), MORPHOLOGIES.index(t.morphology), t.diameter_mm, phantom.seed,
                     int(t.calcified), NODULE_TYPES.index(NoduleType(t.nodule_type))))
    if not cubes:  # an unconditioned phantom may have none
        return np.empty((0, PATCH, PATCH, PATCH), np.float16), np.empty((0, len(FIELDS)))
    return np.stack(cubes), np.array(rows, np.float64)


def render(out_dir: Path, split: str, first: int, count: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for i in range(first, first + count, 10):
        seeds = range(PHANTOM_BASE[split] + i, PHANTOM_BASE[split] + min(i + 10, first + count))
        parts = [(population_patches if split == "population" else phantom_patches)(s) for s in seeds]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            continue
        path = out_dir / f"{split}-{seeds[0]}.npz"
        np.savez(path, x=np.concatenate([p[0] for p in parts]), rows=np.concatenate([p[1] for p in parts]))
        print(f"{path.name} {time.time() - t0:.0f}s", flush=True)


def _shards(folder: Path, split: str, key: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``key``'s array and the rows of FIELDS of the split's first ``limit`` shards, concatenated."""
    shards = [np.load(p) for p in sorted(folder.glob(f"{split}-*.npz"))[:limit]]
    rows = [s["rows"] for s in shards]
    first = shards[0][key]
    out = np.empty((sum(len(r) for r in rows), *first.shape[1:]), first.dtype)  # filled in place: one copy in memory
    at = 0
    for s, r in zip(shards, rows):
        out[at:at + len(r)] = first if at == 0 else s[key]
        at += len(r)
    return out, np.concatenate(rows)


def load(data_dir: Path, split: str, limit: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
    x, rows = _shards(data_dir, split, "x", limit)
    return torch.from_numpy(x)[:, None], rows


def shipped_densenet(weights: Path) -> nn.Module:
    return load_model("densenet121-3d", weights, "demo")[0]  # sha256 checked, eval mode


def split_at_stem(net: nn.Module) -> tuple[nn.Sequential, nn.Sequential]:
    """(stem, tail): conv0 … transition1 (kept frozen) and denseblock2 … the classifier."""
    parts = list(net.features.children())
    return nn.Sequential(*parts[:STEM_LAYERS]), nn.Sequential(*parts[STEM_LAYERS:], net.class_layers)


def cache(data_dir: Path, cache_dir: Path, part: int, parts: int, weights: Path) -> None:
    """The frozen stem's output (float16) on every validation shard and the first TRAIN_SHARDS
    training shards, shard ``part`` of every ``parts`` (run the parts side by side); training
    patches get one draw of the augmentation first."""
    stem, _ = split_at_stem(shipped_densenet(weights))
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(data_dir.glob("val-*.npz")) + sorted(data_dir.glob("train-*.npz"))[:TRAIN_SHARDS]
    torch.manual_seed(part)
    t0 = time.time()
    for f in files[part::parts]:
        shard = np.load(f)
        x = torch.from_numpy(shard["x"]).float()[:, None]
        if f.name.startswith("train"):
            x = augment(x)
        with torch.no_grad():
            h = torch.cat([stem(x[i:i + 8]) for i in range(0, len(x), 8)])
        np.savez(cache_dir / f.name, h=h.half().numpy(), rows=shard["rows"])
        print(f"{f.name} {time.time() - t0:.0f}s", flush=True)


def _cached(cache_dir: Path, split: str) -> tuple[torch.Tensor, np.ndarray]:
    h, rows = _shards(cache_dir, split, "h")
    return torch.from_numpy(h), rows


@torch.no_grad()
def _malignant_p(model: nn.Module, x: torch.Tensor, batch: int = 8, bf16: bool = False) -> np.ndarray:
    """P(malignant): the softmax of the first N_MAL logits (a widened head's margin rows ignored),
    by loop.predict (eval mode, fp32 unless ``bf16``)."""
    softmax = (lambda t: torch.softmax(t[:, :N_MAL], 1))
    return predict(model, x, torch.device("cpu"), batch, transform=softmax, bf16=bf16).numpy()[:, 1]


def _probabilities(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """P(malignant) during training: the model goes back to train mode afterwards."""
    p = _malignant_p(model, x, batch=40)
    model.train()
    return p


def targets(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(malignant, margin class, calcified, type index [n, 4], the size row's target [n]) from rows
    of FIELDS; calcified and type are -1 (ignored) in shards written before session 21."""
    y = np.full((len(rows), 4), -1, np.int64)
    y[:, :2] = rows[:, :2]
    if rows.shape[1] == len(FIELDS):
        y[:, 2] = rows[:, FIELDS.index("calcified")]
        y[:, 3] = rows[:, FIELDS.index("nodule_type")]
    elif CALC_WEIGHT or TYPE_WEIGHT:
        raise SystemExit("CALC_WEIGHT / TYPE_WEIGHT need shards with calcified and nodule_type (render them again)")
    size = (np.log(rows[:, FIELDS.index("diameter_mm")]) - SIZE_LOG_MEAN) / SIZE_LOG_SD
    return torch.from_numpy(y), torch.from_numpy(size.astype(np.float32))


def aux_loss(logits: torch.Tensor, y: torch.Tensor, size: torch.Tensor, size_weight: float | None = None,
             calc_weight: float | None = None, type_weight: float | None = None) -> torch.Tensor:
    """The auxiliary rows' loss beside the malignancy cross-entropy (``y`` as ``targets`` gives it):
    AUX_WEIGHT × margin cross-entropy + the weighted size, calcification and type terms (a weight
    not given is the module's; a term of weight 0 is left out, so old shards' -1 never reach a
    cross-entropy)."""
    size_weight = SIZE_WEIGHT if size_weight is None else size_weight
    calc_weight = CALC_WEIGHT if calc_weight is None else calc_weight
    type_weight = TYPE_WEIGHT if type_weight is None else type_weight
    ce = nn.functional.cross_entropy
    loss = AUX_WEIGHT * ce(logits[:, N_MAL:SIZE_ROW], y[:, 1])
    if size_weight:
        loss = loss + size_weight * nn.functional.mse_loss(logits[:, SIZE_ROW], size)
    if calc_weight:
        loss = loss + calc_weight * ce(logits[:, CALC_ROWS], y[:, 2])
    if type_weight:
        loss = loss + type_weight * ce(logits[:, TYPE_ROWS], y[:, 3])
    return loss


def widen(net: nn.Module) -> None:
    """The final layer with the auxiliary rows after the N_MAL malignancy logits: the margin
    classes, the size, calcification, the type."""
    set_rows(net, TYPE_ROWS.stop)


def _fine_tune(net: nn.Module, trained: nn.Module, logits_of: Callable[[torch.Tensor], torch.Tensor],
               y: torch.Tensor, size: torch.Tensor, val_p: Callable[[], np.ndarray], vy: np.ndarray, steps: int,
               lr: float) -> dict:
    """Train ``trained`` (part or all of ``net``, already ``widen``-ed) on batches of BATCH indices
    into ``y`` and ``size`` (``targets``): malignancy cross-entropy + ``aux_loss``, Adam, weight decay, cosine
    over ``steps``. Returns the history, and ``net``'s 2-logit state at the best validation AUC
    (None if it never beat the start)."""
    history = [{"step": 0, "val_auc": round(roc_auc(vy, val_p()), 4)}]
    print("train", len(y), "val", len(vy), history[0], flush=True)
    opt = torch.optim.Adam(trained.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    best, t0, every = (history[0]["val_auc"], None, 0), time.time(), max(50, steps // 20)
    ce = nn.functional.cross_entropy
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))
        idx = torch.randint(0, len(y), (BATCH,))
        logits = logits_of(idx)
        loss = ce(logits[:, :N_MAL], y[idx, 0]) + aux_loss(logits, y[idx], size[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            auc = roc_auc(vy, val_p())
            history.append({"step": step, "val_auc": round(auc, 4), "s": round(time.time() - t0)})
            print(history[-1], flush=True)
            if auc > best[0]:
                best = (auc, {n: (v[:N_MAL] if n.startswith(HEADS) else v).clone()
                              for n, v in net.state_dict().items()}, step)
    return {"best_state": best[1], "best_step": best[2], "best_val_auc": round(best[0], 4), "history": history}


def _save(result: dict, out: Path, summary: dict) -> dict:
    """The best state (fp32) to ``out`` if there is one, and the run's summary to ``out``.json."""
    state = result.pop("best_state")
    if state is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({n: v.float() for n, v in state.items()}, out)
    summary = {**summary, **result}
    Path(f"{out}.json").write_text(json.dumps(summary, indent=1))
    return summary


def train_tail(cache_dir: Path, out: Path, steps: int, lr: float, weights: Path) -> dict:
    """Fine-tune the shipped DenseNet's tail on the cached stem outputs; save the whole network
    (frozen stem + best tail by validation AUC) as the registry's 2-logit member."""
    h, rows = _cached(cache_dir, "train")
    vh, vrows = _cached(cache_dir, "val")
    torch.manual_seed(18)  # session 18 (sessions 16–17: 16, without the size row)
    net = shipped_densenet(weights)
    widen(net)
    _, tail = split_at_stem(net)
    tail.train()
    result = _fine_tune(net, tail, lambda idx: tail(h[idx].float()), *targets(rows),
                        lambda: _probabilities(tail, vh), vrows[:, 0].astype(int), steps, lr)
    return _save(result, out, {"steps": steps, "lr": lr, "size_weight": SIZE_WEIGHT,
                               "calc_weight": CALC_WEIGHT, "type_weight": TYPE_WEIGHT, "train_patches": len(h),
                               "val_patches": len(vh)})


def train_convnext(data_dir: Path, out: Path, steps: int, lr: float, weights: Path) -> dict:
    """Fine-tune all of the shipped ConvNeXt-Tiny-3D on the training patches, each batch freshly
    augmented (malignancy_gpu.augment); save the best state by validation AUC (2 logits)."""
    x, rows = load(data_dir, "train")
    vx, vrows = load(data_dir, "val")
    torch.manual_seed(17)
    net, _ = load_model("convnext-tiny-3d", weights, "demo")
    net = net.float()
    widen(net)
    net.train()
    result = _fine_tune(net, net, lambda idx: net(augment(x[idx].float())), *targets(rows),
                        lambda: _probabilities(net, vx), vrows[:, 0].astype(int), steps, lr)
    return _save(result, out, {"steps": steps, "lr": lr, "size_weight": SIZE_WEIGHT,
                               "calc_weight": CALC_WEIGHT, "type_weight": TYPE_WEIGHT, "train_patches": len(x),
                               "val_patches": len(vx)})


def pooled_features(model: nn.Module, head: nn.Linear, x: torch.Tensor) -> np.ndarray:
    """What ``head`` (the final linear layer) sees for each patch of ``x``."""
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    try:
        predict(model, x, torch.device("cpu"))
    finally:
        hook.remove()
    return torch.cat(seen).double().numpy()


def fit_logistic(f: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (L-BFGS) on standardised ``f``; returns (w, b) on raw ``f``."""
    mu, sd = f.mean(0), f.std(0) + 1e-6
    z, t = torch.from_numpy((f - mu) / sd), torch.from_numpy(y.astype(np.float64))
    w = torch.zeros(f.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ w + b, t) + l2 * (w ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    w_raw = w.detach().numpy() / sd
    return w_raw, float(b.item() - (w_raw * mu).sum())


def set_logistic(head: nn.Linear, w: np.ndarray, b: float) -> None:
    """Make a 2-logit layer's softmax the regression's sigmoid(f·w + b): logits (−s/2, s/2)."""
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.stack([-w / 2, w / 2])).float())
        head.bias.copy_(torch.tensor([-b / 2, b / 2], dtype=torch.float32))


def refit_head(data_dir: Path, out: Path, weights: Path, folds: int = 5) -> dict:
    """ConvNeXt-Tiny-3D with only its final linear layer refitted on the first HEAD_SHARDS training
    shards (no augmentation): logistic regression on what the layer sees, the L2 weight chosen by
    ``folds``-fold cross-validated AUC (folds by phantom); written as a 2-logit layer (softmax = the regression)."""
    model, _ = load_model("convnext-tiny-3d", weights, "demo")
    x, rows = load(data_dir, "train", HEAD_SHARDS)
    y = rows[:, 0].astype(int)
    f = pooled_features(model, model.head, x)
    split = patient_folds([str(int(s)) for s in rows[:, FIELDS.index("seed")]], folds, seed=16)  # a phantom's nodules in one fold
    cv = {}
    for l2 in L2_GRID:
        scores = np.empty(len(y))
        for fit, held in split:
            w, b = fit_logistic(f[fit], y[fit], l2)
            scores[held] = f[held] @ w + b
        cv[l2] = round(roc_auc(y, scores), 4)
    l2 = max(cv, key=cv.get)
    set_logistic(model.head, *fit_logistic(f, y, l2))
    torch.save({n: v.float() for n, v in model.state_dict().items()}, out)
    summary = {"train_patches": len(y), "cv_auc_by_l2": {str(k): v for k, v in cv.items()}, "l2": l2, "folds": folds}
    Path(f"{out}.json").write_text(json.dumps(summary, indent=1))
    return summary


def ship(dn_pt: Path, cx_pt: Path | None, data_dir: Path, weights: Path) -> dict:
    """Ship the fine-tuned DenseNet and, given ``cx_pt``, the ConvNeXt with its refitted final layer
    (fp16 weights, cards; a member not given stays as shipped) and calibrate the ensemble's
    malignant threshold (Youden's J) on the validation phantoms' patches. Both cards get the
    threshold and the ensemble's metrics. bf16 is off for retrained weights unless this CPU has
    bf16 kernels to measure it against fp32 (_decide_bf16)."""
    members, cards = {}, {}
    for name in ("densenet121-3d", "convnext-tiny-3d"):
        members[name], cards[name] = load_model(name, weights, "demo")
    changed = {"densenet121-3d": dn_pt, "convnext-tiny-3d": cx_pt}
    for name, path in changed.items():
        if path is not None:
            members[name].load_state_dict(torch.load(path, weights_only=True))
    vx, vrows = load(data_dir, "val")
    vy = vrows[:, 0].astype(int)
    held = malignancy_set(parse_data("synthetic"), 400, HELDOUT_SEED)
    p = {k: {n: _malignant_p(m, x) for n, m in members.items()}
         for k, x in (("val", vx), ("held", held.x))}
    ys = {"val": vy, "held": held.y.numpy()}
    auc = {k: {**{n: round(roc_auc(ys[k], v), 4) for n, v in p[k].items()},
               "ensemble": round(roc_auc(ys[k], np.mean(list(p[k].values()), 0)), 4)} for k in p}
    threshold = youden_threshold(vy, np.mean(list(p["val"].values()), 0))
    val_data = (f"{len(vy)} patches of {len(vy) // NODULES_PER_PHANTOM} validation phantoms (seeds "
                f"{PHANTOM_BASE['val']}+, half malignant), cut as the pipeline cuts them")
    calibration = {"rule": "Youden's J on the validation phantoms' patches", "data": val_data,
                   "malignant_threshold": threshold, "ensemble_auc": auc["val"]["ensemble"]}
    ensemble = {"phantom_val": auc["val"], "heldout_seed2_patch_scenes": auc["held"],
                "heldout_seed2_data": "malignancy_set('synthetic', 400, seed=2): patch.py scenes, never trained on"}
    for name, card in cards.items():
        spec = replace(card.input_spec, thresholds={**card.input_spec.thresholds, "malignant": threshold})
        kept = {k: v for k, v in card.metrics.items() if k not in STALE_METRICS}
        metrics = {**kept, "phantom_val_auc": auc["val"][name], "phantom_val_data": val_data,
                   "heldout_seed2_patch_scenes_auc": auc["held"][name], "ensemble": ensemble,
                   "ensemble_members": list(cards), "pipeline_malignancy_calibration": calibration}
        if changed[name] is None:
            write_card(replace(card, input_spec=spec, metrics=metrics), weights)
            continue
        summary = json.loads(Path(f"{changed[name]}.json").read_text())
        training = {"fine_tune": _fine_tune_record(name, summary), "warm_start": card.training,
                    "warm_start_metrics": {k: v for k, v in card.metrics.items() if k in WARM_START_METRICS}}
        if "history" in summary:
            metrics["history_phantom_val_auc"] = summary["history"]
        card = ModelCard(name=name, architecture=card.architecture, profile="demo", data_source="synthetic",
                         input_spec=replace(spec, bf16_autocast=False), training=training,
                         metrics={k: v for k, v in metrics.items() if k not in WARM_START_METRICS})
        save_checkpoint(members[name], card, weights, half=True)
    shipped = {n: load_model(n, weights, "demo") for n in cards}  # as shipped: fp16, sha256 checked
    fp32 = {n: _malignant_p(m, vx) for n, (m, _) in shipped.items()}
    result = {"auc": auc, "threshold": threshold,
              "fp16_ensemble_phantom_val_auc": round(roc_auc(vy, np.mean(list(fp32.values()), 0)), 4)}
    if bf16_fast("cpu"):
        result["bf16"] = _decide_bf16(shipped, {n for n, path in changed.items() if path is not None}, fp32, vx, vy, weights)
    return result


def _decide_bf16(shipped: dict, retrained: set[str], fp32: dict[str, np.ndarray], vx: torch.Tensor, vy: np.ndarray,
                 weights: Path) -> dict:
    """bf16 autocast on for the retrained members if every member's and the ensemble's validation
    AUC moves by at most BF16_TOLERANCE against fp32 (the cards record the shifts)."""
    bf16 = {n: _malignant_p(m, vx, bf16=True) for n, (m, _) in shipped.items()}
    moved = {n: roc_auc(vy, bf16[n]) - roc_auc(vy, fp32[n]) for n in fp32}
    moved["ensemble"] = roc_auc(vy, np.mean(list(bf16.values()), 0)) - roc_auc(vy, np.mean(list(fp32.values()), 0))
    delta = max(abs(v) for v in moved.values())
    adopt = bool(delta <= BF16_TOLERANCE)
    for name in retrained:
        card = shipped[name][1]
        write_card(replace(card, input_spec=replace(card.input_spec, bf16_autocast=adopt),
                           metrics={**card.metrics, "bf16_minus_fp32_max_abs": round(delta, 4),
                                    "bf16_minus_fp32_phantom_val_auc": {k: round(v, 4) for k, v in moved.items()}}),
                   weights)
    return {"adopted": adopt, "max_abs": round(delta, 4), "auc_shift": {k: round(v, 4) for k, v in moved.items()}}


def _fine_tune_record(name: str, summary: dict) -> dict:
    common = {"device": "cpu (2 cores, fp32)", "script": "recipes/malignancy_phantom.py (recipes README, sessions 16–17)"}
    if name == "convnext-tiny-3d" and "l2" in summary:
        return {**common, "trained": "the final linear layer only (logistic regression on what it sees)",
                "data": f"{summary['train_patches']} patches of the first training phantoms (seeds "
                        f"{PHANTOM_BASE['train']}+, half malignant), cut as the pipeline cuts them, not augmented",
                "l2": summary["l2"], "cv_auc_by_l2": summary["cv_auc_by_l2"], "folds": summary["folds"]}
    data = (f"{summary['train_patches']} patches of {summary['train_patches'] // NODULES_PER_PHANTOM} training "
            f"phantoms (seeds {PHANTOM_BASE['train']}+, half malignant), each cut as the pipeline cuts it")
    if name == "convnext-tiny-3d":
        part = {"data": f"{data}, every batch freshly augmented (rotation ≤30°, flips, noise 0.01)",
                "trained": "the whole network"}
    else:
        part = {"data": f"{data} and augmented once (rotation ≤30°, flips, noise 0.01)",
                "frozen": "conv0 … transition1 (the stem), as shipped", "trained": "denseblock2 … classifier"}
    return {**common, **part,
            "loss": (f"cross-entropy on malignancy + {AUX_WEIGHT} × cross-entropy on the margin"
                     + (f" + {summary['size_weight']} × squared error of the standardised log diameter"
                        if summary.get("size_weight") else "")
                     + " (auxiliary rows, dropped before saving)"),
            "optimizer": "Adam", "lr": summary["lr"], "weight_decay": WEIGHT_DECAY, "batch_size": BATCH,
            "scheduler": "cosine annealing over the steps", "steps": summary["steps"],
            "selection": f"best validation AUC of every {summary['history'][1]['step']} steps (step {summary['best_step']})"}


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.set_flush_denormal(True)  # fp32 ConvNeXt training slowed 7× after ~250 steps without it (session 18)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "render":
        render(Path(args[0]), args[1], int(args[2]), int(args[3]))
    elif command == "cache":
        cache(Path(args[0]), Path(args[1]), int(args[2]), int(args[3]), SHIPPED)
    elif command == "convnext":
        print(json.dumps(train_convnext(Path(args[0]), Path(args[1]), int(args[2]), float(args[3]), SHIPPED)))
    elif command == "head":
        print(json.dumps(refit_head(Path(args[0]), Path(args[1]), SHIPPED)))
    elif command == "ship":
        cx = Path(args[1]) if args[1] != "-" else None
        print(json.dumps(ship(Path(args[0]), cx, Path(args[2]), SHIPPED)))
    else:
        print(json.dumps(train_tail(Path(args[0]), Path(args[1]), int(args[2]), float(args[3]), SHIPPED)))
