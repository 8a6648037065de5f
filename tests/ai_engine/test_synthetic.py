"""Synthetic chest CT phantoms: reproducibility, tissue HU, label model, exact masks, any grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ai_engine.findings import NoduleType, Side, Subtype, Zone
from ai_engine.synthetic import (
    NoduleSpec,
    draw_attributes,
    lung_point_mm,
    make_ct_dataset,
    make_ct_phantom,
    make_nodule_patch,
    make_patch_dataset,
    p_malignant,
)
from ai_engine.synthetic.labels import POPULATION_MALIGNANT_P, posterior_malignant
from ai_engine.train.tasks import roc_auc_or_nan


@pytest.fixture(scope="module")
def phantom():
    return make_ct_phantom(11, n_nodules=3)


def _attrs(n: int, seed: int = 0, **spec):
    rng = np.random.default_rng(seed)
    return [draw_attributes(rng, NoduleSpec(**spec)) for _ in range(n)]


# -- reproducibility ----------------------------------------------------------------------------
def test_same_seed_gives_identical_phantom():
    a, b = make_ct_phantom(5), make_ct_phantom(5)
    assert np.array_equal(a.volume.hu, b.volume.hu)
    assert np.array_equal(a.nodule_mask, b.nodule_mask)
    assert np.array_equal(a.lung_mask, b.lung_mask)
    assert a.nodules == b.nodules


def test_different_seeds_differ():
    a, b = make_ct_phantom(5, n_nodules=2), make_ct_phantom(6, n_nodules=2)
    assert not np.array_equal(a.volume.hu, b.volume.hu)
    assert [n.centre_mm for n in a.nodules] != [n.centre_mm for n in b.nodules]


def test_nodule_request_leaves_the_seeds_anatomy_alone():
    """Anatomy, vessels and noise come from their own streams: only the nodules differ."""
    a = make_ct_phantom(8, n_nodules=0)
    b = make_ct_phantom(8, n_nodules=2)
    assert np.array_equal(a.lung_mask, b.lung_mask)  # drawn nodules stay inside the lungs
    outside = ndimage.binary_dilation(b.nodule_mask > 0, iterations=12) == 0
    assert np.array_equal(a.volume.hu[outside], b.volume.hu[outside])


# -- geometry and tissues -----------------------------------------------------------------------
def test_default_phantom_geometry(phantom):
    v = phantom.volume
    assert v.hu.shape == (96, 160, 160) and v.hu.dtype == np.float32
    assert v.spacing_mm == (2.0, 2.0, 2.5)
    assert phantom.nodule_mask.dtype == np.uint16 and phantom.lung_mask.dtype == bool
    body_x = np.flatnonzero((v.hu > -500).any(axis=(0, 1))) * v.spacing_mm[0]
    assert 250 <= body_x[-1] - body_x[0] <= 320  # an adult chest's width
    centre_mm = v.index_to_mm(tuple((n - 1) / 2 for n in v.hu.shape))
    assert np.allclose(centre_mm, 0.0, atol=1e-6)


def test_tissue_hu_ranges(phantom):
    hu = phantom.volume.hu
    parenchyma = hu[phantom.lung_mask & (phantom.nodule_mask == 0)]
    assert -900 <= np.median(parenchyma) <= -800
    assert -1020 <= float(hu[:, :5, :5].mean()) <= -980  # air outside the body
    frac = lambda lo, hi: float(np.mean((hu >= lo) & (hu <= hi)))
    assert frac(-130, -70) > 0.01  # fat
    assert frac(20, 70) > 0.05  # muscle, heart, liver
    assert frac(500, 1000) > 0.001  # ribs, sternum, spine
    lungs, _ = ndimage.label(phantom.lung_mask)
    sizes = np.sort(np.bincount(lungs.ravel())[1:])[::-1]
    assert sizes[:2].sum() > 0.999 * sizes.sum() and sizes[1] > 0.5 * sizes[0]  # two lungs


def test_nodule_hu_by_type():
    specs = [NoduleSpec(diameter_mm=14, nodule_type=NoduleType.SOLID, calcified=False, morphology="round"),
             NoduleSpec(diameter_mm=14, nodule_type=NoduleType.GROUND_GLASS, morphology="round"),
             NoduleSpec(diameter_mm=12, calcified=True, calcification="diffuse", morphology="round"),
             NoduleSpec(diameter_mm=18, nodule_type=NoduleType.PART_SOLID, solid_component_mm=9, morphology="round")]
    ph = make_ct_phantom(3, shape_zyx=(80, 192, 192), spacing_mm=(1.0, 1.0, 1.5), nodule_spec=specs)
    core = lambda i, r_mm: ph.volume.hu[_ball(ph, i, r_mm)]
    assert 0 <= core(0, 4).mean() <= 100
    assert -700 <= np.median(core(1, 4)) <= -350
    assert core(2, 3).mean() >= 200
    assert 0 <= core(3, 2.5).mean() <= 100  # solid core
    shell = _ball(ph, 3, 8) & ~_ball(ph, 3, 6)
    assert -700 <= np.median(ph.volume.hu[shell]) <= -350  # ground-glass halo


def _ball(ph, i, r_mm):
    n = ph.nodules[i]
    z, y, x = np.indices(ph.volume.hu.shape, dtype=float)
    sx, sy, sz = ph.volume.spacing_mm
    cz, cy, cx = n.centre_zyx
    return ((z - cz) * sz) ** 2 + ((y - cy) * sy) ** 2 + ((x - cx) * sx) ** 2 <= r_mm**2


# -- label model --------------------------------------------------------------------------------
def test_diameters_peak_at_5_to_10_mm():
    d = np.array([a.diameter_mm for a in _attrs(3000)])
    assert d.min() >= 3.0 and d.max() <= 30.0
    counts, _ = np.histogram(d, bins=[3, 5, 10, 15, 20, 25, 30])
    assert np.argmax(counts) == 1
    assert 0.4 <= counts[1] / len(d) <= 0.65
    assert counts[-1] < counts[2] < counts[1]  # right-skewed


def test_larger_nodules_are_more_malignant():
    ps = [p_malignant(d, Zone.LOWER, NoduleType.SOLID, False) for d in (4, 6, 8, 12, 20, 30)]
    assert all(a < b for a, b in zip(ps, ps[1:]))
    assert p_malignant(8, Zone.UPPER, NoduleType.SOLID, False) > p_malignant(8, Zone.LOWER, NoduleType.SOLID, False)
    assert p_malignant(8, Zone.LOWER, NoduleType.PART_SOLID, False) > p_malignant(8, Zone.LOWER, NoduleType.SOLID, False)
    assert p_malignant(15, Zone.LOWER, NoduleType.SOLID, True) < 0.1
    attrs = _attrs(3000, seed=1)
    rate = lambda sel: np.mean([a.malignant for a in attrs if sel(a)])
    assert rate(lambda a: a.diameter_mm >= 15) > rate(lambda a: 6 <= a.diameter_mm < 15) > rate(lambda a: a.diameter_mm < 6)
    assert rate(lambda a: a.zone == Zone.UPPER) > rate(lambda a: a.zone == Zone.LOWER)
    assert rate(lambda a: a.calcified) < 0.05


def test_label_sampled_from_the_model_probability():
    attrs = _attrs(3000, seed=2)
    p = np.array([a.p_malignant for a in attrs])
    y = np.array([a.malignant for a in attrs])
    for lo, hi in ((0.0, 0.2), (0.2, 0.5), (0.5, 1.0)):
        sel = (p >= lo) & (p < hi)
        assert abs(y[sel].mean() - p[sel].mean()) < 0.05


def test_the_population_malignant_rate_is_the_mean_of_p():
    assert abs(np.mean([a.p_malignant for a in _attrs(3000, seed=9)]) - POPULATION_MALIGNANT_P) < 0.02


def test_the_posterior_is_calibrated_where_half_the_nodules_are_malignant():
    """posterior_malignant: P(malignant | all that was drawn) in a half-malignant set (the training
    patches'): in bins of it the malignant fraction matches it, and with the margin, placement and
    solid fraction it ranks the labels far better than step 4's probability alone."""
    rng = np.random.default_rng(8)
    attrs = [draw_attributes(rng, NoduleSpec(malignant=bool(i % 2))) for i in range(4000)]
    q = np.array([posterior_malignant(a) for a in attrs])
    p = np.array([a.p_malignant for a in attrs])
    y = np.array([a.malignant for a in attrs])
    for lo, hi in ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.01)):
        sel = (q >= lo) & (q < hi)
        assert sel.sum() > 200 and abs(y[sel].mean() - q[sel].mean()) < 0.05
    assert roc_auc_or_nan(y, q) > roc_auc_or_nan(y, p) + 0.08
    spiculated = [a for a in attrs if a.morphology == "spiculated"]
    assert posterior_malignant(spiculated[0], prior=0.2) < posterior_malignant(spiculated[0])


