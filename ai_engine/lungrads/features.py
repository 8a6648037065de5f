"""Inputs to the Lung-RADS v2022 evaluator: one nodule's features and, optionally, its prior.

Sizes follow the v2022 measurement rules: long and short axis to one decimal place, mean diameter
reported to one decimal place (:func:`mean_diameter_mm`), volumes to the nearest whole mm³.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum

from ai_engine.findings import Nodule, NoduleType


class AirwayLocation(str, Enum):
    """Where an airway (endobronchial) nodule sits; the level decides its category."""

    SUBSEGMENTAL = "subsegmental"
    SEGMENTAL_OR_PROXIMAL = "segmental or more proximal"


def round_one_decimal(value_mm: float) -> float:
    """Round half up to one decimal place (v2022 reports mean diameters this way)."""
    return float(Decimal(repr(float(value_mm))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def mean_diameter_mm(long_axis_mm: float, short_axis_mm: float) -> float:
    """v2022 mean diameter: axes rounded to one decimal, their mean rounded to one decimal."""
    long_r, short_r = round_one_decimal(long_axis_mm), round_one_decimal(short_axis_mm)
    return round_one_decimal((long_r + short_r) / 2.0)


@dataclass(frozen=True)
class NoduleFeatures:
    """One nodule as Lung-RADS sees it. Give a mean diameter, a volume, or both (diameter wins)."""

    nodule_type: NoduleType
    mean_diameter_mm: float | None = None
    volume_mm3: float | None = None
    solid_component_mm: float | None = None  # part-solid only: mean diameter of the solid part
    solid_component_mm3: float | None = None
    benign_calcification: bool = False  # complete, central, popcorn or concentric-ring pattern
    fat_containing: bool = False
    juxtapleural_benign_morphology: bool = False  # smooth margins; oval, lentiform or triangular
    airway: AirwayLocation | None = None  # set only for airway (endobronchial) nodules
    suspicious_features: tuple[str, ...] = field(default=())  # e.g. ("spiculation",) -> 4X


@dataclass(frozen=True)
class PriorNodule:
    """The same nodule on a prior screening exam (None in ``assess_nodule`` means baseline).

    ``present=False`` says the prior exam was compared and the nodule was not there (a new
    nodule). ``category`` is the prior Lung-RADS category, used for v2022's stepped management
    of stable nodules (3 stable at 6 months -> 2; 4A stable at 3 months -> 3).
    """

    present: bool = True
    mean_diameter_mm: float | None = None
    volume_mm3: float | None = None
    solid_component_mm: float | None = None
    solid_component_mm3: float | None = None
    category: str | None = None
    slow_growth: bool = False


def features_from_nodule(nodule: Nodule, *, suspicious_features: tuple[str, ...] = ()) -> NoduleFeatures:
    """Features of a detected :class:`~ai_engine.findings.Nodule` (calcified is read as benign)."""
    return NoduleFeatures(
        nodule_type=nodule.nodule_type,
        mean_diameter_mm=nodule.mean_diameter_mm,
        volume_mm3=nodule.volume_mm3,
        solid_component_mm=nodule.solid_component_mm,
        benign_calcification=nodule.calcified,
        suspicious_features=suspicious_features,
    )
