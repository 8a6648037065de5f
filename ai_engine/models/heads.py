"""The final linear layer of a classifier, resized: the malignancy recipes train extra (auxiliary)
outputs beside the two the registry's member has, then cut them off before saving."""

from __future__ import annotations

import torch
from torch import nn


def head_of(model: nn.Module) -> tuple[nn.Module, str]:
    """The final linear layer's parent and attribute (MONAI DenseNet, our ConvNeXt3D)."""
    return (model.class_layers, "out") if hasattr(model, "class_layers") else (model, "head")


def set_rows(model: nn.Module, rows: int) -> None:
    """Widen the final linear layer to ``rows`` outputs (new rows start at zero) or cut it back."""
    parent, attr = head_of(model)
    old: nn.Linear = getattr(parent, attr)
    new = nn.Linear(old.in_features, rows).to(old.weight.device)
    with torch.no_grad():
        keep = min(rows, old.out_features)
        new.weight.zero_(); new.bias.zero_()
        new.weight[:keep] = old.weight[:keep]; new.bias[:keep] = old.bias[:keep]
    setattr(parent, attr, new)
