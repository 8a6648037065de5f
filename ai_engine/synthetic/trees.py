"""Branching pulmonary vessels and airways, grown from the hila and drawn as tapered tubes.

Growth rule (per segment): length ≈ U(7, 11) × radius; it tapers by 10 %; at its end it forks
into a major branch (radius × U(.80, .90), turned U(10°, 25°)) and a minor one (radius ×
U(.60, .75), turned U(35°, 60°) the other way), both nudged away from the hilum. A branch whose
end leaves its lung is halved once, then dropped; growth stops below the grid's resolvable
radius. Vessels are soft tissue (40 HU) drawn only inside the lungs; airways are an air lumen in a
soft-tissue wall (wall ≈ 0.2 × radius + 0.3 mm), from the trachea down to ≈ 1 mm radius.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ai_engine.synthetic.anatomy import RIGHT, Anatomy
from ai_engine.synthetic.grid import Grid
from ai_engine.synthetic.shapes import blend, segment_box, tube_fraction, unit

VESSEL_HU = 40.0
WALL_HU = 30.0
AIR_HU = -1000.0
ARTERY_TRUNKS = ((0.3, 0.1, 1.0), (0.5, -0.5, 0.8), (0.8, 0.0, 0.6), (1.0, -0.3, 0.0), (1.0, 0.5, 0.2),
                 (0.6, -0.6, -0.5), (0.3, 0.3, -1.0), (0.4, 0.8, -0.6))  # (lateral, posterior, superior)
VEIN_TRUNKS = ((0.5, -0.4, 0.7), (0.4, 0.5, 0.9), (0.9, 0.3, 0.1), (0.5, -0.2, -0.8), (0.5, 0.7, -0.3),
               (0.8, -0.6, -0.1))
AIRWAY_TRUNKS = ((0.4, 0.1, 1.0), (0.9, -0.2, -0.1), (0.4, 0.4, -1.0))


@dataclass(frozen=True)
class Segment:
    a: np.ndarray  # start (x, y, z) mm
    b: np.ndarray  # end
    r0_mm: float
    r1_mm: float


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross without its overhead (called thousands of times per phantom)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _turn(rng: np.random.Generator, direction: np.ndarray, angle_deg: float, azimuth: float) -> np.ndarray:
    """Rotate a unit vector by ``angle_deg`` towards the perpendicular picked by ``azimuth``."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = unit(_cross(direction, helper))
    v = _cross(direction, u)
    perp = np.cos(azimuth) * u + np.sin(azimuth) * v
    a = np.radians(angle_deg)
    return unit(np.cos(a) * direction + np.sin(a) * perp)


def _children(rng: np.random.Generator, seg: Segment, direction: np.ndarray, hilum: np.ndarray):
    azimuth = rng.uniform(0, 2 * np.pi)
    away = unit(seg.b - hilum)
    for factor, angle, az in (((0.80, 0.90), (10, 25), azimuth), ((0.60, 0.75), (35, 60), azimuth + np.pi)):
        d = unit(_turn(rng, direction, rng.uniform(*angle), az) + 0.3 * away)
        yield seg.r1_mm * rng.uniform(*factor), d


def grow_tree(rng: np.random.Generator, anatomy: Anatomy, lung_at, side: int, root: np.ndarray,
              direction: np.ndarray, radius_mm: float, r_min_mm: float) -> list[Segment]:
    """Grow one branching tree inside the ``side`` lung from ``root`` (see module docstring)."""
    hilum = anatomy.hilum_mm(side)
    stack = [(np.asarray(root, float), unit(direction), radius_mm, 0)]
    segments: list[Segment] = []
    while stack:
        start, d, r, gen = stack.pop()
        length = rng.uniform(7.0, 11.0) * r
        end = start + d * length
        if lung_at(end) != side:
            end = start + d * length / 2
            if lung_at(end) != side:
                continue
        seg = Segment(start, end, r, 0.9 * r)
        segments.append(seg)
        if gen < 14:
            stack.extend((end, cd, cr, gen + 1) for cr, cd in _children(rng, seg, d, hilum) if cr >= r_min_mm)
    return segments


