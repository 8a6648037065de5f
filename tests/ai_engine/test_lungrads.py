"""Lung-RADS v2022: every row of the table at its boundary sizes, baseline and follow-up."""

import itertools

import pytest

from ai_engine.findings import LungRadsAssessment, NoduleType
from ai_engine.lungrads import (
    AirwayLocation,
    InvalidNoduleError,
    LungRadsError,
    NoduleFeatures,
    PriorNodule,
    assess_exam,
    assess_nodule,
    mean_diameter_mm,
)
from ai_engine.lungrads.table import RULES, Kind, Status

SOLID, PART, GGN = NoduleType.SOLID, NoduleType.PART_SOLID, NoduleType.GROUND_GLASS
WORKUP = "Diagnostic chest CT with or without contrast"


def cat(nodule_type, d=None, solid=None, prior=None, **kw):
    f = NoduleFeatures(nodule_type, mean_diameter_mm=d, solid_component_mm=solid, **kw)
    return assess_nodule(f, prior).category


@pytest.mark.parametrize(
    "d, expected",
    [(0.5, "2"), (5.9, "2"), (5.94, "2"), (5.95, "3"), (6.0, "3"), (7.9, "3"), (8.0, "4A"),
     (14.9, "4A"), (15.0, "4B"), (40.0, "4B")],
)
def test_solid_baseline_diameter(d, expected):
    assert cat(SOLID, d) == expected


@pytest.mark.parametrize(
    "v, expected",
    [(112.0, "2"), (112.4, "2"), (112.5, "3"), (113.0, "3"), (267.0, "3"), (268.0, "4A"),
     (1766.0, "4A"), (1767.0, "4B")],
)
def test_solid_baseline_volume_alternative(v, expected):
    assert assess_nodule(NoduleFeatures(SOLID, volume_mm3=v)).category == expected


def test_diameter_wins_over_volume():
    f = NoduleFeatures(SOLID, mean_diameter_mm=5.0, volume_mm3=300.0)
    assert assess_nodule(f).category == "2"


@pytest.mark.parametrize(
    "total, solid, expected",
    [(5.9, 3.0, "2"), (5.9, 5.9, "2"), (6.0, 5.9, "3"), (12.0, 0.5, "3"), (6.0, 6.0, "4A"),
     (10.0, 7.9, "4A"), (10.0, 8.0, "4B"), (25.0, 20.0, "4B")],
)
def test_part_solid_baseline(total, solid, expected):
    assert cat(PART, total, solid) == expected


def test_part_solid_volume_alternative():
    f = NoduleFeatures(PART, volume_mm3=200.0, solid_component_mm3=112.0)
    assert assess_nodule(f).category == "3"
    f = NoduleFeatures(PART, volume_mm3=900.0, solid_component_mm3=268.0)
    assert assess_nodule(f).category == "4B"


@pytest.mark.parametrize("d, expected", [(1.0, "2"), (29.9, "2"), (30.0, "3"), (55.0, "3")])
def test_ground_glass_baseline(d, expected):
    assert cat(GGN, d) == expected


@pytest.mark.parametrize(
    "kw", [dict(benign_calcification=True), dict(fat_containing=True)]
)
def test_benign_features_are_category_1_whatever_the_size(kw):
    a = assess_nodule(NoduleFeatures(SOLID, mean_diameter_mm=22.0, **kw))
    assert a.category == "1"
    assert a.management == "12-month screening LDCT"
    assert a.descriptor.startswith("Negative")


@pytest.mark.parametrize(
    "d, expected", [(9.9, "2"), (10.0, "4A"), (16.0, "4B"), (5.0, "2")]
)
def test_juxtapleural_benign_morphology(d, expected):
    assert cat(SOLID, d, juxtapleural_benign_morphology=True) == expected


def test_juxtapleural_rule_is_for_solid_nodules_only():
    assert cat(SOLID, 7.0, juxtapleural_benign_morphology=True) == "2"
    assert cat(PART, 9.0, 6.5, juxtapleural_benign_morphology=True) == "4A"


def test_juxtapleural_applies_to_new_nodules_too():
    assert cat(SOLID, 9.0, prior=PriorNodule(present=False), juxtapleural_benign_morphology=True) == "2"


def test_airway_nodules():
    assert cat(SOLID, 5.0, airway=AirwayLocation.SUBSEGMENTAL) == "2"
    assert cat(SOLID, 9.0, airway=AirwayLocation.SUBSEGMENTAL) == "2"
    proximal = AirwayLocation.SEGMENTAL_OR_PROXIMAL
    assert cat(SOLID, 5.0, airway=proximal) == "4A"
    stable = PriorNodule(mean_diameter_mm=5.0, category="4A")
    assert cat(SOLID, 5.0, prior=stable, airway=proximal) == "4B"  # no step-down for airway


