"""Values of the phantom generator: what to draw (NoduleSpec) and what was drawn (truth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ai_engine.findings import CTVolume, NoduleType, Side, Subtype, Zone

MORPHOLOGIES = ("round", "lobulated", "spiculated")
PLACEMENTS = ("juxtapleural", "peripheral", "intermediate", "central")
CALCIFICATIONS = ("diffuse", "central", "popcorn")


@dataclass(frozen=True)
class NoduleSpec:
    """A nodule to draw. Every field left ``None`` is drawn from the label model (labels.py).

    ``centre_mm`` is patient (x, y, z); a nodule given a centre is drawn exactly there, with its
    exact shape (not clipped to the lung). ``morphology="round"`` gives an exact sphere of
    ``diameter_mm`` (the mask is then every voxel whose centre is within diameter/2).
    """

    centre_mm: tuple[float, float, float] | None = None
    diameter_mm: float | None = None
    nodule_type: NoduleType | None = None
    calcified: bool | None = None
    calcification: str | None = None  # one of CALCIFICATIONS
    malignant: bool | None = None
    subtype: Subtype | None = None
    morphology: str | None = None  # one of MORPHOLOGIES
    solid_component_mm: float | None = None  # part-solid only
    side: Side | None = None
    zone: Zone | None = None
    placement: str | None = None  # one of PLACEMENTS ("given" in the truth when centre_mm is set)
    cavitated: bool | None = None
    solid_hu: float | None = None  # HU of the solid tissue (or of the calcium if calcified)
    ggo_hu: float | None = None  # HU of the ground-glass part


@dataclass(frozen=True)
class NoduleAttributes:
    """A fully drawn nodule (every NoduleSpec field decided), before it is placed."""

    diameter_mm: float
    nodule_type: NoduleType
    calcified: bool
    calcification: str | None
    p_malignant: float  # the label model's probability for these attributes
    malignant: bool
    subtype: Subtype | None
    morphology: str
    solid_component_mm: float | None
    side: Side
    zone: Zone
    placement: str
    cavitated: bool
    solid_hu: float
    ggo_hu: float


@dataclass(frozen=True)
class NoduleTruth:
    """Ground truth of one drawn nodule. ``label`` is its value in ``Phantom.nodule_mask``."""

    label: int
    centre_zyx: tuple[float, float, float]  # continuous voxel index of the centre
    centre_mm: tuple[float, float, float]  # patient (x, y, z)
    diameter_mm: float  # nominal diameter of the nodule body (spicules excluded)
    volume_mm3: float  # voxels in the mask × voxel volume
    nodule_type: NoduleType
    calcified: bool
    malignant: bool
    subtype: Subtype | None
    morphology: str
    solid_component_mm: float | None
    side: Side
    zone: Zone
    placement: str
    cavitated: bool = False
    calcification: str | None = None
    p_malignant: float = 0.0


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic chest CT with exact masks and labels."""

    volume: CTVolume
    nodule_mask: np.ndarray  # uint16 [z, y, x]; 0 background, i = nodules[i-1] (label i)
    lung_mask: np.ndarray  # bool [z, y, x]: both lungs, vessels/airways/nodules inside them included
    nodules: tuple[NoduleTruth, ...]
    seed: int = 0
