"""ACR Lung-RADS v2022 as data: the assessment-category rows and the management per category.

Each :class:`Row` is one line of the v2022 "Findings" column: a nodule kind, the exam statuses it
applies to (baseline, new, growing, stable), and half-open size ranges ``[lo, hi)`` on the total
mean diameter / volume and, for part-solid nodules, on the solid component. The evaluator in
``assess.py`` picks the matching row; nothing about categories lives in code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    SOLID = "solid"
    PART_SOLID = "part-solid"
    NON_SOLID = "non-solid (GGN)"
    JUXTAPLEURAL = "juxtapleural"
    AIRWAY_SUBSEGMENTAL = "airway, subsegmental"
    AIRWAY_PROXIMAL = "airway, segmental or more proximal"


class Status(str, Enum):
    BASELINE = "baseline"
    NEW = "new"
    GROWING = "growing"
    STABLE = "stable or decreased"
    SLOW_GROWTH = "slow growth over multiple screening exams"


@dataclass(frozen=True)
class Range:
    """Half-open interval ``[lo, hi)``; the v2022 table's "≥ lo to < hi"."""

    lo: float = 0.0
    hi: float = math.inf

    def contains(self, value: float) -> bool:
        return self.lo <= value < self.hi


ANY = Range()
BASELINE = frozenset({Status.BASELINE})
NEW = frozenset({Status.NEW})
GROWING = frozenset({Status.GROWING})
NEW_OR_GROWING = frozenset({Status.NEW, Status.GROWING})


@dataclass(frozen=True)
class Row:
    category: str
    kind: Kind
    statuses: frozenset[Status]
    finding: str
    total_mm: Range = ANY
    total_mm3: Range = ANY
    solid_mm: Range = ANY
    solid_mm3: Range = ANY


@dataclass(frozen=True)
class CategoryInfo:
    descriptor: str
    management: str


_WORKUP = (
    "Diagnostic chest CT with or without contrast; PET/CT may be considered if there is a "
    "≥ 8 mm (≥ 268 mm³) solid nodule or solid component; tissue sampling; and/or referral for "
    "further clinical evaluation. Management depends on clinical evaluation, patient preference, "
    "and risk of malignancy"
)

CATEGORIES: dict[str, CategoryInfo] = {
    "0": CategoryInfo(
        "Incomplete",
        "Comparison to prior chest CT; additional lung cancer screening CT imaging needed; "
        "1-3 month LDCT for findings suggestive of an inflammatory or infectious process",
    ),
    "1": CategoryInfo("Negative", "12-month screening LDCT"),
    "2": CategoryInfo("Benign", "12-month screening LDCT"),
    "3": CategoryInfo("Probably Benign", "6-month LDCT"),
    "4A": CategoryInfo(
        "Suspicious",
        "3-month LDCT; PET/CT may be considered if there is a ≥ 8 mm (≥ 268 mm³) solid nodule "
        "or solid component",
    ),
    "4B": CategoryInfo("Very Suspicious", _WORKUP),
    "4X": CategoryInfo("Very Suspicious", _WORKUP),
}

# Least to most suspicious; the exam takes the most suspicious nodule's category.
CATEGORY_ORDER: tuple[str, ...] = ("1", "2", "3", "4A", "4B", "4X")

# "Category 3 or 4 nodules with additional features or imaging findings that increase
# suspicion for lung cancer" are 4X.
UPGRADABLE_TO_4X = frozenset({"3", "4A", "4B"})

# Stepped management of stable nodules: a 3 stable at 6-month follow-up becomes 2; a 4A stable
# at 3-month follow-up becomes 3 (airway nodules excluded: stable proximal airway -> 4B).
STABLE_STEP_DOWN: dict[str, str] = {"3": "2", "4A": "3"}

# "Growth: an increase in size of > 1.5 mm (> 2 mm³) occurring within a 12-month interval."
GROWTH_MM = 1.5
GROWTH_MM3 = 2.0

_S, _PS, _GGN = Kind.SOLID, Kind.PART_SOLID, Kind.NON_SOLID
_ALL = frozenset(Status)

