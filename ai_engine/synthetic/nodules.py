"""Placing and drawing nodules: shape (round / lobulated / spiculated), density (solid,
part-solid, ground-glass, calcified, cavitated) and the exact label mask.

The mask is the nodule *body*: every voxel whose centre lies inside the round sphere or the
lobulated union of spheres (for drawn nodules, clipped to the lung so a juxtapleural nodule stops
at the pleura). Spicules are thin radial tubes drawn in the image only, as radiologists leave them
out of diameter measurements. Ground-glass is drawn as ``max(existing, GGO HU)`` so vessels show
through it, as they do on real CT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ai_engine.findings import NoduleType, Side, Zone
from ai_engine.synthetic.anatomy import LEFT, RIGHT, Anatomy
from ai_engine.synthetic.grid import Grid
from ai_engine.synthetic.shapes import blend, random_unit, sphere_distance, tube_fraction
from ai_engine.synthetic.truth import NoduleAttributes, NoduleTruth

AIR_HU = -1000.0
SOFT_HU = 40.0
_DIRECTIONS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                        if (i, j, k) != (0, 0, 0)], float)
_DIRECTIONS /= np.linalg.norm(_DIRECTIONS, axis=1, keepdims=True)
PLEURA_SEARCH_MM = 40.0
CENTRAL_MM = 45.0  # in-plane distance from the hilum that counts as central
PERIPHERAL_MM = 15.0  # gap to the pleura that still counts as peripheral
# A lobulated body: a core of 0.7 r with 5–8 lobes (radius .35–.45 r) centred .60–.75 r out, so the
# lobes bulge .25–.50 r past the core and the outline undulates visibly at 1 mm. Sessions 1–13 drew
# a core of .88 r with 4–7 lobes of .35–.45 r at .50–.65 r, bulging at most .22 r (under 1 mm below
# 9 mm): their exact masks told lobulated from round nodules with AUC 0.58–0.75 (outline spread,
# solidity), yet step 5 of the label model makes a lobulated nodule's odds of malignancy 13 times a
# round one's
LOBES = (5, 9)  # rng.integers bounds
LOBE_OFFSET_R = (0.60, 0.75)
LOBE_RADIUS_R = (0.35, 0.45)
LOBULATED_CORE_R = 0.70


# -- shape --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """Nodule body as a union of spheres (centre offsets in mm, radii) plus spicules."""

    offsets_mm: np.ndarray  # [n, 3] (x, y, z) relative to the nodule centre
    radii_mm: np.ndarray  # [n]
    spicules: tuple[tuple[np.ndarray, float], ...] = ()  # (unit direction, length mm)

    @property
    def extent_mm(self) -> float:
        body = float(np.max(np.linalg.norm(self.offsets_mm, axis=1) + self.radii_mm))
        return body + max((length for _, length in self.spicules), default=0.0)


def _lobes(rng: np.random.Generator, r: float, n: int, dist: tuple, size: tuple):
    offsets = random_unit(rng, n) * rng.uniform(*dist, (n, 1)) * r
    return offsets, rng.uniform(*size, n) * r


def draw_shape(rng: np.random.Generator, attrs: NoduleAttributes) -> Shape:
    r = attrs.diameter_mm / 2
    if attrs.morphology == "round":
        return Shape(np.zeros((1, 3)), np.array([r]))
    lobulated = attrs.morphology == "lobulated"
    n = int(rng.integers(*LOBES)) if lobulated else 2
    offsets, radii = _lobes(rng, r, n, LOBE_OFFSET_R if lobulated else (0.4, 0.6), LOBE_RADIUS_R if lobulated else (0.3, 0.45))
    main = LOBULATED_CORE_R * r if lobulated else r
    shape_offsets = np.vstack([np.zeros((1, 3)), offsets])
    shape_radii = np.concatenate([[main], radii])
    if attrs.morphology != "spiculated":
        return Shape(shape_offsets, shape_radii)
    k = int(rng.integers(12, 23))
    spicules = tuple((d, float(min(15.0, rng.uniform(0.8, 1.6) * r + 2.0) + r)) for d in random_unit(rng, k))
    return Shape(shape_offsets, shape_radii, spicules)


def _body_mask(box, centre, shape: Shape) -> np.ndarray:
    mask = np.zeros(np.broadcast_shapes(box.z.shape, box.y.shape, box.x.shape), bool)
    for off, rad in zip(shape.offsets_mm, shape.radii_mm):
        mask |= sphere_distance(box, centre + off) <= rad
    return mask


# -- density ------------------------------------------------------------------------------------
def _fill(block: np.ndarray, mask: np.ndarray, box, centre, attrs: NoduleAttributes, rng) -> None:
    r = attrs.diameter_mm / 2
    dist = sphere_distance(box, centre)
    if attrs.nodule_type == NoduleType.GROUND_GLASS:
        block[mask] = np.maximum(block[mask], attrs.ggo_hu)
        return
    if attrs.nodule_type == NoduleType.PART_SOLID:
        block[mask] = np.maximum(block[mask], attrs.ggo_hu)
        block[mask & (dist <= attrs.solid_component_mm / 2)] = attrs.solid_hu
        return
    block[mask] = SOFT_HU if attrs.calcification in ("central", "popcorn") else attrs.solid_hu
    if attrs.calcification == "central":
        block[mask & (dist <= 0.45 * r)] = attrs.solid_hu
    elif attrs.calcification == "popcorn":
        for off, rad in zip(*_lobes(rng, r, int(rng.integers(3, 6)), (0.2, 0.6), (0.25, 0.35))):
            block[mask & (sphere_distance(box, centre + off) <= rad)] = attrs.solid_hu
    if attrs.cavitated:
        off = random_unit(rng) * 0.1 * r
        block[mask & (sphere_distance(box, centre + off) <= rng.uniform(0.3, 0.45) * r)] = AIR_HU


def _spicules(block, box, centre, shape: Shape, attrs: NoduleAttributes, voxel_mm: float, where) -> None:
    hu = attrs.ggo_hu if attrs.nodule_type == NoduleType.GROUND_GLASS else max(attrs.solid_hu, SOFT_HU)
    hu = min(hu, 100.0)  # spicules are soft tissue even on calcified nodules
    r = attrs.diameter_mm / 2
    for direction, length in shape.spicules:
        a, b = centre + direction * 0.7 * r, centre + direction * length
        frac = tube_fraction(box, a, b, 1.4, 0.4, voxel_mm) * min(1.0, 2.0 / voxel_mm)
        blend(block, frac, hu, where=where)


def draw_nodule(hu: np.ndarray, label_mask: np.ndarray, grid: Grid, centre_mm, attrs: NoduleAttributes,
                label: int, rng: np.random.Generator, lungs: np.ndarray | None) -> int:
    """Draw one nodule in place; returns its voxel count in ``label_mask``.

    ``lungs`` (label map) clips the body to the lung and keeps spicules in it; None draws the
    exact shape wherever it falls.
    """
    centre = np.asarray(centre_mm, np.float32)
    shape = draw_shape(rng, attrs)
    box = grid.box(centre - shape.extent_mm - 2.0, centre + shape.extent_mm + 2.0)
    if box is None:
        return 0
    mask = _body_mask(box, centre, shape)
    if not mask.any():  # smaller than a voxel of this grid: it still shows, in the voxel at its centre
        at = np.rint(grid.mm_to_index(centre)).astype(int) - [s.start for s in box.slices]
        if np.all((at >= 0) & (at < mask.shape)):
            mask[tuple(at)] = True
    lung_block = None if lungs is None else lungs[box.slices] > 0
    if lung_block is not None:
        mask &= lung_block
    mask &= label_mask[box.slices] == 0
    block = hu[box.slices]
    if shape.spicules:
        spic_where = ~mask if lung_block is None else (~mask & lung_block)
        _spicules(block, box, centre, shape, attrs, float(np.mean(grid.spacing_mm[:2])), spic_where)
    _fill(block, mask, box, centre, attrs, rng)
    label_mask[box.slices][mask] = label
    return int(mask.sum())


# -- placement ----------------------------------------------------------------------------------
def zone_ranges_mm(lungs: np.ndarray, grid: Grid) -> dict[int, tuple[float, float]]:
    """For each lung present, the mm z-range (min, max) of slices containing any lung: zones are
    thirds of both lungs' craniocaudal extent, as ``preprocess.assign_location`` defines them."""
    z = grid.axis_mm(0)
    step = max(1, max(lungs.shape[1:]) // 128)  # a subsample is plenty to see which slices have lung
    sub = lungs[:, ::step, ::step]
    present = np.flatnonzero(sub.any(axis=(1, 2)))
    if present.size == 0:
        return {}
    extent = (float(z[present[0]]), float(z[present[-1]]))
    return {side: extent for side in (RIGHT, LEFT) if (sub == side).any()}


def _zone_interval(z_range: tuple[float, float], zone: Zone) -> tuple[float, float]:
    lo, hi = z_range
    third = (hi - lo) / 3
    k = {Zone.LOWER: 0, Zone.MIDDLE: 1, Zone.UPPER: 2}[zone]
    return lo + k * third, lo + (k + 1) * third


def pleura_distance_mm(lung_at, points: np.ndarray, side: int) -> np.ndarray:
    """Approximate distance (mm, 1 mm steps, ≤ 40) from each point to the edge of its lung."""
    steps = np.arange(1.0, PLEURA_SEARCH_MM + 1.0)
    probe = points[:, None, None, :] + _DIRECTIONS[None, :, None, :] * steps[None, None, :, None]
    inside = lung_at(probe) == side
    first_out = np.where(inside.all(axis=2), PLEURA_SEARCH_MM, np.argmin(inside, axis=2) + 0.5)
    return first_out.min(axis=1)


def _candidates(rng: np.random.Generator, anatomy: Anatomy, lung_at, side: int, z_lo: float,
                z_hi: float, n: int = 300) -> np.ndarray:
    tx, ty = anatomy.cavity_axes
    s = -1.0 if side == RIGHT else 1.0
    pts = np.column_stack([s * rng.uniform(0, tx, n), rng.uniform(-ty, ty, n), rng.uniform(z_lo, z_hi, n)])
    return pts[lung_at(pts) == side]


def _wanted(placement: str, gap: np.ndarray, r: float, near_hilum: np.ndarray) -> np.ndarray:
    if placement == "juxtapleural":
        return (gap >= r - 1.0) & (gap <= r + 1.0)
    ok = gap >= r + 1.0
    if placement == "peripheral":
        return ok & (gap <= r + PERIPHERAL_MM)
    if placement == "central":
        return ok & near_hilum
    return ok


def place_nodule(rng: np.random.Generator, anatomy: Anatomy, grid: Grid, lungs: np.ndarray, lungs_z: dict,
                 attrs: NoduleAttributes, taken: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A centre (x, y, z) mm in the attributes' side/zone/placement, clear of ``taken`` nodules."""
    side = RIGHT if attrs.side == Side.RIGHT else LEFT
    if side not in lungs_z:
        side = next(iter(lungs_z), side)
    r = attrs.diameter_mm / 2
    z_lo, z_hi = _zone_interval(lungs_z.get(side, (0.0, 0.0)), attrs.zone)
    lung_at = grid.lookup(lungs)
    pts = _candidates(rng, anatomy, lung_at, side, z_lo, z_hi)
    if pts.size == 0:
        return np.array(grid.index_to_mm(np.array(grid.shape_zyx) / 2))
    gap = pleura_distance_mm(lung_at, pts, side)
    hilum = anatomy.hilum_mm(side)
    near_hilum = np.linalg.norm(pts[:, :2] - hilum[:2], axis=1) <= CENTRAL_MM * anatomy.scale
    clear = np.array([all(np.linalg.norm(p - c) >= r + rc + 4.0 for c, rc in taken) for p in pts], bool)
    for ok in (_wanted(attrs.placement, gap, r, near_hilum) & clear, (gap >= r + 1.0) & clear, clear):
        if ok.any():
            return pts[int(rng.choice(np.flatnonzero(ok)))]
    return pts[int(np.argmax(gap))]


def truth_of(label: int, centre_mm, grid: Grid, attrs: NoduleAttributes, voxels: int) -> NoduleTruth:
    c = np.asarray(centre_mm, float)
    return NoduleTruth(
        label=label,
        centre_zyx=tuple(float(v) for v in grid.mm_to_index(c)),
        centre_mm=tuple(float(v) for v in c),
        diameter_mm=round(float(attrs.diameter_mm), 2),
        volume_mm3=voxels * grid.voxel_volume_mm3,
        nodule_type=attrs.nodule_type,
        calcified=attrs.calcified,
        malignant=attrs.malignant,
        subtype=attrs.subtype,
        morphology=attrs.morphology,
        solid_component_mm=attrs.solid_component_mm,
        side=attrs.side,
        zone=attrs.zone,
        placement=attrs.placement,
        cavitated=attrs.cavitated,
        calcification=attrs.calcification,
        p_malignant=attrs.p_malignant,
    )
