"""Values that cross the ai_engine boundary: the input volume and the findings.

Conventions (as SimpleITK/ITK): arrays are indexed ``[z, y, x]``; ``spacing_mm``, ``origin_mm``
and ``direction`` are in ``(x, y, z)`` order in the DICOM patient coordinate system (LPS), with
``direction`` a row-major 3×3 whose *columns* are the x, y, z axis unit vectors. ``origin_mm`` is
the centre of voxel ``[0, 0, 0]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

SYNTHETIC_DISCLAIMER = (
    "RESEARCH USE ONLY - not for diagnostic use. The models were trained on synthetic "
    "phantoms by pulmonode's own code, not on patient data; their outputs have not been "
    "clinically validated."
)


@dataclass(frozen=True, eq=False)
class CTVolume:
    """A CT volume in Hounsfield units with its geometry (see module docstring)."""

    hu: np.ndarray  # [z, y, x], float32 or int16, HU
    spacing_mm: tuple[float, float, float]  # (x, y, z)
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def index_to_mm(self, zyx: tuple[float, float, float]) -> tuple[float, float, float]:
        """Continuous voxel index ``(z, y, x)`` → patient coordinates ``(x, y, z)`` in mm."""
        ijk = np.array([zyx[2], zyx[1], zyx[0]], dtype=float) * np.array(self.spacing_mm)
        d = np.array(self.direction, dtype=float).reshape(3, 3)
        p = np.array(self.origin_mm, dtype=float) + d @ ijk
        return (float(p[0]), float(p[1]), float(p[2]))


class NoduleType(str, Enum):
    SOLID = "solid"
    PART_SOLID = "part-solid"
    GROUND_GLASS = "ground-glass"


class Side(str, Enum):
    RIGHT = "right"
    LEFT = "left"


class Zone(str, Enum):
    UPPER = "upper"
    MIDDLE = "middle"
    LOWER = "lower"


class Subtype(str, Enum):
    ADENOCARCINOMA = "adenocarcinoma"
    SQUAMOUS_CELL_CARCINOMA = "squamous cell carcinoma"
    LARGE_CELL_CARCINOMA = "large cell carcinoma"


@dataclass(frozen=True)
class LungRadsAssessment:
    """A Lung-RADS v2022 category with its management recommendation."""

    category: str  # "0", "1", "2", "3", "4A", "4B", "4X"; "S" is a modifier flag below
    management: str
    descriptor: str = ""
    s_modifier: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """Which trained model produced part of a finding (from its model card)."""

    name: str  # e.g. "unet3d", "densenet121-3d", "convnext-tiny-3d", "efficientnet-b3"
    version: str
    sha256: str
    profile: str  # "demo" or "paper"
    trained_on: str  # "synthetic" or a dataset name
    synthetic: bool


@dataclass(frozen=True)
class Nodule:
    """One detected nodule, measured in the input grid."""

    label: int  # its value in CTFindings.label_mask (1-based)
    centroid_mm: tuple[float, float, float]  # patient (x, y, z)
    centroid_zyx: tuple[float, float, float]  # voxel index in the input grid
    bbox_zyx: tuple[int, int, int, int, int, int]  # z0, y0, x0, z1, y1, x1 (exclusive ends)
    key_slice: int  # z index of the axial slice with the largest cross-section
    volume_mm3: float
    long_axis_mm: float  # longest in-plane diameter on the key slice
    short_axis_mm: float  # longest perpendicular to it, same slice
    mean_diameter_mm: float  # Lung-RADS: (long + short) / 2, one decimal
    mean_hu: float
    max_hu: float
    nodule_type: NoduleType
    solid_component_mm: float | None  # mean diameter of the solid part (part-solid only)
    calcified: bool
    side: Side
    zone: Zone
    lobe: str  # estimate, e.g. "right upper lobe"
    detection_score: float
    malignancy_probability: float  # ensemble mean of the models below
    malignancy_by_model: tuple[tuple[str, float], ...] = ()
    subtype: Subtype | None = None  # only for nodules called malignant
    subtype_probabilities: tuple[tuple[str, float], ...] = ()
    lung_rads: LungRadsAssessment | None = None
    # the ensemble's operating point, from its cards (train.calibrate.calibrate_malignancy may move it)
    malignancy_threshold: float = 0.5

    @property
    def malignant(self) -> bool:
        return self.malignancy_probability >= self.malignancy_threshold

    @property
    def description(self) -> str:
        """E.g. 'right upper zone, 8 mm' (used in SEG labels and reports)."""
        return f"{self.side.value} {self.zone.value} zone, {self.mean_diameter_mm:.0f} mm"


@dataclass(frozen=True, eq=False)
class CTFindings:
    """What the CT pipeline found in one volume."""

    nodules: tuple[Nodule, ...]
    label_mask: np.ndarray  # [z, y, x] uint16 in the input grid; 0 background, n = nodule label
    exam_lung_rads: LungRadsAssessment
    models: tuple[ModelInfo, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def synthetic_trained(self) -> bool:
        return any(m.synthetic for m in self.models)

    @property
    def disclaimer(self) -> str:
        return SYNTHETIC_DISCLAIMER if self.synthetic_trained else (
            "RESEARCH USE ONLY - not for diagnostic use."
        )
