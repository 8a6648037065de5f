"""Series selection: which series of a complete study the AI reads, or why none can be read.

Pure functions over the tags read at receive time (``assemble.tags``): no database, no files.

- CT (kind ``ct``): every check in ``CT_CHECKS`` must pass — not a localizer, finite rescale, one
  orientation, axial (slice normal within ``AXIAL_TOLERANCE_DEG`` of the patient's z axis), one
  image size, one frame of reference, one pixel spacing, at least ``min_ct_slices`` slices, no gap
  wider than ``MAX_GAP_RATIO`` × the median spacing. Slices are ordered along the slice normal.
  Among several eligible series: thinnest spacing, then most slices, then lowest series number,
  then series key — so the choice is deterministic.
- Enhanced (multi-frame) CT: per-frame positions live in the Per-Frame Functional Groups, which
  are not read at receive time, so only ``ENHANCED_CT_CHECKS`` apply (not a localizer, one
  instance with NumberOfFrames ≥ ``min_ct_slices``, axial where the shared orientation was
  copied into the tags); the loader of the frames must check the spacing.
- Chest X-ray (kind ``cxr``): CR/DX images with ViewPosition PA or AP, or with no ViewPosition and
  BodyPartExamined CHEST; lateral views are left out.
- Pathology (kind ``pathology``): VL Whole Slide Microscopy (SM) and VL photographic/microscopic.
- A study with several kinds: CT before chest X-ray before pathology. Everything else, and a study
  where no series qualifies, is ``NotEligible`` with one reason per series.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

import numpy as np
from pydicom.uid import UID


class Kind(str, Enum):
    CT = "ct"
    CXR = "cxr"
    PATHOLOGY = "pathology"


KIND_PRIORITY = (Kind.CT, Kind.CXR, Kind.PATHOLOGY)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.2"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
VL_MICROSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.2"
VL_SLIDE_COORDINATES_MICROSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.3"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
VL_WHOLE_SLIDE_MICROSCOPY = "1.2.840.10008.5.1.4.1.1.77.1.6"

MULTIFRAME_CT_CLASSES = frozenset({ENHANCED_CT_IMAGE, LEGACY_ENHANCED_CT_IMAGE})
CT_CLASSES = frozenset({CT_IMAGE}) | MULTIFRAME_CT_CLASSES
CXR_CLASSES = frozenset({CR_IMAGE, DX_FOR_PRESENTATION, DX_FOR_PROCESSING})
PATHOLOGY_CLASSES = frozenset(
    {VL_MICROSCOPIC, VL_SLIDE_COORDINATES_MICROSCOPIC, VL_PHOTOGRAPHIC, VL_WHOLE_SLIDE_MICROSCOPY}
)
KIND_BY_SOP_CLASS: dict[str, Kind] = (
    dict.fromkeys(CT_CLASSES, Kind.CT)
    | dict.fromkeys(CXR_CLASSES, Kind.CXR)
    | dict.fromkeys(PATHOLOGY_CLASSES, Kind.PATHOLOGY)
)
KIND_BY_MODALITY: dict[str, Kind] = {"CT": Kind.CT, "CR": Kind.CXR, "DX": Kind.CXR, "SM": Kind.PATHOLOGY}

AXIAL_TOLERANCE_DEG = 10.0
MAX_GAP_RATIO = 1.5
ORIENTATION_TOLERANCE = 1e-3  # direction cosines equal within rounding of the DS text
PIXEL_SPACING_TOLERANCE_MM = 1e-3
DUPLICATE_POSITION_MM = 1e-3
LOCALIZER_TYPES = frozenset({"LOCALIZER", "SCOUT"})
FRONTAL_VIEWS = frozenset({"PA", "AP"})


@dataclass(frozen=True)
class InstanceTags:
    """One received instance as assembly sees it: the row id, its series and its tags."""

    instance_id: int
    series_key: str
    tags: Mapping[str, Any] = field(default_factory=dict)

    def get(self, keyword: str, default: Any = None) -> Any:
        return self.tags.get(keyword, default)

    @classmethod
    def from_row(cls, row: Any) -> "InstanceTags":
        """From an ``Instance`` row (duck-typed: this module stays free of the database); the
        row's modality and SOP class columns fill in tags that are missing."""
        base = {"Modality": row.modality, "SOPClassUID": row.sop_class_uid}
        return cls(instance_id=row.id, series_key=row.series_key, tags={**base, **(row.tags or {})})


@dataclass(frozen=True)
class Selection:
    """The series the AI reads: its kind, its key and its instances in reading order."""

    kind: Kind
    series_key: str
    instance_ids: tuple[int, ...]
    series_number: int | None = None
    slice_spacing_mm: float | None = None  # CT only


