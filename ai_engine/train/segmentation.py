"""U-Net nodule segmentation training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ai_engine.train.config import TrainConfig
from ai_engine.train.data import parse_data, segmentation_set
from ai_engine.train.loop import TensorSet, predict
from ai_engine.train.run import TrainResult, partition, train_model
from ai_engine.train.tasks import SegmentationTask, dice

TRAIN_PATCH = 48  # voxels at 1 mm; inference uses the spec's larger sliding-window ROI
PROBABILITY_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def train_segmentation(data: str, out_dir: Path, config: TrainConfig, name: str = "unet3d") -> TrainResult:
    """Train the U-Net on ``data``; the foreground threshold is calibrated on validation patches."""
    source = parse_data(data)
    parts = partition(segmentation_set(source, config.n_cases, config.seed, TRAIN_PATCH,
                                              config.phantom_shape_zyx), config.seed)
    return train_model(name, parts, SegmentationTask(seed=config.seed, bf16=config.bf16), config, source, out_dir,
                       calibrate=calibrate_probability)


def calibrate_probability(model: torch.nn.Module, val: TensorSet, device: torch.device) -> dict[str, float]:
    """The foreground probability threshold with the best Dice on validation patches."""
    prob = predict(model, val.x, device, transform=lambda t: torch.softmax(t.float(), 1)[:, 1:]).numpy()
    truth = val.y.numpy() > 0
    scores = [dice(prob >= p, truth) for p in PROBABILITY_GRID]
    return {"probability": float(PROBABILITY_GRID[int(np.argmax(scores))])}
