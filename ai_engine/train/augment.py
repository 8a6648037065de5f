"""Augmentation with MONAI transforms (paper: rotation ≤ 30°, flips, Gaussian noise std 0.01)."""

from __future__ import annotations

import math

import numpy as np
import torch
from monai.transforms import Compose, RandFlipd, RandGaussianNoised, RandRotated

MAX_ROTATION_RAD = math.radians(30.0)
NOISE_STD = 0.01


def augmenter(spatial_dims: int, with_label: bool, seed: int) -> Compose:
    """A seeded MONAI pipeline over dicts with "image" (and "label" for segmentation)."""
    keys = ("image", "label") if with_label else ("image",)
    modes = ("bilinear", "nearest") if with_label else ("bilinear",)
    angle = MAX_ROTATION_RAD
    rotate = RandRotated(keys, range_x=angle, range_y=angle if spatial_dims == 3 else 0.0,
                         range_z=angle if spatial_dims == 3 else 0.0, prob=0.5, mode=modes,
                         padding_mode="border")
    flips = [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(spatial_dims)]
    noise = RandGaussianNoised("image", prob=0.5, mean=0.0, std=NOISE_STD)
    pipeline = Compose([rotate, *flips, noise])
    pipeline.set_random_state(seed=seed)
    return pipeline


def augment_batch(pipeline: Compose, x: torch.Tensor, y: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply the pipeline sample by sample (labels follow images through spatial transforms)."""
    xs, ys = [], []
    for i in range(x.shape[0]):
        sample = {"image": x[i]} if y is None else {"image": x[i], "label": y[i]}
        out = pipeline(sample)
        xs.append(torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32))
        if y is not None:
            ys.append(torch.as_tensor(np.asarray(out["label"])).round().to(y.dtype))
    return torch.stack(xs), (torch.stack(ys) if y is not None else None)
