"""Malignancy (DenseNet121-3D + ConvNeXt-Tiny-3D ensemble) and subtype (EfficientNet-B3 2.5D) training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ai_engine.models.card import ModelCard, load_model, write_card
from ai_engine.pipelines.models import MALIGNANCY_MODELS
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import malignancy_set, parse_data, subtype_set
from ai_engine.train.loop import TensorSet, predict
from ai_engine.train.run import TrainResult, bf16_training_safe, partition, train_model
from ai_engine.train.tasks import ClassificationTask, classification_metrics


DEMO_CONVNEXT_LR = 2e-4  # the demo ConvNeXt-Tiny-3D collapses to chance at 1e-3 and 3e-4 (architectures.py)


def member_config(name: str, config: TrainConfig) -> TrainConfig:
    """``config`` as a malignancy member trains under it. ConvNeXt-Tiny-3D: in the demo profile at
    most DEMO_CONVNEXT_LR, and fp32 on a CPU (``bf16_training_safe``). The card records what it
    trained with."""
    if name != "convnext-tiny-3d":
        return config
    if config.profile == "demo":
        config = replace(config, lr=min(config.lr, DEMO_CONVNEXT_LR))
    return replace(config, bf16=config.bf16 and bf16_training_safe(name, config.device))


def train_malignancy(data: str, out_dir: Path, config: TrainConfig,
                     names: Sequence[str] = MALIGNANCY_MODELS,
                     member_configs: Mapping[str, TrainConfig] | None = None) -> tuple[TrainResult, ...]:
    """Train each ensemble member on the same split; each card also records the ensemble's test metrics.

    ``member_configs`` overrides ``config`` per member (e.g. a learning rate; else ``member_config``);
    the data and the split always come from ``config``.
    """
    source = parse_data(data)
    parts = partition(malignancy_set(source, config.n_cases, config.seed), config.seed)
    results = []
    for name in names:
        member = (member_configs or {}).get(name) or member_config(name, config)
        task = ClassificationTask(spatial_dims=3, n_classes=2, seed=member.seed, bf16=member.bf16, monitor="auc")
        results.append(train_model(name, parts, task, member, source, out_dir))
    cards = _record_ensemble([(r.model, r.card) for r in results], parts.test, out_dir, config)
    return tuple(replace(r, card=c) for r, c in zip(results, cards))


def record_ensemble(data: str, out_dir: Path, config: TrainConfig,
                    names: Sequence[str] = MALIGNANCY_MODELS) -> dict[str, float]:
    """Recompute the ensemble's test metrics from members saved in ``out_dir`` (e.g. after one member
    was retrained on the same data and seed) and record them in every member's card."""
    parts = partition(malignancy_set(parse_data(data), config.n_cases, config.seed), config.seed)
    members = [load_model(n, out_dir, config.profile) for n in names]
    cards = _record_ensemble(members, parts.test, out_dir, config)
    return cards[0].metrics["ensemble_test"]


def _record_ensemble(members: list[tuple[torch.nn.Module, ModelCard]], test: TensorSet, out_dir: Path,
                     config: TrainConfig) -> list[ModelCard]:
    device = torch.device(config.device)
    probs = [predict(m, test.x, device, transform=lambda t: torch.softmax(t.float(), 1)).numpy()
             for m, _ in members]
    ensemble = classification_metrics(np.mean(probs, axis=0), test.y.numpy())
    names = [c.name for _, c in members]
    cards = [replace(c, metrics={**c.metrics, "ensemble_test": ensemble, "ensemble_members": names})
             for _, c in members]
    for card in cards:
        write_card(card, out_dir)
    return cards


def train_subtype(data: str, out_dir: Path, config: TrainConfig, name: str = "efficientnet-b3") -> TrainResult:
    """Train the 2.5D subtype classifier (adenocarcinoma / squamous / large cell) on malignant nodules."""
    source = parse_data(data)
    parts = partition(subtype_set(source, config.n_cases, config.seed), config.seed)
    task = ClassificationTask(spatial_dims=2, n_classes=3, seed=config.seed, bf16=config.bf16, monitor="accuracy")
    return train_model(name, parts, task, config, source, out_dir)