def _trunks(rng: np.random.Generator, anatomy: Anatomy, lung_at, side: int, table, offset_mm, radius_mm, r_min_mm):
    s = -1.0 if side == RIGHT else 1.0
    root = anatomy.hilum_mm(side) + np.asarray(offset_mm) * anatomy.scale
    segments: list[Segment] = []
    for lat, post, sup in table:
        d = unit(np.array([s * lat, post, sup]) + rng.normal(0, 0.15, 3))
        segments += grow_tree(rng, anatomy, lung_at, side, root, d, radius_mm * rng.uniform(0.85, 1.1), r_min_mm)
    return segments


def vessel_segments(rng: np.random.Generator, anatomy: Anatomy, lung_at, voxel_mm: float) -> list[Segment]:
    """Pulmonary arteries and veins of both lungs (``lung_at``: points mm → lung label)."""
    r_min = max(0.4, 0.3 * voxel_mm)
    segs: list[Segment] = []
    for side in (RIGHT, 2):
        for offset in ((0.0, -4.0, 6.0), (4.0, 2.0, -4.0)):
            segs += _trunks(rng, anatomy, lung_at, side, ARTERY_TRUNKS, offset, 4.0 * anatomy.scale, r_min)
        segs += _trunks(rng, anatomy, lung_at, side, VEIN_TRUNKS, (0.0, 6.0, -14.0), 4.0 * anatomy.scale, r_min)
    return segs


def airway_segments(rng: np.random.Generator, anatomy: Anatomy, lung_at, voxel_mm: float) -> list[Segment]:
    """Trachea, main bronchi and the intrapulmonary bronchial trees."""
    carina = anatomy.carina_mm()
    top = carina + np.array([0.0, -0.1 * anatomy.cavity_axes[1], anatomy.lung_length_mm * 0.6])
    s = anatomy.scale
    segs = [Segment(top, carina, 8.0 * s, 8.0 * s)]
    r_min = max(1.0, 0.4 * voxel_mm)
    for side in (RIGHT, 2):
        hilum = anatomy.hilum_mm(side)
        segs.append(Segment(carina, hilum, 6.0 * s, 5.0 * s))
        segs += _trunks(rng, anatomy, lung_at, side, AIRWAY_TRUNKS, (0.0, 0.0, 0.0), 4.0 * s, r_min)
    return segs


def wall_mm(radius_mm: float) -> float:
    return 0.2 * radius_mm + 0.3


def _thin(fraction: np.ndarray, radius_mm: float, voxel_mm: float) -> np.ndarray:
    """Tubes thinner than a voxel fill only part of it."""
    return fraction * min(1.0, 2.0 * radius_mm / voxel_mm)


def draw_vessels(hu: np.ndarray, lungs: np.ndarray, grid: Grid, segments: list[Segment]) -> None:
    voxel = float(np.mean(grid.spacing_mm[:2]))
    for seg in segments:
        box = segment_box(grid, seg.a, seg.b, seg.r0_mm + voxel)
        if box is None:
            continue
        frac = _thin(tube_fraction(box, seg.a, seg.b, seg.r0_mm, seg.r1_mm, voxel), seg.r1_mm, voxel)
        blend(hu[box.slices], frac, VESSEL_HU, where=lungs[box.slices] > 0)


def draw_airways(hu: np.ndarray, grid: Grid, segments: list[Segment]) -> None:
    """Walls of every airway first, then every lumen, so branch lumens stay connected."""
    voxel = float(np.mean(grid.spacing_mm[:2]))
    for target, grow in ((WALL_HU, wall_mm), (AIR_HU, lambda r: 0.0)):
        for seg in segments:
            r0, r1 = seg.r0_mm + grow(seg.r0_mm), seg.r1_mm + grow(seg.r1_mm)
            box = segment_box(grid, seg.a, seg.b, r0 + voxel)
            if box is not None:
                frac = _thin(tube_fraction(box, seg.a, seg.b, r0, r1, voxel), r1, voxel)
                blend(hu[box.slices], frac, target)