@dataclass(frozen=True)
class NotEligible:
    """No series can be analysed; ``reason`` is for the radiologist's not-eligible report."""

    reason: str


BurnedInCheck = Callable[[Sequence[InstanceTags]], "str | None"]


def select_series(
    instances: Sequence[InstanceTags],
    *,
    min_ct_slices: int = 32,
    burned_in_check: BurnedInCheck | None = None,
) -> Selection | NotEligible:
    """Choose the one series to analyse, or say why there is none (see the module docstring)."""
    if not instances:
        return NotEligible("the study has no instances")
    eligible: dict[Kind, list[Selection]] = defaultdict(list)
    reasons: list[str] = []
    for key, members in _group_by_series(instances):
        result = evaluate_series(key, members, min_ct_slices=min_ct_slices, burned_in_check=burned_in_check)
        if isinstance(result, Selection):
            eligible[result.kind].append(result)
        else:
            reasons.append(result.reason)
    for kind in KIND_PRIORITY:
        if eligible[kind]:
            return min(eligible[kind], key=_RANKING[kind])
    return NotEligible("; ".join(reasons))


def evaluate_series(
    series_key: str,
    members: Sequence[InstanceTags],
    *,
    min_ct_slices: int = 32,
    burned_in_check: BurnedInCheck | None = None,
) -> Selection | NotEligible:
    """One series on its own: a Selection of its kind, or why it cannot be read."""
    label = series_label(series_key, members)
    kind = series_kind(members)
    if kind is None:
        return NotEligible(f"{label}: {_unsupported(members)}")
    result = _EVALUATORS[kind](series_key, members, min_ct_slices)
    if isinstance(result, Selection) and burned_in_check is not None:
        risk = burned_in_check(members)
        if risk:
            return NotEligible(f"{label}: {risk}")
    return result


def series_kind(members: Sequence[InstanceTags]) -> Kind | None:
    """The kind of analysis a series is for: every instance's SOP class (or, where a SOP class is
    missing, its modality) must map to the same kind."""
    kinds = {_instance_kind(m) for m in members}
    return kinds.pop() if len(kinds) == 1 else None


def _instance_kind(m: InstanceTags) -> Kind | None:
    sop_class = str(m.get("SOPClassUID") or "")
    if sop_class:
        return KIND_BY_SOP_CLASS.get(sop_class)
    return KIND_BY_MODALITY.get(str(m.get("Modality") or "").upper())


def series_label(series_key: str, members: Sequence[InstanceTags]) -> str:
    number = _series_number(members)
    return f"series {number}" if number is not None else f"series {series_key[:16]}"


# --- CT ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CTSeries:
    """A CT series under examination; geometry is derived lazily, once checks allow it."""

    series_key: str
    members: tuple[InstanceTags, ...]
    min_slices: int

    @cached_property
    def orientation(self) -> np.ndarray | None:
        return _floats(self.members[0].get("ImageOrientationPatient"), 6)

    @cached_property
    def normal(self) -> np.ndarray:
        assert self.orientation is not None
        n = np.cross(self.orientation[:3], self.orientation[3:])
        return n / np.linalg.norm(n)

    @cached_property
    def ordered(self) -> tuple[tuple[float, InstanceTags], ...]:
        """(position along the normal in mm, instance), ascending."""
        pairs = [(float(_floats(m.get("ImagePositionPatient"), 3) @ self.normal), m) for m in self.members]
        return tuple(sorted(pairs, key=lambda p: (p[0], p[1].instance_id)))

    @cached_property
    def spacings_mm(self) -> list[float]:
        positions = [p for p, _ in self.ordered]
        return [b - a for a, b in zip(positions, positions[1:], strict=False)]

    @cached_property
    def median_spacing_mm(self) -> float:
        return statistics.median(self.spacings_mm) if self.spacings_mm else math.inf


CTCheck = Callable[[CTSeries], "str | None"]


def _no_localizer(s: CTSeries) -> str | None:
    for m in s.members:
        found = LOCALIZER_TYPES.intersection(_strings(m.get("ImageType")))
        if found:
            return f"localizer (ImageType {sorted(found)[0]})"
    return None


def _finite_rescale(s: CTSeries) -> str | None:
    for m in s.members:
        for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
            value = _float(m.get(keyword, default))
            if value is None or not math.isfinite(value):
                return f"{keyword} is {m.get(keyword)} ({_where(m)})"
        if _float(m.get("RescaleSlope", 1.0)) == 0.0:
            return f"RescaleSlope is 0 ({_where(m)})"
    return None