def test_the_posterior_without_the_zone_averages_step_4_over_the_zones():
    """zone_known=False: the same nodule drawn in the upper and the lower zone gets one posterior, between
    the two that know the zone; over a population, knowing the zone ranks the labels at least as well."""
    from dataclasses import replace
    from ai_engine.synthetic.labels import p_malignant

    solid = next(a for a in _attrs(200, seed=21) if a.nodule_type == NoduleType.SOLID and not a.calcified
                 and a.solid_component_mm is None and not a.cavitated)
    upper, lower = (replace(solid, zone=z, p_malignant=p_malignant(solid.diameter_mm, z, solid.nodule_type, False))
                    for z in (Zone.UPPER, Zone.LOWER))
    blind = posterior_malignant(upper, zone_known=False)
    assert blind == posterior_malignant(lower, zone_known=False)
    assert posterior_malignant(lower) < blind < posterior_malignant(upper)
    attrs = _attrs(4000, seed=22)
    y = np.array([a.malignant for a in attrs])
    known = roc_auc_or_nan(y, np.array([posterior_malignant(a, POPULATION_MALIGNANT_P) for a in attrs]))
    unknown = roc_auc_or_nan(y, np.array([posterior_malignant(a, POPULATION_MALIGNANT_P, zone_known=False) for a in attrs]))
    assert known > unknown > 0.85


