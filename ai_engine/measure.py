"""Nodule measurement in the input grid (Lung-RADS v2022 conventions) and candidate extraction.

Per nodule (a connected component or a label of a label map):
- centroid: voxel index (z, y, x) and patient mm via ``CTVolume.index_to_mm``; volume = voxels ×
  voxel volume;
- key slice: the axial slice with the largest cross-section;
- long axis: longest in-plane (Feret) diameter on the key slice; short axis: the longest
  diameter perpendicular to it on the same slice (the longest chord along the perpendicular,
  lines one pixel apart). Both are measured between pixel centres plus half a pixel (the
  caliper sits on the edge pixels, half inside them), in mm with the pixel spacing;
- mean diameter = (long + short) / 2 rounded to one decimal (Lung-RADS v2022);
- type from HU inside the nodule, away from its one-voxel partial-volume rim ("interior"):
  solid if < 10 % of the interior is below -300 HU; part-solid if a solid (> -300 HU) component
  survives an opening by a ~1 mm ball, is compact (principal-axis elongation ≤ 2, which a vessel
  crossing a ground-glass nodule is not) and leaves a ground-glass shell ≥ 1 mm (and ≥ 1 pixel)
  thick; else ground-glass if ≥ 50 % of the interior is below -300 HU, else solid
  (e.g. a cavitated nodule). The solid component's size is its own Lung-RADS mean diameter;
- calcified: ≥ 3 % of the nodule (and ≥ 2 voxels) above 200 HU;
- side / zone / lobe via :func:`ai_engine.preprocess.assign_location` (the lobe is an estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ai_engine.findings import CTVolume, NoduleType, Side, Zone
from ai_engine.preprocess.location import LungExtent, locate, lung_extent

SOLID_ABOVE_HU = -300.0
SOLID_MAX_GGO_FRACTION = 0.10  # of the interior below -300 HU: clearly solid under this
GGO_MIN_FRACTION = 0.5  # ground-glass needs at least this much of the interior below -300 HU
MIN_GGO_SHELL_MM = 1.0  # part-solid needs a ground-glass rim at least this thick (and ≥ a pixel)
CALCIUM_ABOVE_HU = 200.0
CALCIFIED_FRACTION = 0.03
SOLID_OPENING_MM = 1.0
MIN_SOLID_COMPONENT_MM = 2.0
MAX_SOLID_ELONGATION = 2.0


@dataclass(frozen=True)
class NoduleMeasurement:
    """The measurement fields of :class:`ai_engine.findings.Nodule`, same names and meanings."""

    label: int
    centroid_mm: tuple[float, float, float]
    centroid_zyx: tuple[float, float, float]
    bbox_zyx: tuple[int, int, int, int, int, int]
    key_slice: int
    volume_mm3: float
    long_axis_mm: float
    short_axis_mm: float
    mean_diameter_mm: float
    mean_hu: float
    max_hu: float
    nodule_type: NoduleType
    solid_component_mm: float | None
    calcified: bool
    side: Side
    zone: Zone
    lobe: str


@dataclass(frozen=True)
class Candidate:
    """One connected component of a probability map above threshold."""

    label: int
    voxels: int
    volume_mm3: float
    max_probability: float
    mean_probability: float


# -- in-plane diameters -----------------------------------------------------------------------
@dataclass(frozen=True)
class Axes:
    long_mm: float
    short_mm: float

    @property
    def mean_mm(self) -> float:
        """Lung-RADS mean diameter from the axes as reported (one decimal each)."""
        return round((round(self.long_mm, 1) + round(self.short_mm, 1)) / 2, 1)


def _outline_points(mask2d: np.ndarray, pixel_mm: np.ndarray) -> np.ndarray:
    """Centres (mm, [n, 2] as (y, x)) of the edge pixels of a 2-D mask."""
    edge = mask2d & ~ndimage.binary_erosion(mask2d)
    return np.argwhere(edge) * pixel_mm


def _half_pixel(direction: np.ndarray, pixel_mm: np.ndarray) -> float:
    """Half the pixel's width along a unit direction, added once per diameter (two half-edges)."""
    return float(np.abs(direction) @ pixel_mm) / 2


def _longest_chord(pts: np.ndarray, u: np.ndarray, v: np.ndarray, step_mm: float) -> float:
    """Longest extent along ``v`` of the pixels on any line parallel to ``v`` (lines ``step_mm``
    apart along ``u``): the longest diameter perpendicular to the long axis."""
    t = pts @ u
    s = pts @ v
    line = np.floor((t - t.min()) / step_mm).astype(int)
    hi = np.full(line.max() + 1, -np.inf)
    lo = np.full(line.max() + 1, np.inf)
    np.maximum.at(hi, line, s)
    np.minimum.at(lo, line, s)
    return float(np.max(hi - lo))


