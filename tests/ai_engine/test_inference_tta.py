"""Mirrored test-time passes of the sliding-window U-Net: mirrored back, averaged, and optional."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference

from ai_engine.models.spec import InputSpec
from ai_engine.pipelines import inference

SPEC = InputSpec(patch=(16, 16, 16), sw_overlap=0.25, tta_flips=((2,), (0,), (0, 2)))
BOX = (slice(3, 27), slice(2, 30), slice(5, 25))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv3d(1, 2, 5, padding=2).eval()  # random kernels: no mirror symmetry


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(1).random((30, 32, 30), dtype=np.float32)


def _one_pass(net, roi: torch.Tensor, dims: list[int], mode: str = "constant") -> torch.Tensor:
    x = torch.flip(roi, dims) if dims else roi
    with torch.inference_mode():
        p = torch.softmax(sliding_window_inference(x, SPEC.patch, 2, net, overlap=SPEC.sw_overlap, mode=mode), 1)
    return (torch.flip(p, dims) if dims else p)[0, 1]


def test_mirrored_passes_are_mirrored_back_and_averaged(net, image):
    prob = inference.segment_probability(image, net, SPEC, BOX, torch.device("cpu"), bf16=False)

    roi = torch.from_numpy(np.ascontiguousarray(image[BOX]))[None, None]
    passes = [_one_pass(net, roi, [2 + a for a in flip]) for flip in ((), *SPEC.tta_flips)]
    np.testing.assert_allclose(prob[BOX], torch.stack(passes).mean(0).numpy(), atol=1e-6)
    assert not np.allclose(passes[0].numpy(), passes[1].numpy(), atol=1e-3)  # the mirrors did differ
    outside = np.ones(image.shape, bool)
    outside[BOX] = False
    assert not prob[outside].any()


def test_without_flips_it_is_the_plain_pass(net, image):
    prob = inference.segment_probability(image, net, replace(SPEC, tta_flips=()), BOX, torch.device("cpu"), False)
    roi = torch.from_numpy(np.ascontiguousarray(image[BOX]))[None, None]
    np.testing.assert_allclose(prob[BOX], _one_pass(net, roi, []).numpy(), atol=1e-6)


def test_the_card_chooses_how_overlapping_windows_are_blended(net, image):
    roi = torch.from_numpy(np.ascontiguousarray(image[BOX]))[None, None]
    gaussian = inference.segment_probability(image, net, replace(SPEC, tta_flips=(), sw_blend="gaussian"), BOX,
                                             torch.device("cpu"), False)
    np.testing.assert_allclose(gaussian[BOX], _one_pass(net, roi, [], "gaussian").numpy(), atol=1e-6)
    constant = inference.segment_probability(image, net, replace(SPEC, tta_flips=()), BOX, torch.device("cpu"), False)
    assert not np.allclose(gaussian[BOX], constant[BOX], atol=1e-3)  # the overlaps are weighted otherwise


def test_flips_and_blending_survive_the_card_round_trip():
    assert InputSpec.from_json(SPEC.to_json()) == SPEC
    gaussian = replace(SPEC, sw_blend="gaussian")
    assert InputSpec.from_json(gaussian.to_json()) == gaussian
    old = InputSpec.from_json({"patch": [8, 8, 8]})  # cards written before TTA and blending choices
    assert old.tta_flips == () and old.sw_blend == "constant"