def test_an_observer_blind_to_lobulation_reads_round_and_lobulated_alike():
    """malignant_log_odds(lobulation_seen=False): round and lobulated copies of a nodule get one
    log-odds, between the two it gives when lobulation is seen; spiculation stays seen. The posterior
    is its sigmoid, and a cavity settles the label (+inf)."""
    from dataclasses import replace
    from ai_engine.synthetic.labels import malignant_log_odds

    solid = next(a for a in _attrs(200, seed=23) if a.nodule_type == NoduleType.SOLID and not a.cavitated)
    round_, lobulated, spiculated = (replace(solid, morphology=m) for m in ("round", "lobulated", "spiculated"))
    blind = malignant_log_odds(round_, lobulation_seen=False)
    assert blind == malignant_log_odds(lobulated, lobulation_seen=False)
    assert malignant_log_odds(round_) < blind < malignant_log_odds(lobulated)
    assert malignant_log_odds(spiculated, lobulation_seen=False) == malignant_log_odds(spiculated)
    assert posterior_malignant(lobulated) == pytest.approx(1 / (1 + np.exp(-malignant_log_odds(lobulated))))
    assert malignant_log_odds(replace(solid, cavitated=True)) == np.inf


def test_the_ceiling_recipe_scores_observers_who_know_less_lower():
    """recipes/malignancy_ceiling: over evaluate's population the label model's own log-odds rank the
    labels far above chance, and an observer blind to the zone and to lobulation under 8 mm ranks them worse."""
    from ai_engine.train.recipes.malignancy_ceiling import ceilings

    auc = ceilings([a for a in _attrs(4000, seed=24) if a.diameter_mm >= 4.0])
    assert set(auc) == {"everything drawn", "all but the zone", "all but the zone, lobulation only from 6 mm",
                        "all but the zone, lobulation only from 8 mm"}
    assert auc["everything drawn"] > 0.9
    assert auc["everything drawn"] > auc["all but the zone, lobulation only from 8 mm"] + 0.005


def test_morphology_and_subtype_follow_the_label():
    malignant = _attrs(600, seed=3, malignant=True)
    benign = _attrs(600, seed=4, malignant=False)
    assert all(a.malignant for a in malignant) and not any(a.malignant for a in benign)
    assert np.mean([a.diameter_mm for a in malignant]) > np.mean([a.diameter_mm for a in benign]) + 3
    assert np.mean([a.morphology != "round" for a in malignant]) > 0.8
    assert np.mean([a.morphology == "round" for a in benign]) > 0.65
    assert all(a.subtype is None for a in benign) and all(a.subtype is not None for a in malignant)
    sub = lambda s: [a for a in malignant if a.subtype == s]
    assert all(a.placement in ("central", "intermediate") for a in sub(Subtype.SQUAMOUS_CELL_CARCINOMA))
    assert all(a.nodule_type == NoduleType.SOLID for a in sub(Subtype.LARGE_CELL_CARCINOMA) if a.cavitated)
    large = _attrs(200, seed=5, subtype=Subtype.LARGE_CELL_CARCINOMA)
    adeno = _attrs(200, seed=6, subtype=Subtype.ADENOCARCINOMA)
    assert np.mean([a.diameter_mm for a in large]) > np.mean([a.diameter_mm for a in adeno])
    assert np.mean([a.nodule_type != NoduleType.SOLID for a in adeno]) > np.mean(
        [a.nodule_type != NoduleType.SOLID for a in large])
    squamous = _attrs(300, seed=7, subtype=Subtype.SQUAMOUS_CELL_CARCINOMA)
    assert any(a.cavitated for a in squamous)
    assert all(a.diameter_mm >= 10 for a in squamous if a.cavitated)