def in_plane_axes(mask2d: np.ndarray, pixel_mm) -> Axes:
    """Long (Feret) axis and the longest diameter perpendicular to it, of a 2-D mask;
    ``pixel_mm`` is (row, column) spacing in mm."""
    pixel_mm = np.asarray(pixel_mm, float)
    pts = _outline_points(mask2d, pixel_mm)
    if len(pts) < 2:
        return Axes(float(pixel_mm.max()), float(pixel_mm.min()))
    d = pts[:, None, :] - pts[None, :, :]
    dist2 = np.einsum("ijk,ijk->ij", d, d)
    i, j = np.unravel_index(int(np.argmax(dist2)), dist2.shape)
    u = d[i, j] / np.sqrt(dist2[i, j])
    v = np.array([-u[1], u[0]])
    chord = _longest_chord(np.argwhere(mask2d) * pixel_mm, u, v, float(pixel_mm.min()))
    long_mm = float(np.sqrt(dist2[i, j])) + _half_pixel(u, pixel_mm)
    short_mm = chord + _half_pixel(v, pixel_mm)
    return Axes(long_mm, min(short_mm, long_mm))


def _key_slice(mask: np.ndarray) -> int:
    return int(np.argmax(mask.sum(axis=(1, 2))))


def axes_on_key_slice(mask: np.ndarray, spacing_mm) -> tuple[int, Axes]:
    """(key slice index within ``mask``, axes there); spacing_mm is (x, y, z)."""
    k = _key_slice(mask)
    return k, in_plane_axes(mask[k], (spacing_mm[1], spacing_mm[0]))


# -- density ------------------------------------------------------------------------------------
def _interior(mask: np.ndarray) -> np.ndarray:
    inner = ndimage.binary_erosion(mask)
    return inner if inner.sum() >= 8 else mask


def _open(mask: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Opening by a ball of SOLID_OPENING_MM (at least one voxel): removes thin vessels."""
    r = max(SOLID_OPENING_MM, float(spacing_zyx.min()))
    core = ndimage.distance_transform_edt(mask, sampling=spacing_zyx) > r * 0.999
    return ndimage.distance_transform_edt(~core, sampling=spacing_zyx) <= r * 1.001 if core.any() else core


def elongation(mask: np.ndarray, spacing_zyx: np.ndarray) -> float:
    """sqrt(largest / smallest principal variance) of a voxel set in mm (1 for a ball); each
    variance gets a voxel's own (s²/12) so one-slice components do not divide by zero."""
    pts = np.argwhere(mask) * spacing_zyx
    cov = np.cov(pts.T) if len(pts) > 1 else np.zeros((3, 3))
    eig = np.linalg.eigvalsh(cov + np.diag(spacing_zyx**2 / 12))
    return float(np.sqrt(eig[-1] / eig[0]))


def _solid_component(mask: np.ndarray, hu: np.ndarray, spacing_mm) -> float | None:
    """Mean diameter of the largest compact solid part (a vessel crossing a ground-glass nodule
    is thin, removed by the opening, or elongated, rejected by MAX_SOLID_ELONGATION)."""
    spacing_zyx = np.array(spacing_mm[::-1], float)
    solid = mask & (hu > SOLID_ABOVE_HU)
    solid &= _open(solid, spacing_zyx)
    labels, n = ndimage.label(solid)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    for k in np.argsort(sizes[1:])[::-1] + 1:
        part = labels == k
        if elongation(part, spacing_zyx) <= MAX_SOLID_ELONGATION:
            _, axes = axes_on_key_slice(part, spacing_mm)
            return axes.mean_mm if axes.mean_mm >= MIN_SOLID_COMPONENT_MM else None
    return None


def nodule_type(mask: np.ndarray, hu: np.ndarray, spacing_mm, diameter_mm: float) -> tuple[NoduleType, float | None]:
    """(type, solid component mean diameter in mm for part-solid nodules, else None)."""
    ggo_fraction = float(np.mean(hu[_interior(mask)] <= SOLID_ABOVE_HU))
    if ggo_fraction < SOLID_MAX_GGO_FRACTION:
        return NoduleType.SOLID, None
    solid_mm = _solid_component(mask, hu, spacing_mm)
    shell_mm = max(MIN_GGO_SHELL_MM, float(max(spacing_mm[:2])))
    if solid_mm is not None and (diameter_mm - solid_mm) / 2 >= shell_mm:
        return NoduleType.PART_SOLID, solid_mm
    if ggo_fraction >= GGO_MIN_FRACTION:
        return NoduleType.GROUND_GLASS, None
    return NoduleType.SOLID, None  # e.g. a cavitated solid nodule: dark core, solid wall


def is_calcified(mask: np.ndarray, hu: np.ndarray) -> bool:
    calcium = int(np.count_nonzero(hu[mask] > CALCIUM_ABOVE_HU))
    return calcium >= 2 and calcium >= CALCIFIED_FRACTION * int(mask.sum())


# -- whole nodules ------------------------------------------------------------------------------
def _crop(box: tuple[slice, ...], shape, pad: int = 1) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape))


