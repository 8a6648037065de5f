"""Preprocessing: isotropic resampling and back, HU window, classic lung mask, location."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ai_engine.findings import CTVolume, NoduleType, Side, Zone
from ai_engine.preprocess import (
    GeometryError,
    VolumeGeometry,
    assign_location,
    lung_bbox,
    lung_extent,
    lung_mask,
    resample_isotropic,
    resample_to_reference,
    window_minmax,
)
from ai_engine.synthetic import NoduleSpec, lung_point_mm, make_ct_phantom

SOLID_ROUND = dict(nodule_type=NoduleType.SOLID, calcified=False, morphology="round")


def _centroid_mm(mask: np.ndarray, volume: CTVolume) -> np.ndarray:
    return np.array(volume.index_to_mm(tuple(ndimage.center_of_mass(mask))))


@pytest.fixture(scope="module")
def sphere_phantom():
    shape, spacing = (40, 96, 96), (0.8, 0.8, 2.0)
    centre = lung_point_mm(9, Side.LEFT, Zone.MIDDLE, shape, spacing)
    return make_ct_phantom(9, shape, spacing, nodule_spec=[NoduleSpec(centre_mm=centre, diameter_mm=12, **SOLID_ROUND)])


# -- resampling ---------------------------------------------------------------------------------
def test_resample_isotropic_keeps_extent_origin_and_positions(sphere_phantom):
    src = sphere_phantom.volume
    iso = resample_isotropic(src, 1.0)
    assert iso.spacing_mm == (1.0, 1.0, 1.0)
    assert iso.origin_mm == src.origin_mm and iso.direction == src.direction
    src_extent = np.array(src.hu.shape) * np.array(src.spacing_mm[::-1])
    assert np.allclose(np.array(iso.hu.shape) * 1.0, src_extent, atol=1.0)
    assert iso.hu.dtype == np.float32
    truth = np.array(sphere_phantom.nodules[0].centre_mm)
    g_src, g_iso = VolumeGeometry.of(src), VolumeGeometry.of(iso)
    sphere = sphere_phantom.nodule_mask == 1
    assert np.linalg.norm(_centroid_mm(sphere, src) - truth) < 0.1
    # the image moved with the geometry: the bright sphere's centroid stays put (linear)
    near = lambda v: _near(v, truth, 8.0) & (v.hu > -300)
    assert np.linalg.norm(_centroid_mm(near(iso), iso) - _centroid_mm(near(src), src)) < 0.5
    soft = resample_to_reference(sphere.astype(np.float32), g_src, g_iso, "linear")
    assert np.linalg.norm(_centroid_mm(soft > 0.5, iso) - truth) < 0.5
    # nearest neighbour keeps labels; ties halfway between 2 mm slices cost at most half a slice
    labels = resample_to_reference(sphere_phantom.nodule_mask, g_src, g_iso)
    assert labels.dtype == np.uint16 and labels.shape == iso.hu.shape and set(np.unique(labels)) == {0, 1}
    assert np.linalg.norm(_centroid_mm(labels == 1, iso) - truth) <= 1.0
    assert iso.hu[labels == 1].mean() > -100


def _near(volume: CTVolume, centre_mm, radius_mm: float) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of a patient point (identity direction)."""
    z, y, x = np.indices(volume.hu.shape, dtype=float)
    sx, sy, sz = volume.spacing_mm
    ox, oy, oz = volume.origin_mm
    cx, cy, cz = centre_mm
    return (ox + x * sx - cx) ** 2 + (oy + y * sy - cy) ** 2 + (oz + z * sz - cz) ** 2 <= radius_mm**2


def test_mask_maps_back_to_the_input_grid(sphere_phantom):
    src = sphere_phantom.volume
    iso = resample_isotropic(src, 1.0)
    g_src, g_iso = VolumeGeometry.of(src), VolumeGeometry.of(iso)
    there = resample_to_reference(sphere_phantom.nodule_mask > 0, g_src, g_iso)
    back = resample_to_reference(there, g_iso, g_src)
    assert back.dtype == bool and back.shape == src.hu.shape
    orig = sphere_phantom.nodule_mask > 0
    dice = 2 * (back & orig).sum() / (back.sum() + orig.sum())
    assert dice > 0.85


def test_linear_resampling_of_probabilities():
    geom = VolumeGeometry((10, 10, 10), (2.0, 2.0, 2.0))
    prob = np.zeros((10, 10, 10), np.float32)
    prob[4:6, 4:6, 4:6] = 1.0
    fine = resample_to_reference(prob, geom, geom.isotropic(1.0), "linear")
    assert fine.dtype == np.float32 and fine.shape == (20, 20, 20)
    assert fine.min() >= 0.0 and fine.max() <= 1.0 + 1e-6
    assert np.any((fine > 0.1) & (fine < 0.9))  # interpolated, not nearest


def test_resampling_rejects_mismatched_shapes():
    geom = VolumeGeometry((10, 10, 10), (1.0, 1.0, 1.0))
    with pytest.raises(GeometryError, match=r"\(5, 5, 5\)"):
        resample_to_reference(np.zeros((5, 5, 5), np.uint8), geom, geom)
    with pytest.raises(ValueError, match="interpolator"):
        resample_to_reference(np.zeros((10, 10, 10), np.uint8), geom, geom, "cubic")


