"""Nodule measurement (Lung-RADS v2022 diameters, volume, type, calcification) and candidates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ai_engine.findings import CTVolume, Nodule, NoduleType, Side, Zone
from ai_engine.measure import NoduleMeasurement, connected_candidates, in_plane_axes, measure_nodules
from ai_engine.preprocess import LungExtent
from ai_engine.synthetic import NoduleSpec, lung_point_mm, make_ct_phantom

SHAPE = {(0.7, 0.7, 1.0): (80, 200, 200), (1.0, 1.0, 1.0): (80, 160, 160), (1.0, 1.0, 2.5): (40, 160, 160)}


def _phantom(spacing, *specs, seed=5, zone=Zone.MIDDLE):
    shape = SHAPE[spacing]
    centre = lung_point_mm(seed, Side.RIGHT, zone, shape, spacing, clearance_mm=12)
    specs = [dataclasses.replace(s, centre_mm=s.centre_mm or centre) for s in specs]
    return make_ct_phantom(seed, shape, spacing, nodule_spec=specs)


@pytest.mark.parametrize("spacing", [(0.7, 0.7, 1.0), (1.0, 1.0, 1.0)])
def test_ten_mm_sphere(spacing):
    ph = _phantom(spacing, NoduleSpec(diameter_mm=10, nodule_type=NoduleType.SOLID, calcified=False,
                                      morphology="round"))
    (m,) = measure_nodules(ph.nodule_mask, ph.volume, ph.lung_mask)
    truth = ph.nodules[0]
    assert m.mean_diameter_mm == pytest.approx(10.0, abs=1.0)
    assert m.long_axis_mm == pytest.approx(10.0, abs=1.0) and m.short_axis_mm == pytest.approx(10.0, abs=1.0)
    assert m.volume_mm3 == pytest.approx(4 / 3 * np.pi * 5**3, rel=0.10)
    assert np.linalg.norm(np.array(m.centroid_mm) - truth.centre_mm) < 0.5
    assert np.allclose(m.centroid_zyx, truth.centre_zyx, atol=0.5)
    assert abs(m.key_slice - truth.centre_zyx[0]) <= 1
    assert m.nodule_type == NoduleType.SOLID and m.solid_component_mm is None and not m.calcified
    assert -150 < m.mean_hu < 100 and m.max_hu > m.mean_hu  # the rim is partial volume
    assert (m.side, m.zone) == (Side.RIGHT, Zone.MIDDLE) and m.lobe.startswith("right ")
    z0, y0, x0, z1, y1, x1 = m.bbox_zyx
    assert (ph.nodule_mask[z0:z1, y0:y1, x0:x1] == 1).sum() == (ph.nodule_mask == 1).sum()
    assert m.mean_diameter_mm == round(m.mean_diameter_mm, 1)


def _ellipse_volume(angle_deg: float, spacing=(0.7, 0.7, 1.0)) -> tuple[np.ndarray, CTVolume]:
    """An ellipsoid 12 × 6 mm in-plane (rotated), 6 mm tall, 40 HU in -850 HU lung."""
    shape = (20, 40, 40)
    z, y, x = np.indices(shape, dtype=float)
    sx, sy, sz = spacing
    a = np.radians(angle_deg)
    u = (x - 19.5) * sx * np.cos(a) + (y - 19.5) * sy * np.sin(a)
    v = -(x - 19.5) * sx * np.sin(a) + (y - 19.5) * sy * np.cos(a)
    mask = (u / 6) ** 2 + (v / 3) ** 2 + ((z - 9.5) * sz / 3) ** 2 <= 1
    hu = np.where(mask, 40.0, -850.0).astype(np.float32)
    return mask, CTVolume(hu, spacing)


@pytest.mark.parametrize("angle", [0, 30, 90])
def test_ellipsoid_long_and_short_axes(angle):
    mask, volume = _ellipse_volume(angle)
    (m,) = measure_nodules(mask, volume)
    assert m.long_axis_mm == pytest.approx(12.0, abs=1.0)
    assert m.short_axis_mm == pytest.approx(6.0, abs=1.0)
    assert m.mean_diameter_mm == pytest.approx((m.long_axis_mm + m.short_axis_mm) / 2, abs=0.051)
    assert m.mean_diameter_mm == pytest.approx(9.0, abs=1.0)
    assert m.volume_mm3 == pytest.approx(4 / 3 * np.pi * 6 * 3 * 3, rel=0.1)


def test_in_plane_axes_of_a_rectangle():
    mask = np.zeros((30, 30), bool)
    mask[10:14, 5:25] = True  # 4 × 20 pixels of 0.5 mm: 2 × 10 mm
    axes = in_plane_axes(mask, (0.5, 0.5))
    assert axes.long_mm == pytest.approx(np.hypot(10.0, 2.0), abs=0.5)  # the diagonal
    assert axes.short_mm == pytest.approx(2.0, abs=0.5)  # chord across, not the width
    tall = in_plane_axes(mask, (2.0, 0.5))  # anisotropic pixels: 8 mm × 10 mm
    assert tall.long_mm == pytest.approx(np.hypot(10.0, 8.0), abs=1.0)


@pytest.mark.parametrize("spacing", [(0.7, 0.7, 1.0), (1.0, 1.0, 2.5)])
def test_part_solid_nodule(spacing):
    ph = _phantom(spacing, NoduleSpec(diameter_mm=18, nodule_type=NoduleType.PART_SOLID, solid_component_mm=8,
                                      morphology="round"), zone=Zone.LOWER)
    (m,) = measure_nodules(ph.nodule_mask, ph.volume, ph.lung_mask)
    assert m.nodule_type == NoduleType.PART_SOLID
    assert m.solid_component_mm == pytest.approx(8.0, abs=1.5)
    assert m.mean_diameter_mm == pytest.approx(18.0, abs=1.5)
    assert m.zone == Zone.LOWER and not m.calcified


def test_ground_glass_and_solid_types():
    ph = _phantom((1.0, 1.0, 1.0),
                  NoduleSpec(diameter_mm=12, nodule_type=NoduleType.GROUND_GLASS, morphology="round"))
    (m,) = measure_nodules(ph.nodule_mask, ph.volume, ph.lung_mask)
    assert m.nodule_type == NoduleType.GROUND_GLASS and m.solid_component_mm is None
    assert -700 < m.mean_hu < -300


@pytest.mark.parametrize("pattern", ["diffuse", "central", "popcorn"])
def test_calcification_detected(pattern):
    ph = _phantom((1.0, 1.0, 1.0), NoduleSpec(diameter_mm=10, calcified=True, calcification=pattern,
                                              morphology="round"))
    (m,) = measure_nodules(ph.nodule_mask, ph.volume, ph.lung_mask)
    assert m.calcified and m.nodule_type == NoduleType.SOLID and m.max_hu > 200


def test_types_match_phantom_truth_over_many_nodules():
    agree = total = 0
    for seed in range(4):
        ph = make_ct_phantom(200 + seed, (100, 224, 224), (1.0, 1.0, 1.5), n_nodules=4)
        for n, m in zip(ph.nodules, measure_nodules(ph.nodule_mask, ph.volume, ph.lung_mask)):
            agree += (n.nodule_type, n.calcified) == (m.nodule_type, m.calcified)
            total += 1
    assert total >= 12 and agree / total >= 0.85


def test_boolean_mask_components_are_numbered_in_scan_order():
    mask = np.zeros((30, 60, 60), bool)
    mask[5:10, 5:10, 5:10] = True
    mask[20:26, 40:50, 40:50] = True
    volume = CTVolume(np.where(mask, 30.0, -850.0).astype(np.float32), (1.0, 1.0, 1.0))
    a, b = measure_nodules(mask, volume)
    assert (a.label, b.label) == (1, 2)
    assert a.volume_mm3 == 125.0 and b.volume_mm3 == 600.0
    assert a.bbox_zyx == (5, 5, 5, 10, 10, 10) and b.bbox_zyx == (20, 40, 40, 26, 50, 50)


def test_label_map_keeps_its_labels_and_rejects_bad_shapes():
    labels = np.zeros((10, 20, 20), np.uint16)
    labels[2:5, 2:6, 2:6] = 3
    volume = CTVolume(np.zeros((10, 20, 20), np.float32), (1.0, 1.0, 1.0))
    (m,) = measure_nodules(labels, volume)
    assert m.label == 3
    # an extent from elsewhere (e.g. the isotropic lung mask) decides side and zone
    extent = LungExtent(x_mm=(-10.0, 30.0), y_mm=(0.0, 20.0), z_mm=(-30.0, 0.0))
    (m,) = measure_nodules(labels, volume, extent=extent)
    assert (m.side, m.zone, m.lobe) == (Side.RIGHT, Zone.UPPER, "right upper lobe")
    with pytest.raises(ValueError, match="shape"):
        measure_nodules(labels[:5], volume)


def test_measurement_builds_a_nodule():
    mask, volume = _ellipse_volume(0)
    (m,) = measure_nodules(mask, volume)
    nodule = Nodule(**dataclasses.asdict(m), detection_score=0.9, malignancy_probability=0.2)
    assert nodule.mean_diameter_mm == m.mean_diameter_mm and nodule.description.endswith("mm")
    names = {f.name for f in dataclasses.fields(NoduleMeasurement)}
    assert names <= {f.name for f in dataclasses.fields(Nodule)}


def test_connected_candidates():
    prob = np.zeros((20, 40, 40), np.float32)
    prob[2:8, 2:8, 2:8] = 0.7
    prob[4, 4, 4] = 0.9  # big blob, max 0.9
    prob[12:15, 30:33, 30:33] = 0.95  # smaller blob, max 0.95
    prob[18, 2, 2] = 0.99  # one voxel: below the minimum volume
    prob[10, 20, 20] = 0.3  # below threshold
    labels, cands = connected_candidates(prob, 0.5, min_volume_mm3=5.0, spacing_mm=(0.5, 0.5, 2.0))
    assert labels.dtype == np.uint16 and labels.shape == prob.shape
    assert [c.label for c in cands] == [1, 2]
    assert [c.max_probability for c in cands] == pytest.approx([0.95, 0.9])
    assert cands[0].voxels == 27 and cands[0].volume_mm3 == pytest.approx(27 * 0.5)
    assert cands[1].voxels == 216 and cands[1].mean_probability == pytest.approx((215 * 0.7 + 0.9) / 216)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[13, 31, 31] == 1 and labels[4, 4, 4] == 2 and labels[18, 2, 2] == 0
    empty, none = connected_candidates(np.zeros((4, 4, 4)), 0.5, 1.0, (1.0, 1.0, 1.0))
    assert not empty.any() and none == ()