def measure_component(mask: np.ndarray, volume: CTVolume, label: int, extent: LungExtent,
                      offset_zyx=(0, 0, 0)) -> NoduleMeasurement:
    """Measure one nodule given as a boolean ``mask`` cut from the volume at ``offset_zyx``."""
    off = np.asarray(offset_zyx)
    hu = np.asarray(volume.hu, np.float32)[tuple(slice(o, o + n) for o, n in zip(off, mask.shape))]
    spacing = volume.spacing_mm
    centroid = np.array(ndimage.center_of_mass(mask)) + off
    k, axes = axes_on_key_slice(mask, spacing)
    kind, solid_mm = nodule_type(mask, hu, spacing, axes.mean_mm)
    calcified = is_calcified(mask, hu)
    if calcified:
        kind, solid_mm = NoduleType.SOLID, None
    side, zone, lobe = locate(centroid, volume, extent)
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0) + off, idx.max(axis=0) + off + 1
    values = hu[mask]
    return NoduleMeasurement(
        label=int(label),
        centroid_mm=volume.index_to_mm(tuple(centroid)),
        centroid_zyx=tuple(float(c) for c in centroid),
        bbox_zyx=tuple(int(v) for v in (*lo, *hi)),
        key_slice=int(k + off[0]),
        volume_mm3=float(mask.sum() * np.prod(spacing)),
        long_axis_mm=round(axes.long_mm, 1),
        short_axis_mm=round(axes.short_mm, 1),
        mean_diameter_mm=axes.mean_mm,
        mean_hu=float(values.mean()),
        max_hu=float(values.max()),
        nodule_type=kind,
        solid_component_mm=solid_mm,
        calcified=calcified,
        side=side,
        zone=zone,
        lobe=lobe,
    )


def _extent_or_volume(lung_mask: np.ndarray | None, volume: CTVolume) -> LungExtent:
    """The lungs' extent, or the whole volume's when there is no usable lung mask."""
    if lung_mask is not None and lung_mask.any():
        return lung_extent(lung_mask, volume)
    return lung_extent(np.ones((2, 2, 2), bool), _corner_volume(volume))


def _corner_volume(volume: CTVolume) -> CTVolume:
    """A 2×2×2 stand-in whose voxels sit at the original volume's corner voxels."""
    shape = np.array(volume.hu.shape)
    spacing = tuple(float(s) * max(int(n) - 1, 1) for s, n in zip(volume.spacing_mm, shape[::-1]))
    return CTVolume(np.zeros((2, 2, 2), np.float32), spacing, volume.origin_mm, volume.direction)


def measure_nodules(label_mask: np.ndarray, volume: CTVolume, lung_mask: np.ndarray | None = None,
                    extent: LungExtent | None = None) -> tuple[NoduleMeasurement, ...]:
    """Measure every nodule of a mask in the input grid.

    ``label_mask``: integer labels (each label one nodule) or a boolean mask (each connected
    component one nodule, numbered 1… in scan order). ``lung_mask`` (any grid's extent may be
    given instead as ``extent``, e.g. from the isotropic lung mask) gives side/zone/lobe; without
    either, the volume's own extent stands in for the lungs'.
    """
    if tuple(label_mask.shape) != tuple(volume.hu.shape):
        raise ValueError(f"mask shape {tuple(label_mask.shape)} ≠ volume shape {tuple(volume.hu.shape)}")
    labels = ndimage.label(label_mask, structure=np.ones((3, 3, 3)))[0] if label_mask.dtype == bool else label_mask
    extent = extent or _extent_or_volume(lung_mask, volume)
    out = []
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = _crop(box, labels.shape)
        mask = labels[box] == i
        out.append(measure_component(mask, volume, i, extent, tuple(s.start for s in box)))
    return tuple(out)


def connected_candidates(prob: np.ndarray, threshold: float, min_volume_mm3: float,
                         spacing_mm) -> tuple[np.ndarray, tuple[Candidate, ...]]:
    """Components (26-connected) of ``prob >= threshold`` of at least ``min_volume_mm3``.

    Returns a uint16 label map (labels 1…n, ordered by decreasing maximum probability) and one
    :class:`Candidate` per label. ``spacing_mm`` is (x, y, z).
    """
    labels, n = ndimage.label(prob >= threshold, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.zeros(prob.shape, np.uint16), ()
    voxel_mm3 = float(np.prod(spacing_mm))
    index = np.arange(1, n + 1)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    maxima = np.asarray(ndimage.maximum(prob, labels, index))
    means = np.asarray(ndimage.mean(prob, labels, index))
    keep = [k for k in np.argsort(-maxima, kind="stable") if sizes[k] * voxel_mm3 >= min_volume_mm3]
    relabel = np.zeros(n + 1, np.uint16)
    relabel[np.array(keep, int) + 1] = np.arange(1, len(keep) + 1)
    cands = tuple(Candidate(j + 1, int(sizes[k]), float(sizes[k] * voxel_mm3), float(maxima[k]),
                            float(means[k])) for j, k in enumerate(keep))
    return relabel[labels], cands