@pytest.mark.parametrize(
    "nodule_type, d, solid, before, after",
    [(SOLID, 7.0, None, "3", "4X"), (SOLID, 10.0, None, "4A", "4X"), (SOLID, 16.0, None, "4B", "4X"),
     (SOLID, 4.0, None, "2", "2"), (PART, 8.0, 6.5, "4A", "4X"), (GGN, 31.0, None, "3", "4X")],
)
def test_4x_upgrade_only_for_category_3_and_4(nodule_type, d, solid, before, after):
    assert cat(nodule_type, d, solid) == before
    a = assess_nodule(NoduleFeatures(nodule_type, d, solid_component_mm=solid,
                                     suspicious_features=("spiculation",)))
    assert a.category == after
    if after == "4X":
        assert "spiculation" in a.descriptor and a.management.startswith(WORKUP)


def test_management_text_per_category():
    assert assess_nodule(NoduleFeatures(SOLID, 7.0)).management == "6-month LDCT"
    m4a = assess_nodule(NoduleFeatures(SOLID, 9.0)).management
    assert m4a.startswith("3-month LDCT") and "PET/CT may be considered" in m4a
    assert assess_nodule(NoduleFeatures(SOLID, 15.0)).management.startswith(WORKUP)
    assert assess_nodule(NoduleFeatures(SOLID, 3.0)).descriptor.startswith("Benign")


# --- follow-up rows (prior given) -------------------------------------------------------------

NEW = PriorNodule(present=False)


@pytest.mark.parametrize(
    "d, expected", [(3.9, "2"), (4.0, "3"), (5.9, "3"), (6.0, "4A"), (7.9, "4A"), (8.0, "4B")]
)
def test_new_solid(d, expected):
    assert cat(SOLID, d, prior=NEW) == expected


@pytest.mark.parametrize(
    "total, solid, expected", [(5.9, 2.0, "3"), (6.0, 3.9, "4A"), (9.0, 4.0, "4B")]
)
def test_new_part_solid(total, solid, expected):
    assert cat(PART, total, solid, prior=NEW) == expected


@pytest.mark.parametrize("d, expected", [(29.9, "2"), (30.0, "3")])
def test_new_ground_glass(d, expected):
    assert cat(GGN, d, prior=NEW) == expected


def test_growing_solid():
    # growth is > 1.5 mm: 1.5 exactly is not growth
    assert cat(SOLID, 5.5, prior=PriorNodule(mean_diameter_mm=4.0, category="2")) == "2"
    assert cat(SOLID, 5.6, prior=PriorNodule(mean_diameter_mm=4.0, category="2")) == "4A"
    assert cat(SOLID, 7.9, prior=PriorNodule(mean_diameter_mm=6.0, category="3")) == "4A"
    assert cat(SOLID, 8.0, prior=PriorNodule(mean_diameter_mm=6.0, category="3")) == "4B"


def test_growing_solid_by_volume():
    f = NoduleFeatures(SOLID, volume_mm3=120.0)
    assert assess_nodule(f, PriorNodule(volume_mm3=118.0, category="3")).category == "2"
    assert assess_nodule(f, PriorNodule(volume_mm3=117.0, category="3")).category == "4A"


def test_growing_part_solid_component():
    prior = PriorNodule(mean_diameter_mm=10.0, solid_component_mm=1.0, category="3")
    assert cat(PART, 10.0, 3.9, prior=prior) == "4A"
    assert cat(PART, 10.0, 4.0, prior=prior) == "4B"
    assert cat(PART, 10.0, 3.9, prior=PriorNodule(mean_diameter_mm=9.0)) == "4A"  # new solid part


def test_ground_glass_growing_or_stable_is_benign():
    assert cat(GGN, 25.0, prior=PriorNodule(mean_diameter_mm=20.0)) == "2"
    assert cat(GGN, 35.0, prior=PriorNodule(mean_diameter_mm=32.0)) == "2"
    assert cat(GGN, 35.0, prior=PriorNodule(mean_diameter_mm=35.0, category="3")) == "2"


def test_stepped_management_of_stable_nodules():
    assert cat(SOLID, 7.0, prior=PriorNodule(mean_diameter_mm=7.0, category="3")) == "2"
    assert cat(SOLID, 10.0, prior=PriorNodule(mean_diameter_mm=9.5, category="4A")) == "3"
    # stable but crossing a higher size threshold: reclassified by size
    assert cat(SOLID, 8.0, prior=PriorNodule(mean_diameter_mm=7.0, category="3")) == "4A"
    assert cat(SOLID, 5.0, prior=PriorNodule(mean_diameter_mm=5.0, category="2")) == "2"


def test_slow_growth_over_multiple_exams_is_4b():
    slow = PriorNodule(mean_diameter_mm=5.0, category="2", slow_growth=True)
    assert cat(SOLID, 5.5, prior=slow) == "4B"
    assert cat(PART, 9.0, 2.0, prior=slow) == "4B"
    assert cat(GGN, 20.0, prior=slow) == "2"  # slowly growing GGN stays benign


def test_growing_juxtapleural_nodule_gets_the_solid_growth_rows():
    grown = PriorNodule(mean_diameter_mm=7.0, category="2")
    assert cat(SOLID, 9.9, prior=grown, juxtapleural_benign_morphology=True) == "4B"


# --- the table itself -------------------------------------------------------------------------


