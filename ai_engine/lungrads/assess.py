"""Apply the Lung-RADS v2022 table (``table.py``) to one nodule, then to the whole exam."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

from ai_engine.findings import LungRadsAssessment, NoduleType
from ai_engine.lungrads.errors import InvalidNoduleError, LungRadsError
from ai_engine.lungrads.features import AirwayLocation, NoduleFeatures, PriorNodule, round_one_decimal
from ai_engine.lungrads.table import (
    ANY,
    CATEGORIES,
    CATEGORY_ORDER,
    GROWTH_MM,
    GROWTH_MM3,
    RULES,
    STABLE_STEP_DOWN,
    UPGRADABLE_TO_4X,
    Kind,
    Range,
    Row,
    Status,
)

_BASE_KIND = {
    NoduleType.SOLID: Kind.SOLID,
    NoduleType.PART_SOLID: Kind.PART_SOLID,
    NoduleType.GROUND_GLASS: Kind.NON_SOLID,
}


def assess_nodule(features: NoduleFeatures, prior: PriorNodule | None = None) -> LungRadsAssessment:
    """Lung-RADS v2022 category of one nodule; ``prior=None`` means a baseline screening exam."""
    f = _normalised(features)
    if f.benign_calcification or f.fat_containing:
        return _assessment("1", "nodule with benign calcification or fat")
    status = exam_status(f, prior)
    category, finding = _categorise(f, status, prior)
    if f.suspicious_features and category in UPGRADABLE_TO_4X:
        features_text = ", ".join(f.suspicious_features)
        return _assessment("4X", f"category {category} {finding}, with {features_text}")
    return _assessment(category, finding)


def assess_exam(
    nodule_assessments: Iterable[LungRadsAssessment],
    s_findings: bool = False,
    incomplete: bool = False,
) -> LungRadsAssessment:
    """The exam's category: 0 if incomplete, else its most suspicious nodule's (1 if none)."""
    if incomplete:
        return _assessment("0", "part or all of lungs cannot be evaluated", s_findings)
    assessments = list(nodule_assessments)
    unknown = [a.category for a in assessments if a.category not in CATEGORY_ORDER]
    if unknown:
        raise LungRadsError(f"nodule categories {unknown} are not among {CATEGORY_ORDER}")
    worst = max(assessments, key=lambda a: CATEGORY_ORDER.index(a.category), default=None)
    if worst is None:
        return _assessment("1", "no lung nodules", s_findings)
    return LungRadsAssessment(worst.category, worst.management, worst.descriptor, s_findings)


def exam_status(features: NoduleFeatures, prior: PriorNodule | None) -> Status:
    """Baseline, new, growing or stable: v2022 growth is > 1.5 mm (> 2 mm³) in mean size.

    For part-solid nodules growth is judged on the solid component, as the table does; a solid
    component absent on the prior counts as growing. The 12-month interval of the growth
    definition is not enforced: slower growth is still reported as growth (the conservative side).
    """
    if prior is None:
        return Status.BASELINE
    if not prior.present:
        return Status.NEW
    if prior.slow_growth and features.nodule_type is not NoduleType.GROUND_GLASS:
        return Status.SLOW_GROWTH
    if features.nodule_type is NoduleType.PART_SOLID:
        return _growth_status(
            (features.solid_component_mm, prior.solid_component_mm),
            (features.solid_component_mm3, prior.solid_component_mm3),
            absent_prior_is_growth=True,
        )
    return _growth_status(
        (features.mean_diameter_mm, prior.mean_diameter_mm),
        (features.volume_mm3, prior.volume_mm3),
        absent_prior_is_growth=False,
    )


def _growth_status(
    mm: tuple[float | None, float | None],
    mm3: tuple[float | None, float | None],
    absent_prior_is_growth: bool,
) -> Status:
    if mm[0] is not None and mm[1] is not None:
        return Status.GROWING if round(mm[0] - mm[1], 6) > GROWTH_MM else Status.STABLE
    if mm3[0] is not None and mm3[1] is not None:
        return Status.GROWING if round(mm3[0] - mm3[1], 6) > GROWTH_MM3 else Status.STABLE
    if absent_prior_is_growth:
        return Status.GROWING
    raise InvalidNoduleError(
        "prior nodule has no mean_diameter_mm/volume_mm3 comparable with the current one"
    )


def _categorise(f: NoduleFeatures, status: Status, prior: PriorNodule | None) -> tuple[str, str]:
    row = _match(f, status) or _match(f, Status.BASELINE)
    if row is None:
        raise InvalidNoduleError(f"no Lung-RADS v2022 row matches {f!r} ({status.value})")
    if status is Status.STABLE and row.kind in (Kind.SOLID, Kind.PART_SOLID, Kind.JUXTAPLEURAL):
        return _stepped(row, prior)
    return row.category, row.finding


def _stepped(size_row: Row, prior: PriorNodule | None) -> tuple[str, str]:
    """v2022 stepped management; a nodule that crossed a higher size threshold is re-sized."""
    prior_category = prior.category if prior else None
    if prior_category not in STABLE_STEP_DOWN:
        return size_row.category, f"{size_row.finding}, stable"
    if CATEGORY_ORDER.index(size_row.category) > CATEGORY_ORDER.index(prior_category):
        return size_row.category, size_row.finding
    return STABLE_STEP_DOWN[prior_category], f"category {prior_category} nodule stable or decreased"


def _match(f: NoduleFeatures, status: Status) -> Row | None:
    for kind in _kinds(f):
        for row in RULES:
            if row.kind is kind and status in row.statuses and _sizes_match(row, f):
                return row
    return None


def _kinds(f: NoduleFeatures) -> tuple[Kind, ...]:
    base = _BASE_KIND[f.nodule_type]
    if f.airway is AirwayLocation.SEGMENTAL_OR_PROXIMAL:
        return (Kind.AIRWAY_PROXIMAL,)
    if f.airway is AirwayLocation.SUBSEGMENTAL:
        return (Kind.AIRWAY_SUBSEGMENTAL, base)
    if base is Kind.SOLID and f.juxtapleural_benign_morphology:
        return (Kind.JUXTAPLEURAL, Kind.SOLID)
    return (base,)


def _sizes_match(row: Row, f: NoduleFeatures) -> bool:
    total = _in(row.total_mm, row.total_mm3, f.mean_diameter_mm, f.volume_mm3)
    solid = _in(row.solid_mm, row.solid_mm3, f.solid_component_mm, f.solid_component_mm3)
    return total and solid


def _in(range_mm: Range, range_mm3: Range, value_mm: float | None, value_mm3: float | None) -> bool:
    if range_mm == ANY:
        return True  # the row does not constrain this measure
    if value_mm is not None:
        return range_mm.contains(value_mm)
    return value_mm3 is not None and range_mm3.contains(value_mm3)


def _normalised(f: NoduleFeatures) -> NoduleFeatures:
    """Check the features and round sizes the way v2022 reports them."""
    for name in ("mean_diameter_mm", "volume_mm3", "solid_component_mm", "solid_component_mm3"):
        value = getattr(f, name)
        if value is not None and not value >= 0:
            raise InvalidNoduleError(f"{name} must be a non-negative number, got {value!r}")
    benign = f.benign_calcification or f.fat_containing
    if f.mean_diameter_mm is None and f.volume_mm3 is None and not benign and f.airway is None:
        raise InvalidNoduleError("nodule needs mean_diameter_mm or volume_mm3")
    part_solid = f.nodule_type is NoduleType.PART_SOLID
    if part_solid and f.solid_component_mm is None and f.solid_component_mm3 is None and not benign:
        raise InvalidNoduleError("part-solid nodule needs solid_component_mm or solid_component_mm3")
    rounded = _rounded(f, part_solid)
    _check_solid_within_total(rounded)
    return rounded


def _rounded(f: NoduleFeatures, part_solid: bool) -> NoduleFeatures:
    return replace(
        f,
        mean_diameter_mm=_opt(round_one_decimal, f.mean_diameter_mm),
        volume_mm3=_opt(_whole, f.volume_mm3),
        solid_component_mm=_opt(round_one_decimal, f.solid_component_mm) if part_solid else None,
        solid_component_mm3=_opt(_whole, f.solid_component_mm3) if part_solid else None,
    )


def _check_solid_within_total(f: NoduleFeatures) -> None:
    if f.solid_component_mm is not None and f.mean_diameter_mm is not None:
        if f.solid_component_mm > f.mean_diameter_mm:
            raise InvalidNoduleError(
                f"solid_component_mm {f.solid_component_mm} exceeds mean_diameter_mm "
                f"{f.mean_diameter_mm}"
            )


def _opt(fn, value):
    return None if value is None else fn(value)


def _whole(value_mm3: float) -> float:
    """Volumes are reported to the nearest whole mm³ (half up)."""
    return float(Decimal(repr(float(value_mm3))).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _assessment(category: str, finding: str, s_modifier: bool = False) -> LungRadsAssessment:
    info = CATEGORIES[category]
    return LungRadsAssessment(category, info.management, f"{info.descriptor}: {finding}", s_modifier)
