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


def test_slabs_span_the_lung_box_in_y_x_and_fill_one_batch_in_z():
    slabs = replace(SPEC, sw_windows="slabs")
    assert inference.windows((238, 180, 290), SPEC) == (SPEC.patch, SPEC.sw_overlap)
    (z, y, x), overlap = inference.windows((238, 180, 290), slabs)  # bench/inference.py's lung box
    assert (y, x) == (184, 296) and z % 8 == 0
    assert 2 * z - 238 >= inference.SLAB_OVERLAP and z < 238  # two slabs, one batch, a shared seam
    assert z * y * x <= inference.SLAB_MAX_VOXELS
    (z, y, x), overlap = inference.windows((300, 400, 400), slabs)  # a slab would exceed the budget: thinner ones
    assert z * y * x <= inference.SLAB_MAX_VOXELS and z % 8 == 0 and z < 150
    step = int(z * (1 - overlap))  # MONAI's scan interval: every seam is shared by ≥ SLAB_OVERLAP voxels
    assert z - step >= inference.SLAB_OVERLAP
    with pytest.raises(ValueError, match="sw_windows"):
        inference.windows((30, 30, 30), replace(SPEC, sw_windows="tiles"))


def test_a_box_within_one_slab_is_one_pass_of_the_net_over_it(net, image):
    roi = torch.from_numpy(np.ascontiguousarray(image[BOX]))[None, None]
    with torch.inference_mode():
        whole = torch.softmax(net(roi), 1)[0, 1].numpy()  # zero padding at the box's edges, like MONAI's
    slabs = inference.segment_probability(image, net, replace(SPEC, tta_flips=(), sw_windows="slabs"), BOX,
                                          torch.device("cpu"), False)
    np.testing.assert_allclose(slabs[BOX], whole, atol=1e-6)
    patches = inference.segment_probability(image, net, replace(SPEC, tta_flips=()), BOX, torch.device("cpu"), False)
    assert not np.allclose(patches[BOX], whole, atol=1e-3)  # 16³ windows: seams where the windows' zero padding shows


def test_sw_windows_survives_the_card_round_trip():
    slabs = replace(SPEC, sw_windows="slabs")
    assert InputSpec.from_json(slabs.to_json()) == slabs
    assert InputSpec.from_json({"patch": [8, 8, 8]}).sw_windows == "patch"  # older cards


def _layouts(model: torch.nn.Module) -> set[bool]:
    """Whether each convolution's kernel is channels-last (one input channel reads as both layouts)."""
    return {m.weight.is_contiguous(memory_format=torch.channels_last_3d)
            for m in model.modules() if isinstance(m, torch.nn.Conv3d) and m.in_channels > 1}


def test_prepare_sets_the_asked_memory_format_both_ways():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.Conv3d(4, 2, 3, padding=1))
    assert _layouts(inference.prepare(model, True, torch.device("cpu"), 5)) == {True}
    assert _layouts(inference.prepare(model, False, torch.device("cpu"), 5)) == {False}  # not left channels-last


def test_a_channels_last_unet_gives_the_contiguous_unet_probabilities(image):
    from ai_engine.models import architectures

    torch.manual_seed(0)
    unet = architectures.unet3d("demo").eval()
    spec = replace(SPEC, tta_flips=((2,),))
    contiguous = inference.segment_probability(image, inference.prepare(unet, False, torch.device("cpu"), 5), spec,
                                               BOX, torch.device("cpu"), False)
    last = inference.segment_probability(image, inference.prepare(unet, True, torch.device("cpu"), 5), spec,
                                         BOX, torch.device("cpu"), False)
    assert _layouts(unet) == {True}
    assert contiguous[BOX].std() > 1e-3  # a net whose output varies, so agreement means something
    np.testing.assert_allclose(last, contiguous, atol=1e-5)
