"""The training loop shared by every task: Adam, cosine annealing, early stopping, best-state keeping."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ai_engine.models.precision import autocast
from ai_engine.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TensorSet:
    """Inputs, targets and the patient each sample came from."""

    x: torch.Tensor  # [N, C, ...] in [0, 1]; float16 storage is fine (batches are cast to float32)
    y: torch.Tensor  # [N] class indices, or [N, 1, ...] label masks (any integer dtype)
    patient_ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: np.ndarray) -> "TensorSet":
        t = torch.as_tensor(idx, dtype=torch.long)
        return TensorSet(self.x[t], self.y[t], tuple(self.patient_ids[i] for i in idx))


class Task(Protocol):
    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...
    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def evaluate(self, model: nn.Module, data: TensorSet, device: torch.device) -> dict[str, float]: ...
    def describe(self) -> str: ...  # the loss, for the model card
    monitor: str  # key of evaluate()'s result to maximise


@dataclass(frozen=True)
class FitResult:
    state: dict[str, torch.Tensor]
    best_epoch: int
    best_metric: float
    epochs_run: int
    history: tuple[dict[str, float], ...]


def fit(model: nn.Module, train: TensorSet, val: TensorSet, task: Task, config: TrainConfig,
        label: str = "train") -> FitResult:
    """Train ``model`` in place; return the best-on-validation state (early stopping)."""
    device = torch.device(config.device)
    torch.set_num_threads(config.num_threads)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, config.epochs))
    rng = np.random.default_rng(config.seed)
    best, best_state, best_epoch, history = -math.inf, copy.deepcopy(model.state_dict()), 0, []
    bar = tqdm(range(config.epochs), desc=label, disable=not config.progress, leave=False)
    for epoch in bar:
        loss = _one_epoch(model, train, task, opt, rng, config, device)
        sched.step()
        metrics = task.evaluate(model, val, device)
        history.append({"epoch": epoch, "loss": loss, **metrics})
        bar.set_postfix(loss=f"{loss:.3f}", **{task.monitor: f"{metrics[task.monitor]:.3f}"})
        log.info("%s epoch %d loss %.4f %s %.4f", label, epoch, loss, task.monitor, metrics[task.monitor])
        if metrics[task.monitor] > best:
            best, best_epoch, best_state = metrics[task.monitor], epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return FitResult(best_state, best_epoch, float(best), len(history), tuple(history))


def _one_epoch(model: nn.Module, data: TensorSet, task: Task, opt: torch.optim.Optimizer,
               rng: np.random.Generator, config: TrainConfig, device: torch.device) -> float:
    model.train()
    order = rng.permutation(len(data))
    batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    batches = [b for b in batches if len(b) > 1] or batches  # BatchNorm needs ≥ 2 samples
    if config.steps_per_epoch is not None:
        batches = batches[:config.steps_per_epoch]
    losses = []
    for b in batches:
        t = torch.as_tensor(b, dtype=torch.long)
        x, y = data.x[t].float(), data.y[t]
        if config.augment:
            x, y = task.augment(x, y)
        with autocast(config.bf16, device):
            logits = model(x.to(device))
        loss = task.loss(logits.float(), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 8,
            transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t, bf16: bool = False) -> torch.Tensor:
    """Model outputs for ``x`` in eval mode, batched (never batch 1 unless N is 1)."""
    model.eval()
    outs = []
    for i in range(0, len(x), batch_size):
        with autocast(bf16, device):
            outs.append(transform(model(x[i:i + batch_size].float().to(device)).float()).cpu())
    return torch.cat(outs)