# -- masks --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing", [(0.7, 0.7, 1.0), (1.0, 1.0, 2.5)])
def test_exact_sphere_at_a_chosen_point(spacing):
    shape = (70, 192, 192) if spacing[0] < 1 else (60, 160, 160)
    centre = lung_point_mm(4, Side.RIGHT, Zone.MIDDLE, shape, spacing)
    spec = NoduleSpec(centre_mm=centre, diameter_mm=10, nodule_type=NoduleType.SOLID, morphology="round",
                      calcified=False)
    ph = make_ct_phantom(4, shape, spacing, nodule_spec=[spec])
    (truth,) = ph.nodules
    assert truth.centre_mm == pytest.approx(centre)
    z, y, x = np.indices(shape, dtype=float)
    sx, sy, sz = spacing
    cz, cy, cx = truth.centre_zyx
    expected = ((z - cz) * sz) ** 2 + ((y - cy) * sy) ** 2 + ((x - cx) * sx) ** 2 <= 25.0
    assert np.array_equal(ph.nodule_mask == 1, expected)
    volume = expected.sum() * sx * sy * sz
    assert volume == pytest.approx(4 / 3 * np.pi * 125, rel=0.1)
    assert truth.volume_mm3 == pytest.approx(volume)
    assert (truth.side, truth.zone) == (Side.RIGHT, Zone.MIDDLE)
    assert ph.lung_mask[ph.nodule_mask == 1].all()


@pytest.mark.parametrize("morphology", ["round", "lobulated"])
def test_a_nodule_smaller_than_a_voxel_still_shows_in_one(morphology):
    shape, spacing = (40, 100, 100), (2.5, 2.5, 2.5)
    centre = lung_point_mm(5, Side.LEFT, Zone.LOWER, shape, spacing)
    spec = NoduleSpec(centre_mm=centre, diameter_mm=3.0, nodule_type=NoduleType.SOLID, calcified=False,
                      morphology=morphology)
    ph = make_ct_phantom(5, shape, spacing, nodule_spec=[spec])
    (truth,) = ph.nodules
    assert (ph.nodule_mask == 1).sum() >= 1
    assert truth.volume_mm3 == pytest.approx((ph.nodule_mask == 1).sum() * 2.5 ** 3)
    assert ph.volume.hu[ph.nodule_mask == 1].max() > -600  # drawn (blurred into lung at -850), not just labelled


def test_drawn_nodules_lie_in_the_lungs_with_consistent_truth(phantom):
    assert len(phantom.nodules) == 3
    labels = set(np.unique(phantom.nodule_mask)) - {0}
    assert labels == {1, 2, 3}
    voxel = float(np.prod(phantom.volume.spacing_mm))
    for n in phantom.nodules:
        mask = phantom.nodule_mask == n.label
        assert mask.sum() * voxel == pytest.approx(n.volume_mm3)
        assert phantom.lung_mask[tuple(int(round(c)) for c in n.centre_zyx)]
        assert (n.side == Side.RIGHT) == (n.centre_mm[0] < 0)  # +x is the patient's left (LPS)
        assert 3.0 <= n.diameter_mm <= 30.0


@pytest.mark.parametrize("shape,spacing", [((1, 64, 64), (0.6, 0.6, 0.6)), ((7, 100, 90), (2.5, 2.5, 2.5)),
                                           ((33, 80, 120), (0.6, 0.6, 2.5)), ((50, 128, 128), (2.5, 2.5, 0.6))])
def test_any_spacing_and_slice_count(shape, spacing):
    ph = make_ct_phantom(2, shape, spacing, n_nodules=1)
    assert ph.volume.hu.shape == shape and ph.volume.spacing_mm == spacing
    assert ph.nodule_mask.shape == shape and ph.lung_mask.shape == shape
    assert ph.lung_mask.any() and np.isfinite(ph.volume.hu).all()
    (n,) = ph.nodules
    assert (ph.nodule_mask == 1).sum() * np.prod(spacing) == pytest.approx(n.volume_mm3)


def test_full_size_scan():
    ph = make_ct_phantom(1, (300, 512, 512), (0.7, 0.7, 1.0), n_nodules=2)
    assert ph.volume.hu.shape == (300, 512, 512)
    assert 0.05 < ph.lung_mask.mean() < 0.4
    for n in ph.nodules:
        assert (ph.nodule_mask == n.label).sum() > 0


