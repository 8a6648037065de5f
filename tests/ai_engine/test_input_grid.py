"""Candidate outlines mapped from the 1 mm grid back onto anisotropic input grids."""

from __future__ import annotations

import numpy as np
import pytest

from ai_engine.evaluate.segmentation import dice
from ai_engine.findings import CTVolume
from ai_engine.pipelines.input_grid import labels_on_input_grid
from ai_engine.preprocess import VolumeGeometry, resample_to_reference

ISO = CTVolume(hu=np.zeros((40, 40, 40), np.float32), spacing_mm=(1.0, 1.0, 1.0))
INPUT = CTVolume(hu=np.zeros((32, 57, 57), np.float32), spacing_mm=(0.7, 0.7, 1.25))  # same extent, finer in-plane
THRESHOLD = 0.3


def _mm(volume: CTVolume) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates (z, y, x) in mm of a volume with origin 0."""
    z, y, x = np.indices(volume.hu.shape, dtype=float)
    sx, sy, sz = volume.spacing_mm
    return z * sz, y * sy, x * sx


def _sphere_prob(volume: CTVolume, centre_zyx_mm, radius_mm: float) -> np.ndarray:
    """A soft sphere like a U-Net's output: ½ exactly on the surface, falling off over ~1 mm."""
    r = np.sqrt(sum((c - m) ** 2 for c, m in zip(_mm(volume), centre_zyx_mm)))
    return (1 / (1 + np.exp((r - radius_mm) / 0.4))).astype(np.float32)


@pytest.mark.parametrize("radius_mm", [2.5, 4.0, 7.0])
def test_outline_follows_the_probability_between_1mm_voxels(radius_mm: float):
    centre = (19.3, 20.6, 18.2)
    prob = _sphere_prob(ISO, centre, radius_mm)
    iso_labels = (prob >= THRESHOLD).astype(np.int32)
    truth = _sphere_prob(INPUT, centre, radius_mm) >= THRESHOLD  # the same surface, sampled on the input grid

    mapped = labels_on_input_grid(iso_labels, prob, THRESHOLD, ISO, INPUT)
    nearest = resample_to_reference(iso_labels.astype(np.uint16), VolumeGeometry.of(ISO), VolumeGeometry.of(INPUT))

    assert mapped.shape == INPUT.hu.shape and set(np.unique(mapped)) == {0, 1}
    assert dice(mapped > 0, truth) > 0.96
    assert dice(mapped > 0, truth) > dice(nearest > 0, truth) + 0.01


def test_neighbouring_candidates_keep_their_own_voxels():
    a = _sphere_prob(ISO, (19.0, 12.0, 19.0), 4.0)
    b = _sphere_prob(ISO, (19.0, 23.0, 19.0), 4.0)  # 3 mm gap between the surfaces
    prob = np.maximum(a, b)
    iso_labels = np.where(a >= THRESHOLD, 1, 0) + np.where(b >= THRESHOLD, 2, 0)
    assert not np.any(iso_labels == 3)

    mapped = labels_on_input_grid(iso_labels.astype(np.int32), prob, THRESHOLD, ISO, INPUT)

    y_mm = _mm(INPUT)[1]
    assert np.all(y_mm[mapped == 1] < 17.5) and np.all(y_mm[mapped == 2] > 17.5)
    assert (mapped == 1).sum() == pytest.approx((mapped == 2).sum(), rel=0.1)


def test_probability_outside_every_candidate_is_not_labelled():
    prob = _sphere_prob(ISO, (10.0, 10.0, 10.0), 4.0) + _sphere_prob(ISO, (30.0, 30.0, 30.0), 4.0)
    only_first = (_sphere_prob(ISO, (10.0, 10.0, 10.0), 4.0) >= THRESHOLD).astype(np.int32)  # the second was dropped

    mapped = labels_on_input_grid(only_first, prob, THRESHOLD, ISO, INPUT)

    z_mm = _mm(INPUT)[0]
    assert mapped.any() and np.all(z_mm[mapped > 0] < 20.0)


def test_identical_grids_give_the_thresholded_candidates():
    prob = _sphere_prob(ISO, (20.0, 20.0, 20.0), 5.0)
    iso_labels = (prob >= THRESHOLD).astype(np.int32)

    mapped = labels_on_input_grid(iso_labels, prob, THRESHOLD, ISO, ISO)

    np.testing.assert_array_equal(mapped, iso_labels)
