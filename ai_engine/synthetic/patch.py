"""Nodule patches in local lung context, for fast classifier training.

Each patch is a small scene built around one nodule drawn from the label model:
lung parenchyma with low-frequency texture, 2–5 vessels crossing (one may fork), and by placement
- juxtapleural / peripheral: a curved pleura + chest wall (muscle, fat, sometimes a rib) at the
  nodule's gap from the pleura (touching for juxtapleural);
- central: a large hilar vessel and a bronchus (air lumen in a wall) close by, mediastinum beyond;
- intermediate: parenchyma and vessels only.
The nodule centre is jittered ±3 mm from the patch centre (as a detector's centroid would be).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy import ndimage

from ai_engine.findings import Subtype
from ai_engine.synthetic.grid import Box, Grid
from ai_engine.synthetic.labels import draw_attributes
from ai_engine.synthetic.nodules import draw_nodule, truth_of
from ai_engine.synthetic.phantom import add_scanner
from ai_engine.synthetic.shapes import blend, random_unit, sphere_distance, tube_fraction, unit
from ai_engine.synthetic.truth import NoduleAttributes, NoduleSpec, NoduleTruth

JITTER_MM = 3.0
WALL_RADIUS_MM = 120.0  # curvature of the chest wall


def _whole(grid: Grid) -> Box:
    z, y, x = grid.zyx_mm
    return Box(tuple(slice(0, n) for n in grid.shape_zyx), z, y, x)


def _parenchyma(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    coarse = rng.normal(size=(6, 6, 6)).astype(np.float32)
    field = ndimage.zoom(coarse, [n / 6 for n in grid.shape_zyx], order=1)
    return (rng.uniform(-875, -835) + 12.0 * field).astype(np.float32)


def _vessels(rng: np.random.Generator, grid: Grid, box: Box, hu: np.ndarray, lung: np.ndarray) -> None:
    half = max(grid.extent_mm) / 2
    voxel = grid.spacing_mm[0]
    for _ in range(int(rng.integers(2, 6))):
        p = rng.uniform(-0.7, 0.7, 3) * half
        d = random_unit(rng)
        r = float(rng.uniform(0.8, 2.5))
        a, b = p - d * 2 * half, p + d * 2 * half
        blend(hu, tube_fraction(box, a, b, r, r, voxel) * min(1.0, 2 * r / voxel), 40.0, where=lung)
        if rng.random() < 0.5:
            fork = unit(d + random_unit(rng))
            blend(hu, tube_fraction(box, p, p + fork * 2 * half, 0.7 * r, 0.5 * r, voxel), 40.0, where=lung)


def _chest_wall(rng: np.random.Generator, box: Box, hu: np.ndarray, centre: np.ndarray, gap_mm: float) -> np.ndarray:
    """Curved pleura ``gap_mm`` from ``centre``; returns the lung mask (the near side)."""
    normal = unit(np.append(random_unit(rng)[:2], rng.uniform(-0.3, 0.3)))
    far = centre + normal * (gap_mm - WALL_RADIUS_MM)  # centre of the wall's curvature sphere
    depth = sphere_distance(box, far) - WALL_RADIUS_MM  # > 0 beyond the pleura, mm
    hu[depth > 0] = 45.0
    fat_from = float(rng.uniform(8, 16))
    hu[depth > fat_from] = -100.0
    if rng.random() < 0.6:
        tangent = unit(np.cross(normal, random_unit(rng)))
        rib_c = centre + normal * (gap_mm + 6.0) + tangent * rng.uniform(-15, 15)
        along = unit(np.cross(normal, tangent))
        hu[tube_fraction(box, rib_c - 80 * along, rib_c + 80 * along, 5.0, 5.0, 1.0) > 0.5] = 700.0
    return depth <= 0


def _hilum(rng: np.random.Generator, box: Box, hu: np.ndarray, centre: np.ndarray, r: float, voxel: float) -> np.ndarray:
    """Large vessel and bronchus beside the nodule, mediastinum beyond; returns the lung mask."""
    side = random_unit(rng)
    lung = np.ones(hu.shape, bool)
    mediastinum = np.asarray(_chest_wall(rng, box, hu.copy(), centre, r + rng.uniform(15, 25)))
    hu[~mediastinum] = 40.0
    lung &= mediastinum
    for kind in ("vessel", "bronchus"):
        rr = float(rng.uniform(4, 7) if kind == "vessel" else rng.uniform(3, 5))
        axis = random_unit(rng)
        c = centre + unit(np.cross(axis, side if kind == "vessel" else -side)) * (r + rr + rng.uniform(2, 8))
        a, b = c - 80 * axis, c + 80 * axis
        if kind == "vessel":
            blend(hu, tube_fraction(box, a, b, rr, rr, voxel), 40.0, where=lung)
        else:
            blend(hu, tube_fraction(box, a, b, rr + 0.2 * rr + 0.3, rr + 0.2 * rr + 0.3, voxel), 30.0, where=lung)
            blend(hu, tube_fraction(box, a, b, rr, rr, voxel), -1000.0, where=lung)
    return lung


def _context(rng, grid: Grid, attrs: NoduleAttributes, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    box = _whole(grid)
    hu = _parenchyma(rng, grid)
    r = attrs.diameter_mm / 2
    lung = np.ones(grid.shape_zyx, bool)
    if attrs.placement in ("juxtapleural", "peripheral"):
        gap = r if attrs.placement == "juxtapleural" else r + float(rng.uniform(1, 15))
        lung = _chest_wall(rng, box, hu, centre, gap)
    elif attrs.placement == "central":
        lung = _hilum(rng, box, hu, centre, r, grid.spacing_mm[0])
    _vessels(rng, grid, box, hu, lung)
    return hu, lung


def make_nodule_patch(
    seed: int,
    size_mm: float = 64.0,
    spacing_mm: float = 1.0,
    malignant: bool | None = None,
    subtype: Subtype | None = None,
) -> tuple[np.ndarray, NoduleTruth]:
    """A float32 HU cube [n, n, n] (n = round(size_mm / spacing_mm)) around one nodule, with its
    truth (``centre_zyx`` in patch voxels). ``malignant``/``subtype`` condition the label model."""
    n = int(round(size_mm / spacing_mm))
    if n < 8:
        raise ValueError(f"patch of {size_mm} mm at {spacing_mm} mm is {n} voxels; need ≥ 8")
    rng = np.random.default_rng(int(seed))
    return nodule_scene(rng, Grid.centred((n, n, n), (spacing_mm,) * 3), NoduleSpec(malignant=malignant, subtype=subtype))


def nodule_scene(rng: np.random.Generator, grid: Grid, spec: NoduleSpec) -> tuple[np.ndarray, NoduleTruth]:
    """One nodule drawn by the label model under ``spec``, up to JITTER_MM from ``grid``'s centre,
    in its context, with scanner noise: the HU array on ``grid`` and the nodule's truth."""
    attrs = draw_attributes(rng, spec)
    centre = rng.uniform(-JITTER_MM, JITTER_MM, 3)
    hu, lung = _context(rng, grid, attrs, centre)
    label_mask = np.zeros(grid.shape_zyx, np.uint16)
    voxels = draw_nodule(hu, label_mask, grid, centre, attrs, 1, rng, lung.astype(np.uint8))
    return add_scanner(hu, rng), truth_of(1, centre, grid, attrs, voxels)


def make_patch_dataset(seeds: Iterable[int], **kwargs) -> Iterator[tuple[np.ndarray, NoduleTruth]]:
    """One patch per seed, lazily (``kwargs`` go to :func:`make_nodule_patch`)."""
    for seed in seeds:
        yield make_nodule_patch(seed, **kwargs)