def test_dataset_is_one_phantom_per_seed():
    phantoms = list(make_ct_dataset([1, 2], shape_zyx=(20, 64, 64), n_nodules=1))
    assert [p.seed for p in phantoms] == [1, 2]
    assert np.array_equal(phantoms[0].volume.hu, make_ct_phantom(1, (20, 64, 64), n_nodules=1).volume.hu)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="shape_zyx"):
        make_ct_phantom(1, shape_zyx=(0, 10, 10))
    with pytest.raises(ValueError, match="spacing_mm"):
        make_ct_phantom(1, spacing_mm=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="n_nodules"):
        make_ct_phantom(1, n_nodules=-1)


# -- patches ------------------------------------------------------------------------------------
def test_nodule_patch_shape_truth_and_reproducibility():
    patch, truth = make_nodule_patch(3)
    assert patch.shape == (64, 64, 64) and patch.dtype == np.float32
    assert np.allclose(truth.centre_zyx, 31.5, atol=3.01)
    again, truth2 = make_nodule_patch(3)
    assert np.array_equal(patch, again) and truth == truth2
    small, _ = make_nodule_patch(3, size_mm=32, spacing_mm=0.5)
    assert small.shape == (64, 64, 64)


def test_nodule_patch_honours_the_requested_label():
    for seed in range(6):
        _, t = make_nodule_patch(seed, malignant=True)
        assert t.malignant and t.subtype is not None
        _, t = make_nodule_patch(seed, malignant=False)
        assert not t.malignant and t.subtype is None
        _, t = make_nodule_patch(seed, subtype=Subtype.SQUAMOUS_CELL_CARCINOMA)
        assert t.malignant and t.subtype == Subtype.SQUAMOUS_CELL_CARCINOMA


def test_nodule_patch_shows_the_nodule():
    for seed, (patch, t) in enumerate(make_patch_dataset(range(8), malignant=False)):
        c = tuple(int(round(v)) for v in t.centre_zyx)
        centre_hu = patch[c[0] - 1:c[0] + 2, c[1] - 1:c[1] + 2, c[2] - 1:c[2] + 2].mean()
        if t.nodule_type == NoduleType.GROUND_GLASS:
            assert -750 < centre_hu < -250, (seed, t)
        elif not t.cavitated and t.diameter_mm >= 5:
            assert centre_hu > -300, (seed, t)
        assert np.mean(patch < -600) > 0.3  # lung parenchyma around it (chest wall may take half)


def _central_blob_mm3(patch: np.ndarray, centre_zyx) -> float:
    """Volume of the above-lung (> -700 HU) component at the nodule centre (1 mm voxels)."""
    labels, _ = ndimage.label(patch > -700)
    return float((labels == labels[tuple(int(round(c)) for c in centre_zyx)]).sum())


def _outline_spread(mask: np.ndarray) -> float:
    """Coefficient of variation of the outline voxels' distance to the centroid (0 for a sphere's)."""
    centre = np.argwhere(mask).mean(0)
    r = np.linalg.norm(np.argwhere(mask & ~ndimage.binary_erosion(mask)) - centre, axis=1)
    return float(r.std() / r.mean())


def test_lobulated_outlines_undulate_where_round_ones_do_not():
    """Step 5 of the label model makes a lobulated nodule's odds of malignancy 13 times a round
    one's, so the exact mask must show it: every lobulated 6–10 mm nodule's outline spreads more than
    any round one's."""
    spread = {}
    for morphology in ("round", "lobulated"):
        specs = [NoduleSpec(centre_mm=lung_point_mm(20 + i, Side.RIGHT if i % 2 else Side.LEFT, Zone.MIDDLE,
                                                    (80, 160, 160), (1.0, 1.0, 1.0)),
                            diameter_mm=6.0 + i, nodule_type=NoduleType.SOLID, calcified=False, morphology=morphology)
                 for i in range(5)]
        ph = make_ct_phantom(20, (80, 160, 160), (1.0, 1.0, 1.0), nodule_spec=specs)
        spread[morphology] = [_outline_spread(ph.nodule_mask == t.label) for t in ph.nodules]
    assert min(spread["lobulated"]) > max(spread["round"]), spread


def test_the_image_carries_the_malignancy_signal():
    """Without looking at labels, the blob at the centre is larger for malignant patches."""
    sizes = {m: [_central_blob_mm3(p, t.centre_zyx) for p, t in make_patch_dataset(range(25), malignant=m)]
             for m in (False, True)}
    assert np.median(sizes[True]) > 2 * np.median(sizes[False])
