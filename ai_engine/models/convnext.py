"""ConvNeXt for 3D volumes (Liu et al., "A ConvNet for the 2020s", CVPR 2022), written compactly.

Stem: 4³ stride-4 "patchify" conv + LayerNorm (``stem_stride`` changes the 4; session 19 tried 2).
Four stages of blocks; each block is a 7³ depth-wise conv → LayerNorm (channels-last) → Linear 4×
(inverted bottleneck) → GELU → Linear back → layer scale → stochastic depth, added to the input.
Between stages: LayerNorm + 2³ stride-2 conv.
ConvNeXt-Tiny: depths (3, 3, 9, 3), dims (96, 192, 384, 768).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

TINY_DEPTHS = (3, 3, 9, 3)
TINY_DIMS = (96, 192, 384, 768)


class LayerNormChannelsFirst(nn.Module):
    """LayerNorm over the channel axis of a [N, C, D, H, W] tensor."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 4, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 4, 1, 2, 3)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return torch.zeros_like(x)
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class Block(nn.Module):
    """One ConvNeXt block (see module docstring)."""

    def __init__(self, dim: int, drop_path: float, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 4, 1)  # channels-last for LN and the Linear layers
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + self.drop_path(y.permute(0, 4, 1, 2, 3))


class ConvNeXt3D(nn.Module):
    """ConvNeXt classifier for single- or multi-channel 3D patches."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        depths: Sequence[int] = TINY_DEPTHS,
        dims: Sequence[int] = TINY_DIMS,
        drop_path_rate: float = 0.1,
        layer_scale_init: float = 1e-6,
        stem_stride: int = 4,
    ) -> None:
        super().__init__()
        self.depths, self.dims = tuple(depths), tuple(dims)
        self.downsample_layers = nn.ModuleList([_stem(in_channels, dims[0], stem_stride)])
        for i in range(len(dims) - 1):
            self.downsample_layers.append(_downsample(dims[i], dims[i + 1]))
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            blocks = [Block(dims[i], rates[first + j], layer_scale_init) for j in range(depth)]
            self.stages.append(nn.Sequential(*blocks))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean(dim=(2, 3, 4))))  # global average pool, then LN


def _stem(in_channels: int, dim: int, stride: int = 4) -> nn.Sequential:
    """Patchify: non-overlapping stride³ cubes (4 in the paper)."""
    return nn.Sequential(nn.Conv3d(in_channels, dim, stride, stride=stride), LayerNormChannelsFirst(dim))


def _downsample(dim_in: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(LayerNormChannelsFirst(dim_in), nn.Conv3d(dim_in, dim_out, 2, stride=2))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv3d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)


def convnext_tiny_3d(in_channels: int = 1, num_classes: int = 2) -> ConvNeXt3D:
    """ConvNeXt-Tiny (depths 3-3-9-3, dims 96-192-384-768) for 3D inputs."""
    return ConvNeXt3D(in_channels, num_classes, TINY_DEPTHS, TINY_DIMS)