# -- window -------------------------------------------------------------------------------------
def test_window_minmax():
    hu = np.array([-2000, -1000, -300, 400, 3000], np.int16)
    out = window_minmax(hu)
    assert out.dtype == np.float32
    assert np.allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])
    assert np.allclose(window_minmax(hu, -1350, 150), [0.0, 350 / 1500, 1050 / 1500, 1.0, 1.0])
    with pytest.raises(ValueError, match="hi > lo"):
        window_minmax(hu, 100, 100)


# -- lung mask ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def juxtapleural_phantom():
    specs = [NoduleSpec(placement="juxtapleural", diameter_mm=d, **SOLID_ROUND) for d in (8, 16, 24)]
    return make_ct_phantom(21, (64, 192, 192), (1.6, 1.6, 3.0), nodule_spec=specs)


def test_lung_mask_matches_the_lungs(juxtapleural_phantom):
    ph = juxtapleural_phantom
    m = lung_mask(ph.volume)
    assert m.dtype == bool and m.shape == ph.volume.hu.shape
    dice = 2 * (m & ph.lung_mask).sum() / (m.sum() + ph.lung_mask.sum())
    assert dice > 0.95
    _, n = ndimage.label(m)
    assert n == 2
    # trachea excluded: the mask does not reach above the lung apices
    top = lambda mask: np.flatnonzero(mask.any(axis=(1, 2)))[-1]
    assert abs(top(m) - top(ph.lung_mask)) <= 1


def test_lung_mask_includes_juxtapleural_nodules(juxtapleural_phantom):
    ph = juxtapleural_phantom
    m = lung_mask(ph.volume)
    assert [n.placement for n in ph.nodules] == ["juxtapleural"] * 3
    for n in ph.nodules:
        nodule = ph.nodule_mask == n.label
        assert m[nodule].mean() >= 0.98, n


def test_lung_mask_of_an_empty_volume_is_empty():
    air = CTVolume(np.full((10, 32, 32), -1000.0, np.float32), (1.0, 1.0, 1.0))
    assert not lung_mask(air).any()


def test_lung_bbox():
    mask = np.zeros((20, 30, 40), bool)
    mask[5:10, 10:12, 20:25] = True
    box = lung_bbox(mask, margin_mm=4.0, spacing_mm=(2.0, 1.0, 4.0))
    assert box == (slice(4, 11), slice(6, 16), slice(18, 27))
    assert mask[box].sum() == mask.sum()
    assert lung_bbox(np.zeros((3, 4, 5), bool)) == (slice(0, 3), slice(0, 4), slice(0, 5))


# -- location -----------------------------------------------------------------------------------
@pytest.mark.parametrize("side,zone,lobe", [(Side.RIGHT, Zone.UPPER, "right upper lobe"),
                                            (Side.LEFT, Zone.LOWER, "left lower lobe"),
                                            (Side.LEFT, Zone.UPPER, "left upper lobe"),
                                            (Side.RIGHT, Zone.LOWER, "right lower lobe")])
def test_assign_location(side, zone, lobe):
    shape, spacing = (96, 160, 160), (2.0, 2.0, 2.5)
    centre = lung_point_mm(31, side, zone, shape, spacing)
    ph = make_ct_phantom(31, shape, spacing, nodule_spec=[NoduleSpec(centre_mm=centre, diameter_mm=8, **SOLID_ROUND)])
    got = assign_location(ph.nodules[0].centre_zyx, lung_mask(ph.volume), ph.volume)
    assert got == (side, zone, lobe)


def test_location_follows_patient_axes_not_array_axes():
    """The same scan stored with x and z flipped (direction -1) still puts the nodule right/upper."""
    shape, spacing = (96, 160, 160), (2.0, 2.0, 2.5)
    centre = lung_point_mm(31, Side.RIGHT, Zone.UPPER, shape, spacing)
    ph = make_ct_phantom(31, shape, spacing, nodule_spec=[NoduleSpec(centre_mm=centre, diameter_mm=8, **SOLID_ROUND)])
    v = ph.volume
    far = v.index_to_mm(tuple(n - 1 for n in shape))
    flipped = CTVolume(v.hu[::-1, :, ::-1].copy(), v.spacing_mm, (far[0], v.origin_mm[1], far[2]),
                       (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    cz, cy, cx = ph.nodules[0].centre_zyx
    zyx = (shape[0] - 1 - cz, cy, shape[2] - 1 - cx)
    assert np.allclose(flipped.index_to_mm(zyx), ph.nodules[0].centre_mm)
    side, zone, _ = assign_location(zyx, ph.lung_mask[::-1, :, ::-1], flipped)
    assert (side, zone) == (Side.RIGHT, Zone.UPPER)


def test_location_agrees_with_phantom_truth():
    for seed in range(4):
        ph = make_ct_phantom(100 + seed, n_nodules=4)
        extent = lung_extent(ph.lung_mask, ph.volume)
        for n in ph.nodules:
            side, zone, _ = assign_location(n.centre_zyx, ph.lung_mask, ph.volume, extent)
            assert (side, zone) == (n.side, n.zone)


def test_location_needs_a_lung_mask():
    v = CTVolume(np.zeros((4, 4, 4), np.float32), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="lung mask is empty"):
        assign_location((1, 1, 1), np.zeros((4, 4, 4), bool), v)