def test_rows_do_not_overlap():
    sizes = [x / 2 for x in range(0, 80)]
    for row_a, row_b in itertools.combinations(RULES, 2):
        if row_a.kind is not row_b.kind or not (row_a.statuses & row_b.statuses):
            continue
        for total, solid in itertools.product(sizes, sizes):
            both = all(
                r.total_mm.contains(total) and r.solid_mm.contains(solid) for r in (row_a, row_b)
            )
            assert not (both and solid <= total), (row_a.finding, row_b.finding, total, solid)


def test_every_row_is_reachable():
    """Each row of the table is the one chosen for some input (no dead rows)."""
    hit = set()
    kinds = {Kind.SOLID: SOLID, Kind.PART_SOLID: PART, Kind.NON_SOLID: GGN}
    for row in RULES:
        for status in row.statuses:
            prior = {
                Status.BASELINE: None,
                Status.NEW: PriorNodule(present=False),
                Status.GROWING: None,
                Status.STABLE: None,
                Status.SLOW_GROWTH: PriorNodule(mean_diameter_mm=1.0, slow_growth=True),
            }[status]
            total = row.total_mm.lo if row.total_mm.hi != float("inf") or row.total_mm.lo else 12.0
            total = max(total, row.solid_mm.lo, 0.5)
            solid = row.solid_mm.lo if row.kind is Kind.PART_SOLID else None
            kw = {}
            nodule_type = kinds.get(row.kind, SOLID)
            if row.kind is Kind.JUXTAPLEURAL:
                kw["juxtapleural_benign_morphology"] = True
            if row.kind is Kind.AIRWAY_SUBSEGMENTAL:
                kw["airway"] = AirwayLocation.SUBSEGMENTAL
            if row.kind is Kind.AIRWAY_PROXIMAL:
                kw["airway"] = AirwayLocation.SEGMENTAL_OR_PROXIMAL
            if status is Status.STABLE:
                prior = PriorNodule(mean_diameter_mm=total, solid_component_mm=solid)
            if status is Status.GROWING:
                total = max(total, 2.0)
                prior = PriorNodule(mean_diameter_mm=total - 2.0)  # no solid part before
            f = NoduleFeatures(nodule_type, mean_diameter_mm=total, solid_component_mm=solid, **kw)
            a = assess_nodule(f, prior)
            if a.descriptor.endswith(row.finding):
                hit.add(row.finding)
    assert hit == {r.finding for r in RULES}


# --- sizes and errors -------------------------------------------------------------------------


def test_mean_diameter_rounding_v2022():
    assert mean_diameter_mm(6.04, 5.86) == 6.0  # 6.0 and 5.9 -> 5.95 -> 6.0 (half up)
    assert mean_diameter_mm(7.0, 4.8) == 5.9
    assert mean_diameter_mm(8.26, 7.71) == 8.0  # 8.3, 7.7


@pytest.mark.parametrize(
    "features, match",
    [
        (NoduleFeatures(SOLID), "mean_diameter_mm or volume_mm3"),
        (NoduleFeatures(SOLID, mean_diameter_mm=-1.0), "mean_diameter_mm must be"),
        (NoduleFeatures(PART, mean_diameter_mm=8.0), "solid_component"),
        (NoduleFeatures(PART, mean_diameter_mm=8.0, solid_component_mm=9.0), "exceeds"),
        (NoduleFeatures(SOLID, mean_diameter_mm=float("nan")), "mean_diameter_mm must be"),
    ],
)
def test_invalid_features_raise(features, match):
    with pytest.raises(InvalidNoduleError, match=match):
        assess_nodule(features)


def test_prior_without_size_is_an_error():
    with pytest.raises(InvalidNoduleError, match="prior"):
        assess_nodule(NoduleFeatures(SOLID, mean_diameter_mm=5.0), PriorNodule())


# --- exam level -------------------------------------------------------------------------------


def test_exam_no_nodules_is_1():
    a = assess_exam([])
    assert (a.category, a.s_modifier) == ("1", False)
    assert a.management == "12-month screening LDCT"


def test_exam_takes_most_suspicious_nodule():
    parts = [assess_nodule(NoduleFeatures(SOLID, d)) for d in (3.0, 9.0, 7.0)]
    exam = assess_exam(parts)
    assert exam.category == "4A" and exam.descriptor == parts[1].descriptor
    spiculated = assess_nodule(NoduleFeatures(SOLID, 7.0, suspicious_features=("spiculation",)))
    big = assess_nodule(NoduleFeatures(SOLID, 20.0))
    assert assess_exam([big, spiculated]).category == "4X"


def test_exam_s_modifier_and_incomplete():
    parts = [assess_nodule(NoduleFeatures(SOLID, 3.0))]
    s = assess_exam(parts, s_findings=True)
    assert (s.category, s.s_modifier) == ("2", True)
    zero = assess_exam(parts, incomplete=True)
    assert zero.category == "0" and zero.management.startswith("Comparison to prior chest CT")
    assert isinstance(zero, LungRadsAssessment)


def test_exam_rejects_unknown_categories():
    with pytest.raises(LungRadsError, match="'5'"):
        assess_exam([LungRadsAssessment("5", "none")])
