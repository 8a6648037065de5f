"""Running the trained models on arrays: sliding-window segmentation and patch classifiers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from ai_engine.models.precision import autocast
from ai_engine.models.spec import InputSpec

BBox = tuple[slice, slice, slice]  # z, y, x index slices (preprocess.lung_bbox)
# one slab's voxels at most: its activations stay within a few GB (bf16 or fp32)
SLAB_MAX_VOXELS = 8_000_000
SLAB_OVERLAP = 16  # voxels the two slabs share, at least (their seam is blended like windows')
SLAB_MULTIPLE = 8  # the demo U-Net halves the grid three times


@torch.inference_mode()
def segment_probability(image01: np.ndarray, model: nn.Module, spec: InputSpec, bbox: BBox,
                        device: torch.device, bf16: bool) -> np.ndarray:
    """Foreground probability over the whole volume; only ``bbox`` (the lungs) is run through the net,
    as is and mirrored along each of ``spec.tta_flips`` (mirrored back, then averaged)."""
    prob = np.zeros(image01.shape, dtype=np.float32)
    if image01[bbox].size == 0:
        return prob
    roi = _roi(image01, bbox, device)
    flips = ((), *spec.tta_flips)
    total = _roi_pass(roi, model, spec, device, bf16, flips[0])
    for flip in flips[1:]:
        total += _roi_pass(roi, model, spec, device, bf16, flip)
    prob[bbox] = (total / len(flips)).cpu().numpy()
    return prob


@torch.inference_mode()
def mirrored_pass(image01: np.ndarray, model: nn.Module, spec: InputSpec, bbox: BBox, device: torch.device,
                  bf16: bool, flip: tuple[int, ...] = ()) -> np.ndarray:
    """One sliding-window pass over ``bbox`` of the volume mirrored along the (z, y, x) axes ``flip``,
    its probability mirrored back (zero outside the box)."""
    prob = np.zeros(image01.shape, dtype=np.float32)
    if image01[bbox].size:
        prob[bbox] = _roi_pass(_roi(image01, bbox, device), model, spec, device, bf16, flip).cpu().numpy()
    return prob


def _roi(image01: np.ndarray, bbox: BBox, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image01[bbox]))[None, None].to(device)


def _roi_pass(roi: torch.Tensor, model: nn.Module, spec: InputSpec, device: torch.device, bf16: bool,
              flip: tuple[int, ...]) -> torch.Tensor:
    """Foreground probability [z, y, x] of ``roi`` [1, 1, z, y, x] mirrored along ``flip``, mirrored back."""
    dims = [2 + axis for axis in flip]  # tensor dims after batch and channel
    window, overlap = windows(tuple(roi.shape[2:]), spec)
    with autocast(bf16, device):
        margin = sliding_window_inference(_flip(roi, dims), window, max(2, spec.sw_batch_size),
                                          lambda x: _foreground_margin(model(x)), overlap=overlap, mode=spec.sw_blend)
    return _flip(torch.sigmoid(margin), dims)[0, 0]


def _foreground_margin(logits: torch.Tensor) -> torch.Tensor:
    """Nodule minus background logit [N, 1, ...]: its sigmoid is the two-class softmax's nodule
    probability, and blending it is blending both logits (linear), at half the windows' memory."""
    if logits.shape[1] != 2:
        raise ValueError(f"the segmentation net must give 2 classes (background, nodule), not {logits.shape[1]}")
    logits = logits.float()  # bf16 logits: subtract them exactly
    return logits[:, 1:2] - logits[:, 0:1]


def windows(roi_shape: tuple[int, ...], spec: InputSpec) -> tuple[tuple[int, ...], float]:
    """The sliding window's size and overlap over a lung box of ``roi_shape`` (z, y, x) voxels.
    "slabs": the whole y-x extent, and half the box in z plus ``SLAB_OVERLAP`` (so two slabs fill
    one batch), thinner where a slab would exceed ``SLAB_MAX_VOXELS``; neighbouring slabs share at
    least ``SLAB_OVERLAP`` voxels (MONAI places the last one flush with the box's end)."""
    if spec.sw_windows == "patch":
        return tuple(spec.patch), spec.sw_overlap
    if spec.sw_windows != "slabs":
        raise ValueError(f"sw_windows must be 'patch' or 'slabs', not {spec.sw_windows!r}")
    z, y, x = (_round_up(n, SLAB_MULTIPLE) for n in roi_shape)
    half = _round_up(-(-roi_shape[0] // 2) + SLAB_OVERLAP, SLAB_MULTIPLE)
    budget = max(SLAB_MULTIPLE, SLAB_MAX_VOXELS // (y * x) // SLAB_MULTIPLE * SLAB_MULTIPLE)
    slab = min(half, z, budget)
    return (slab, y, x), min(SLAB_OVERLAP / slab, 0.5)  # one window in y and x whatever the overlap


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@torch.inference_mode()
def class_probabilities(inputs: np.ndarray, model: nn.Module, device: torch.device, bf16: bool,
                        channels_last: bool = False, batch_size: int = 8) -> np.ndarray:
    """Softmax over classes for a stack of model inputs [N, C, ...] → [N, n_classes]."""
    if len(inputs) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    out = []
    for i in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch_size], dtype=np.float32)).to(device)
        x = _pad_batch(x)  # batch ≥ 2 keeps 3D convs off the slow im2col path
        if channels_last:
            x = x.contiguous(memory_format=_channels_last(x.ndim))
        with autocast(bf16, device):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1)[: min(batch_size, len(inputs) - i)].cpu().numpy())
    return np.concatenate(out)


def prepare(model: nn.Module, channels_last: bool, device: torch.device, ndim: int) -> nn.Module:
    """Move to device in eval mode, in channels-last memory format where oneDNN prefers it and
    contiguous otherwise (``Module.to`` works in place: a shared module keeps no earlier caller's layout)."""
    model = model.to(device).eval()
    return model.to(memory_format=_channels_last(ndim) if channels_last else torch.contiguous_format)


def ensemble_mean(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(probabilities), axis=0)


def _flip(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return torch.flip(x, dims) if dims else x


def _pad_batch(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x]) if x.shape[0] == 1 else x


def _channels_last(ndim: int) -> torch.memory_format:
    return torch.channels_last_3d if ndim == 5 else torch.channels_last
