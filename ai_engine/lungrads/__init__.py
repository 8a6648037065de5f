"""Lung-RADS v2022 (ACR) assessment categories for screening CT, as a table of rows + evaluator.

Public API (stable)::

    from ai_engine.lungrads import (
        NoduleFeatures, PriorNodule, AirwayLocation,
        assess_nodule, assess_exam, features_from_nodule, mean_diameter_mm,
        LungRadsError, InvalidNoduleError,
    )

    assess_nodule(features: NoduleFeatures, prior: PriorNodule | None = None) -> LungRadsAssessment
        One nodule. ``prior=None`` is a baseline exam. With a prior, the v2022 follow-up rows
        apply: ``PriorNodule(present=False)`` = new nodule; growth (> 1.5 mm mean diameter, or
        > 2 mm³ when only volumes are given; solid component for part-solid) = growing;
        otherwise stable, with stepped management from ``prior.category`` (3 -> 2, 4A -> 3);
        ``PriorNodule(slow_growth=True)`` = growth over multiple exams (4B, solid/part-solid).
        Benign calcification / fat -> "1". Suspicious features upgrade 3/4A/4B to "4X".
        Sizes are rounded as v2022 reports them (mean diameter one decimal, volume whole mm³)
        before comparing with the thresholds. Raises InvalidNoduleError (a ValueError) on
        missing/negative sizes or a solid component larger than the nodule.

    assess_exam(nodule_assessments: Iterable[LungRadsAssessment], s_findings: bool = False,
                incomplete: bool = False) -> LungRadsAssessment
        "0" if incomplete; "1" ("no lung nodules") if none; else the most suspicious nodule's
        assessment (order 1 < 2 < 3 < 4A < 4B < 4X). ``s_findings`` sets the S modifier.

    features_from_nodule(nodule: findings.Nodule, *, suspicious_features=()) -> NoduleFeatures
    mean_diameter_mm(long_axis_mm, short_axis_mm) -> float   # v2022 rounding, one decimal

Not modelled as nodule rows: atypical pulmonary cysts, and category 0 for findings suggesting
an infectious/inflammatory process (pass ``incomplete=True`` to ``assess_exam``); category 2
after a proven-benign 4B workup is a clinical decision, not an image rule.

``LungRadsAssessment`` (ai_engine.findings) carries category, management (v2022 text),
descriptor ("<category descriptor>: <matched finding>") and s_modifier. The table itself is
``ai_engine.lungrads.table.RULES`` / ``CATEGORIES``.
"""

from ai_engine.lungrads.assess import assess_exam, assess_nodule, exam_status
from ai_engine.lungrads.errors import InvalidNoduleError, LungRadsError
from ai_engine.lungrads.features import (
    AirwayLocation,
    NoduleFeatures,
    PriorNodule,
    features_from_nodule,
    mean_diameter_mm,
)

__all__ = [
    "AirwayLocation",
    "InvalidNoduleError",
    "LungRadsError",
    "NoduleFeatures",
    "PriorNodule",
    "assess_exam",
    "assess_nodule",
    "exam_status",
    "features_from_nodule",
    "mean_diameter_mm",
]