def _one_orientation(s: CTSeries) -> str | None:
    vectors = [_floats(m.get("ImageOrientationPatient"), 6) for m in s.members]
    if any(v is None or np.linalg.norm(np.cross(v[:3], v[3:])) < 0.5 for v in vectors):
        return "missing or malformed ImageOrientationPatient"
    if any(np.max(np.abs(v - vectors[0])) > ORIENTATION_TOLERANCE for v in vectors):
        return "mixed orientations"
    if any(_floats(m.get("ImagePositionPatient"), 3) is None for m in s.members):
        return "missing or malformed ImagePositionPatient"
    return None


def _axial(s: CTSeries) -> str | None:
    angle_deg = math.degrees(math.acos(min(1.0, abs(float(s.normal[2])))))
    if angle_deg > AXIAL_TOLERANCE_DEG:
        return f"not axial (slice normal {angle_deg:.0f}° from the patient z axis, limit {AXIAL_TOLERANCE_DEG:.0f}°)"
    return None


def _one_size(s: CTSeries) -> str | None:
    sizes = {(_int(m.get("Rows")), _int(m.get("Columns"))) for m in s.members}
    if len(sizes) > 1:
        return f"mixed image sizes {sorted(sizes, key=str)} (Rows, Columns)"
    return None


def _one_frame_of_reference(s: CTSeries) -> str | None:
    # receive.tags stores the pseudonym as FrameOfReferenceKey; accept the plain keyword too
    if len({m.get("FrameOfReferenceKey", m.get("FrameOfReferenceUID")) for m in s.members}) > 1:
        return "more than one frame of reference"
    return None


def _one_pixel_spacing(s: CTSeries) -> str | None:
    spacings = [_floats(m.get("PixelSpacing"), 2) for m in s.members]
    if any(v is None or np.any(v <= 0) for v in spacings):
        return "missing or malformed PixelSpacing"
    if any(np.max(np.abs(v - spacings[0])) > PIXEL_SPACING_TOLERANCE_MM for v in spacings):
        return "mixed PixelSpacing"
    return None


def _enough_slices(s: CTSeries) -> str | None:
    n = len(s.members)
    if n < s.min_slices:
        return f"{n} slice{'s' if n != 1 else ''}, need at least {s.min_slices}"
    return None


def _consistent_spacing(s: CTSeries) -> str | None:
    for index, spacing in enumerate(s.spacings_mm, start=1):
        if spacing < DUPLICATE_POSITION_MM:
            return f"two slices at the same position ({s.ordered[index][0]:.2f} mm along the normal)"
    limit = MAX_GAP_RATIO * s.median_spacing_mm
    for index, spacing in enumerate(s.spacings_mm, start=1):
        if spacing > limit:
            return (
                f"gap of {spacing:.1f} mm at slice {index}, > {MAX_GAP_RATIO} × median spacing "
                f"{s.median_spacing_mm:.2f} mm"
            )
    return None


def _axial_if_known(s: CTSeries) -> str | None:
    if s.orientation is None or np.linalg.norm(np.cross(s.orientation[:3], s.orientation[3:])) < 0.5:
        return None  # per-frame orientation only: the loader checks it
    return _axial(s)


def _enough_frames(s: CTSeries) -> str | None:
    frames = sum(_int(m.get("NumberOfFrames")) or 1 for m in s.members)
    if len(s.members) != 1 or frames < s.min_slices:
        return (
            f"enhanced CT with {len(s.members)} instance(s), {frames} frames; "
            f"need one instance of at least {s.min_slices} frames"
        )
    return None


# Order matters: geometry checks run only once orientation and positions are known to be sound.
CT_CHECKS: tuple[tuple[str, CTCheck], ...] = (
    ("not a localizer", _no_localizer),
    ("finite rescale", _finite_rescale),
    ("one orientation", _one_orientation),
    ("axial", _axial),
    ("one image size", _one_size),
    ("one frame of reference", _one_frame_of_reference),
    ("one pixel spacing", _one_pixel_spacing),
    ("enough slices", _enough_slices),
    ("consistent spacing", _consistent_spacing),
)
ENHANCED_CT_CHECKS: tuple[tuple[str, CTCheck], ...] = (
    ("not a localizer", _no_localizer),
    ("enough frames", _enough_frames),
    ("axial where the shared orientation is known", _axial_if_known),
)


def ct_problem(series: CTSeries, checks: Iterable[tuple[str, CTCheck]]) -> str | None:
    """The first failed check's reason, or None when the series passes them all."""
    for _name, check in checks:
        reason = check(series)
        if reason:
            return reason
    return None


