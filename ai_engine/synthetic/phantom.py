"""Whole-chest phantoms: anatomy → vessels → airways → nodules → scanner blur and noise."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np
from scipy import ndimage

from ai_engine.findings import Side, Zone
from ai_engine.synthetic.anatomy import LEFT, RIGHT, Anatomy, draw_anatomy, render_anatomy
from ai_engine.synthetic.grid import Grid
from ai_engine.synthetic.labels import draw_attributes
from ai_engine.synthetic.nodules import draw_nodule, place_nodule, truth_of, zone_ranges_mm
from ai_engine.synthetic.trees import airway_segments, draw_airways, draw_vessels, vessel_segments
from ai_engine.synthetic.truth import NoduleSpec, NoduleTruth, Phantom

DEFAULT_SHAPE_ZYX = (96, 160, 160)
DEFAULT_SPACING_MM = (2.0, 2.0, 2.5)  # (x, y, z)
NODULE_COUNT_P = (0.10, 0.35, 0.25, 0.15, 0.10, 0.05)  # P(0), P(1), ... nodules per phantom
BLUR_SIGMA_VOXELS = 0.5
NOISE_HU = (10.0, 20.0)


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent generators for anatomy, trees, nodules and noise, so that e.g. asking for a
    different nodule leaves the same seed's anatomy untouched."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)]


def _location_of(centre_mm, lungs_z: dict) -> tuple[Side, Zone]:
    side = Side.RIGHT if centre_mm[0] < 0 else Side.LEFT
    lo, hi = lungs_z.get(RIGHT if side == Side.RIGHT else LEFT, (centre_mm[2], centre_mm[2]))
    rel = (centre_mm[2] - lo) / max(hi - lo, 1e-6)
    zone = Zone.LOWER if rel < 1 / 3 else Zone.MIDDLE if rel < 2 / 3 else Zone.UPPER
    return side, zone


def _specs(rng: np.random.Generator, n_nodules: int | None, nodule_spec) -> list[NoduleSpec]:
    if nodule_spec is not None:
        return list(nodule_spec)
    if n_nodules is None:
        n_nodules = int(rng.choice(len(NODULE_COUNT_P), p=NODULE_COUNT_P))
    if n_nodules < 0:
        raise ValueError(f"n_nodules must be >= 0, got {n_nodules}")
    return [NoduleSpec() for _ in range(n_nodules)]


def _add_nodules(rng, anatomy: Anatomy, grid: Grid, hu, lungs, specs) -> tuple[np.ndarray, tuple[NoduleTruth, ...]]:
    label_mask = np.zeros(grid.shape_zyx, np.uint16)
    lungs_z = zone_ranges_mm(lungs, grid)
    taken: list[tuple[np.ndarray, float]] = []
    truths = []
    for label, spec in enumerate(specs, start=1):
        if spec.centre_mm is not None:
            side, zone = _location_of(spec.centre_mm, lungs_z)
            spec = replace(spec, side=side, zone=zone, placement=spec.placement or "given")
        attrs = draw_attributes(rng, spec)
        given = spec.centre_mm is not None
        centre = np.asarray(spec.centre_mm, float) if given else place_nodule(rng, anatomy, grid, lungs, lungs_z, attrs, taken)
        if not given:
            side, zone = _location_of(centre, lungs_z)
            attrs = replace(attrs, side=side, zone=zone)
        voxels = draw_nodule(hu, label_mask, grid, centre, attrs, label, rng, None if given else lungs)
        taken.append((centre, attrs.diameter_mm / 2))
        truths.append(truth_of(label, centre, grid, attrs, voxels))
    return label_mask, tuple(truths)


def add_scanner(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slight blur (σ = 0.5 voxel) and Gaussian noise (σ ~ U(10, 20) HU), in place."""
    ndimage.gaussian_filter(hu, BLUR_SIGMA_VOXELS, output=hu, truncate=2.0)
    sigma = np.float32(rng.uniform(*NOISE_HU))
    for k in range(hu.shape[0]):  # slice by slice keeps the temporary small
        hu[k] += sigma * rng.standard_normal(hu.shape[1:], dtype=np.float32)
    return hu


def make_ct_phantom(
    seed: int,
    shape_zyx: tuple[int, int, int] = DEFAULT_SHAPE_ZYX,
    spacing_mm: tuple[float, float, float] = DEFAULT_SPACING_MM,
    n_nodules: int | None = None,
    nodule_spec: Iterable[NoduleSpec] | None = None,
) -> Phantom:
    """A reproducible synthetic chest CT (see the package docstring)."""
    grid = Grid.centred(shape_zyx, spacing_mm)
    r_anat, r_tree, r_nod, r_noise = _streams(seed)
    anatomy = draw_anatomy(r_anat, grid)
    hu, lungs = render_anatomy(anatomy, grid, r_anat)
    voxel = float(np.mean(grid.spacing_mm[:2]))
    lung_at = grid.lookup(lungs)
    draw_vessels(hu, lungs, grid, vessel_segments(r_tree, anatomy, lung_at, voxel))
    draw_airways(hu, grid, airway_segments(r_tree, anatomy, lung_at, voxel))
    label_mask, truths = _add_nodules(r_nod, anatomy, grid, hu, lungs, _specs(r_nod, n_nodules, nodule_spec))
    lung_mask = lungs > 0
    lung_mask |= label_mask > 0
    return Phantom(grid.volume(add_scanner(hu, r_noise)), label_mask, lung_mask, truths, int(seed))


def make_ct_dataset(seeds: Iterable[int], **kwargs) -> Iterator[Phantom]:
    """One phantom per seed, lazily (``kwargs`` go to :func:`make_ct_phantom`)."""
    for seed in seeds:
        yield make_ct_phantom(seed, **kwargs)


def lung_point_mm(seed: int, side: Side, zone: Zone, shape_zyx=DEFAULT_SHAPE_ZYX,
                  spacing_mm=DEFAULT_SPACING_MM, clearance_mm: float = 8.0) -> tuple[float, float, float]:
    """A point (x, y, z) mm inside the given lung and zone of ``make_ct_phantom(seed, shape, spacing)``,
    at least ``clearance_mm`` from the pleura where the lung allows it (for placing a nodule_spec)."""
    grid = Grid.centred(shape_zyx, spacing_mm)
    r_anat, *_ = _streams(seed)
    anatomy = draw_anatomy(r_anat, grid)
    lungs = _lungs_only(anatomy, grid)
    spec = NoduleSpec(diameter_mm=2 * clearance_mm - 2.0, side=side, zone=zone, placement="intermediate")
    attrs = draw_attributes(np.random.default_rng(seed), spec)
    centre = place_nodule(np.random.default_rng(seed), anatomy, grid, lungs, zone_ranges_mm(lungs, grid), attrs, [])
    return tuple(float(v) for v in centre)


def _lungs_only(anatomy: Anatomy, grid: Grid) -> np.ndarray:
    z, y, x = grid.zyx_mm
    planes = anatomy.lung_planes(x[0], y[0])
    return np.stack([anatomy.lung_label_from_planes(planes, np.float32(zk)) for zk in grid.axis_mm(0)])
