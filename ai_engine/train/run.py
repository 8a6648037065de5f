"""Train one registered model on a TensorSet: split, (cross-validate), fit, test, save with its card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ai_engine.models import registry
from ai_engine.models.card import ModelCard, load_model, read_card, save_checkpoint
from ai_engine.models.precision import bf16_fast
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import DataSource
from ai_engine.train.loop import FitResult, Task, TensorSet, fit, predict
from ai_engine.train.split import patient_folds, patient_split


BF16_TOLERANCE = 0.005
Calibrator = Callable[[torch.nn.Module, TensorSet, torch.device], dict[str, float]]


@dataclass(frozen=True)
class TrainResult:
    card: ModelCard
    weights_path: Path
    model: torch.nn.Module
    test: TensorSet  # the held-out partition, for callers that compute more metrics
    history: tuple[dict[str, float], ...]


@dataclass(frozen=True, eq=False)
class Partitions:
    train: TensorSet
    val: TensorSet
    test: TensorSet


def partition(data: TensorSet, seed: int) -> Partitions:
    """Patient-level 70/15/15."""
    tr, va, te = patient_split(data.patient_ids, seed)
    return Partitions(data.subset(tr), data.subset(va), data.subset(te))


@dataclass(frozen=True, eq=False)
class Finetuned:
    model: torch.nn.Module  # in place, with the best-on-validation state loaded
    result: FitResult
    parts: Partitions
    config: TrainConfig


def bf16_training_safe(name: str, device: str) -> bool:
    """False for ConvNeXt-Tiny-3D on a CPU: there a bf16 autocast backward pass of it aborted the
    process (torch 2.13, recipes README, session 19)."""
    return not (name == "convnext-tiny-3d" and torch.device(device).type == "cpu")


def finetune_member(name: str, init_dir: Path, data: TensorSet, make_task: Callable[[bool], Task], *, n_cases: int,
                    epochs: int, steps: int, lr: float, seed: int, threads: int,
                    prepare: Callable[[torch.nn.Module], None] | None = None) -> Finetuned:
    """What the malignancy fine-tuning recipes share: the patient split, bf16 where it is fast
    (ConvNeXt-Tiny-3D in fp32: ``bf16_training_safe``), batch 16 without early stopping, the
    member warm-started from ``init_dir``, ``prepare`` (e.g. widen its head), then fit.
    ``make_task(bf16)`` builds the task."""
    parts = partition(data, seed)
    bf16 = bf16_fast(torch.device("cpu")) and bf16_training_safe(name, "cpu")
    config = TrainConfig(epochs=epochs, batch_size=16, n_cases=n_cases, steps_per_epoch=steps, lr=lr,
                         patience=epochs, seed=seed, progress=False, bf16=bf16, num_threads=threads)
    model = load_model(name, init_dir, "demo")[0].float().train()
    if prepare is not None:
        prepare(model)
    torch.manual_seed(seed)
    result = fit(model, parts.train, parts.val, make_task(bf16), config, label=name)
    return Finetuned(model, result, parts, config)


HELDOUT_SEED = 2  # malignancy_set(seed=2): patches no recipe trains on


def save_finetuned(name: str, tuned: Finetuned, source: DataSource, out_dir: Path, init_dir: Path, notes: dict,
                   heldout_cases: int = 400) -> tuple[TrainResult, dict[str, float]]:
    """Save a ``finetune_member`` result as the plain 2-class member (metrics on y[:, 0], the sampled
    label, where a recipe's y carries more columns), then score it on ``heldout_cases`` fresh patches
    (malignancy_set seed ``HELDOUT_SEED``); their probabilities go to heldout_seed2_probs.npy."""
    from ai_engine.train.data import malignancy_set
    from ai_engine.train.tasks import ClassificationTask, classification_metrics

    parts, config = tuned.parts, tuned.config
    label = lambda y: (y if y.dim() == 1 else y[:, 0]).long()
    plain = Partitions(*(TensorSet(p.x, label(p.y), p.patient_ids) for p in (parts.train, parts.val, parts.test)))
    task = ClassificationTask(spatial_dims=3, n_classes=2, seed=config.seed, bf16=config.bf16)
    out = save_trained(name, tuned.model, tuned.result, plain, task, config, source, out_dir, init_from=init_dir, notes=notes)
    held = malignancy_set(source, heldout_cases, HELDOUT_SEED)
    prob = predict(out.model, held.x, torch.device("cpu"), transform=lambda t: torch.softmax(t.float(), 1)).numpy()
    np.save(out_dir / "heldout_seed2_probs.npy", prob)
    return out, classification_metrics(prob, held.y.numpy())


def train_model(name: str, parts: Partitions, task: Task, config: TrainConfig, source: DataSource,
                out_dir: Path, calibrate: Calibrator | None = None, init_from: Path | None = None) -> TrainResult:
    """Fit ``name`` (fresh, or warm-started from the verified weights in ``init_from``), evaluate it on
    the test partition, save weights + card.

    ``calibrate`` picks operating thresholds on the validation partition; they go into the spec.
    """
    model, result = _fresh_fit(name, parts.train, parts.val, task, config, init_from=init_from)
    return save_trained(name, model, result, parts, task, config, source, out_dir, calibrate, init_from)


def save_trained(name: str, model: torch.nn.Module, result: FitResult, parts: Partitions, task: Task,
                 config: TrainConfig, source: DataSource, out_dir: Path, calibrate: Calibrator | None = None,
                 init_from: Path | None = None, notes: dict | None = None) -> TrainResult:
    """Evaluate a fitted ``model`` on validation and test, decide bf16, save weights + card.

    ``notes`` go into the card's training record (for recipes that fit with something extra, e.g. an
    auxiliary head that is dropped before saving).
    """
    device = torch.device(config.device)
    spec = registry.entry(name).spec
    if calibrate is not None:
        spec = spec.with_thresholds(**calibrate(model, parts.val, device))
    metrics = {"validation": task.evaluate(model, parts.val, device),
               "test": task.evaluate(model, parts.test, device),
               "n_train": len(parts.train), "n_val": len(parts.val), "n_test": len(parts.test),
               "best_epoch": result.best_epoch, "epochs_run": result.epochs_run}
    if config.bf16 and bf16_fast(device):  # kept for inference only if held-out metrics move ≤ 0.005
        metrics["test_fp32"] = replace(task, bf16=False).evaluate(model, parts.test, device)
        delta = max(abs(metrics["test"][k] - metrics["test_fp32"][k]) for k in metrics["test"])
        spec = replace(spec, bf16_autocast=bool(delta <= BF16_TOLERANCE))
        metrics["bf16_minus_fp32_max_abs"] = delta
    if config.folds > 1:
        metrics["cross_validation"] = cross_validate(name, _join(parts.train, parts.val), task, config)
    training = {**config.to_json(), "bf16_native": bf16_fast(device), "optimizer": "Adam", "scheduler": "CosineAnnealingLR",
                "loss": task.describe(), "augmentation": "RandRotate ≤30°, RandFlip, RandGaussianNoise std 0.01", **(notes or {})}
    if init_from is not None:
        training["init_from"] = f"{init_from} {name}-{config.profile} sha256 {read_card(init_from, name, config.profile).sha256}"
    card = ModelCard(name=name, architecture=registry.entry(name).architecture, profile=config.profile,
                     data_source=source.name, input_spec=spec, training=training,
                     metrics=metrics)
    card = save_checkpoint(model.cpu(), card, out_dir, half=config.half_weights)
    return TrainResult(card, Path(out_dir) / card.weights_file, model.eval(), parts.test, result.history)


def cross_validate(name: str, data: TensorSet, task: Task, config: TrainConfig) -> dict[str, float]:
    """k-fold (patient-level) cross-validation; the monitored metric averaged over folds."""
    scores = []
    for k, (tr, va) in enumerate(patient_folds(data.patient_ids, config.folds, config.seed)):
        model, _ = _fresh_fit(name, data.subset(tr), data.subset(va), task, config, f"{name} fold {k}")
        scores.append(task.evaluate(model, data.subset(va), torch.device(config.device))[task.monitor])
    return {f"{task.monitor}_mean": float(np.mean(scores)), f"{task.monitor}_std": float(np.std(scores)),
            "folds": config.folds}


def _fresh_fit(name: str, train: TensorSet, val: TensorSet, task: Task, config: TrainConfig,
               label: str | None = None, init_from: Path | None = None) -> tuple[torch.nn.Module, FitResult]:
    torch.manual_seed(config.seed)
    if init_from is None:
        model = registry.build(name, config.profile)
    else:
        model = load_model(name, init_from, config.profile)[0].float().train()
    return model, fit(model, train, val, task, config, label=label or name)


def _join(a: TensorSet, b: TensorSet) -> TensorSet:
    return TensorSet(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), a.patient_ids + b.patient_ids)