def _evaluate_ct(series_key: str, members: Sequence[InstanceTags], min_slices: int) -> Selection | NotEligible:
    series = CTSeries(series_key, tuple(members), min_slices)
    multiframe = any(str(m.get("SOPClassUID", "")) in MULTIFRAME_CT_CLASSES for m in members)
    problem = ct_problem(series, ENHANCED_CT_CHECKS if multiframe else CT_CHECKS)
    if problem:
        return NotEligible(f"CT {series_label(series_key, members)}: {problem}")
    if multiframe:
        thickness = _float(members[0].get("SpacingBetweenSlices")) or _float(members[0].get("SliceThickness"))
        ids: tuple[int, ...] = (members[0].instance_id,)
        spacing = thickness if thickness and math.isfinite(thickness) else math.inf
    else:
        ids = tuple(m.instance_id for _, m in series.ordered)
        spacing = series.median_spacing_mm
    return Selection(Kind.CT, series_key, ids, _series_number(members), spacing)


# --- chest X-ray and pathology -------------------------------------------------------------------


def _is_frontal_chest(m: InstanceTags) -> bool:
    view = str(m.get("ViewPosition") or "").strip().upper()
    if view:
        return view in FRONTAL_VIEWS
    return str(m.get("BodyPartExamined") or "").strip().upper() == "CHEST"


def _evaluate_cxr(series_key: str, members: Sequence[InstanceTags], _min_slices: int) -> Selection | NotEligible:
    frontal = [m for m in members if _is_frontal_chest(m)]
    if not frontal:
        views = sorted({str(m.get("ViewPosition") or "") for m in members})
        parts = sorted({str(m.get("BodyPartExamined") or "") for m in members})
        return NotEligible(
            f"{series_label(series_key, members)}: no frontal chest view (ViewPosition {'/'.join(views) or 'absent'}, "
            f"BodyPartExamined {'/'.join(parts) or 'absent'}); need PA or AP"
        )
    return Selection(Kind.CXR, series_key, _by_instance_number(frontal), _series_number(members))


def _evaluate_pathology(series_key: str, members: Sequence[InstanceTags], _min_slices: int) -> Selection:
    return Selection(Kind.PATHOLOGY, series_key, _by_instance_number(members), _series_number(members))


_EVALUATORS: dict[Kind, Callable[[str, Sequence[InstanceTags], int], Selection | NotEligible]] = {
    Kind.CT: _evaluate_ct,
    Kind.CXR: _evaluate_cxr,
    Kind.PATHOLOGY: _evaluate_pathology,
}


def _number_or_inf(s: Selection) -> float:
    return s.series_number if s.series_number is not None else math.inf


_RANKING: dict[Kind, Callable[[Selection], tuple[Any, ...]]] = {
    Kind.CT: lambda s: (s.slice_spacing_mm, -len(s.instance_ids), _number_or_inf(s), s.series_key),
    Kind.CXR: lambda s: (_number_or_inf(s), s.series_key),
    Kind.PATHOLOGY: lambda s: (_number_or_inf(s), s.series_key),
}


# --- tag parsing: tolerant of lists, backslash-separated text and numbers as text ----------------


def _group_by_series(instances: Iterable[InstanceTags]) -> list[tuple[str, list[InstanceTags]]]:
    groups: dict[str, list[InstanceTags]] = defaultdict(list)
    for inst in instances:
        groups[inst.series_key].append(inst)
    return sorted(groups.items(), key=lambda kv: (_number_or_inf_members(kv[1]), kv[0]))


def _number_or_inf_members(members: Sequence[InstanceTags]) -> float:
    number = _series_number(members)
    return number if number is not None else math.inf


def _series_number(members: Sequence[InstanceTags]) -> int | None:
    return _int(members[0].get("SeriesNumber")) if members else None


def _by_instance_number(members: Iterable[InstanceTags]) -> tuple[int, ...]:
    ordered = sorted(members, key=lambda m: (_int(m.get("InstanceNumber")) or 0, m.instance_id))
    return tuple(m.instance_id for m in ordered)


def _where(m: InstanceTags) -> str:
    number = _int(m.get("InstanceNumber"))
    return f"instance {number}" if number is not None else f"instance id {m.instance_id}"


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    items = value.split("\\") if isinstance(value, str) else value
    return [str(v).strip().upper() for v in items]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _floats(value: Any, count: int) -> np.ndarray | None:
    """``count`` finite floats from a list or backslash-separated text, else None."""
    if value is None:
        return None
    items = value.split("\\") if isinstance(value, str) else value
    numbers = [_float(v) for v in items] if isinstance(items, (list, tuple)) else []
    if len(numbers) != count or any(n is None or not math.isfinite(n) for n in numbers):
        return None
    return np.array(numbers, dtype=float)


def _unsupported(members: Sequence[InstanceTags]) -> str:
    modalities = "/".join(sorted({str(m.get("Modality") or "?") for m in members}))
    classes = "/".join(sorted({UID(str(m.get("SOPClassUID") or "")).name or "no SOP class" for m in members}))
    return f"modality {modalities} ({classes}) is not analysed (CT, chest CR/DX, SM or VL pathology are)"