RULES: tuple[Row, ...] = (
    # Category 2 - Benign
    Row("2", Kind.JUXTAPLEURAL, frozenset({Status.BASELINE, Status.NEW}),
        "juxtapleural nodule < 10 mm (< 524 mm³): solid, smooth margins, oval/lentiform/triangular",
        total_mm=Range(0, 10), total_mm3=Range(0, 524)),
    Row("2", _S, BASELINE, "solid nodule < 6 mm (< 113 mm³) at baseline",
        total_mm=Range(0, 6), total_mm3=Range(0, 113)),
    Row("2", _S, NEW, "new solid nodule < 4 mm (< 34 mm³)",
        total_mm=Range(0, 4), total_mm3=Range(0, 34)),
    Row("2", _PS, BASELINE, "part-solid nodule < 6 mm total mean diameter (< 113 mm³) at baseline",
        total_mm=Range(0, 6), total_mm3=Range(0, 113)),
    Row("2", _GGN, frozenset({Status.BASELINE, Status.NEW, Status.GROWING}),
        "non-solid nodule (GGN) < 30 mm (< 14,137 mm³)",
        total_mm=Range(0, 30), total_mm3=Range(0, 14137)),
    Row("2", _GGN, frozenset({Status.STABLE, Status.GROWING}),
        "non-solid nodule (GGN) ≥ 30 mm (≥ 14,137 mm³) stable or slowly growing",
        total_mm=Range(30), total_mm3=Range(14137)),
    Row("2", _GGN, frozenset({Status.STABLE}), "non-solid nodule (GGN) < 30 mm stable",
        total_mm=Range(0, 30), total_mm3=Range(0, 14137)),
    Row("2", Kind.AIRWAY_SUBSEGMENTAL, frozenset({Status.BASELINE, Status.NEW, Status.STABLE}),
        "airway nodule, subsegmental"),
    # Category 3 - Probably benign
    Row("3", _S, BASELINE, "solid nodule ≥ 6 to < 8 mm (≥ 113 to < 268 mm³) at baseline",
        total_mm=Range(6, 8), total_mm3=Range(113, 268)),
    Row("3", _S, NEW, "new solid nodule 4 to < 6 mm (34 to < 113 mm³)",
        total_mm=Range(4, 6), total_mm3=Range(34, 113)),
    Row("3", _PS, BASELINE,
        "part-solid nodule ≥ 6 mm total (≥ 113 mm³) with solid component < 6 mm (< 113 mm³)",
        total_mm=Range(6), total_mm3=Range(113), solid_mm=Range(0, 6), solid_mm3=Range(0, 113)),
    Row("3", _PS, NEW, "new part-solid nodule < 6 mm total mean diameter (< 113 mm³)",
        total_mm=Range(0, 6), total_mm3=Range(0, 113)),
    Row("3", _GGN, frozenset({Status.BASELINE, Status.NEW}),
        "non-solid nodule (GGN) ≥ 30 mm (≥ 14,137 mm³) at baseline or new",
        total_mm=Range(30), total_mm3=Range(14137)),
    # Category 4A - Suspicious
    Row("4A", _S, BASELINE, "solid nodule ≥ 8 to < 15 mm (≥ 268 to < 1,767 mm³) at baseline",
        total_mm=Range(8, 15), total_mm3=Range(268, 1767)),
    Row("4A", _S, GROWING, "growing solid nodule < 8 mm (< 268 mm³)",
        total_mm=Range(0, 8), total_mm3=Range(0, 268)),
    Row("4A", _S, NEW, "new solid nodule 6 to < 8 mm (113 to < 268 mm³)",
        total_mm=Range(6, 8), total_mm3=Range(113, 268)),
    Row("4A", _PS, BASELINE,
        "part-solid nodule ≥ 6 mm total with solid component ≥ 6 to < 8 mm (≥ 113 to < 268 mm³)",
        total_mm=Range(6), total_mm3=Range(113), solid_mm=Range(6, 8), solid_mm3=Range(113, 268)),
    Row("4A", _PS, NEW_OR_GROWING, "part-solid nodule with a new or growing solid component < 4 mm (< 34 mm³)",
        total_mm=Range(6), total_mm3=Range(113), solid_mm=Range(0, 4), solid_mm3=Range(0, 34)),
    Row("4A", Kind.AIRWAY_PROXIMAL, frozenset({Status.BASELINE, Status.NEW}),
        "airway nodule, segmental or more proximal, at baseline or new"),
    # Category 4B - Very suspicious
    Row("4B", _S, BASELINE, "solid nodule ≥ 15 mm (≥ 1,767 mm³) at baseline",
        total_mm=Range(15), total_mm3=Range(1767)),
    Row("4B", _S, NEW_OR_GROWING, "new or growing solid nodule ≥ 8 mm (≥ 268 mm³)",
        total_mm=Range(8), total_mm3=Range(268)),
    Row("4B", _PS, BASELINE, "part-solid nodule with solid component ≥ 8 mm (≥ 268 mm³) at baseline",
        solid_mm=Range(8), solid_mm3=Range(268)),
    Row("4B", _PS, NEW_OR_GROWING, "part-solid nodule with a new or growing solid component ≥ 4 mm (≥ 34 mm³)",
        total_mm=Range(6), total_mm3=Range(113), solid_mm=Range(4), solid_mm3=Range(34)),
    Row("4B", Kind.AIRWAY_PROXIMAL, frozenset({Status.STABLE, Status.GROWING}),
        "airway nodule, segmental or more proximal, stable or growing"),
    Row("4B", _S, frozenset({Status.SLOW_GROWTH}),
        "slow growing solid nodule that demonstrates growth over multiple screening exams"),
    Row("4B", _PS, frozenset({Status.SLOW_GROWTH}),
        "slow growing part-solid nodule that demonstrates growth over multiple screening exams"),
)
