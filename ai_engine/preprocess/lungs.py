"""Classic threshold lung segmentation (no learning) and the lung bounding box.

Steps, on a working grid of ≈ 2 mm (the input subsampled; full resolution when coarser):
1. air = HU < -400; drop air components touching the in-plane border (outside the body);
2. trachea and main bronchi: components of very dark air (smoothed HU < -950) that reach the
   first or last slice containing air are removed with a 5 mm margin (their partial-volume rind),
   so they cannot join the lungs;
3. keep the two largest components (the second only if ≥ 2 % of the first); a single one (lungs
   touching at a junction line) is eroded until it splits in two, and its voxels go to the
   nearer part;
4. per lung, a 3-D closing with a ``closing_mm`` ball (15 mm: half the largest nodule), done on
   a ≈ 3 mm grid for speed (the added cells grown by one cell, to take in the partly-lung
   cells along the dent), adds the concavities a juxtapleural nodule makes; each lung grows
   only into cells nearer to it than to the other, so the two stay apart; then a per-slice hole
   fill takes in vessels and nodules;
5. back to the input grid by nearest neighbour.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ai_engine.findings import CTVolume

AIR_BELOW_HU = -400.0
AIRWAY_BELOW_HU = -950.0
WORK_SPACING_MM = 2.0  # 8× fewer voxels than 1 mm; lung Dice vs truth ≈ 0.97 either way
CLOSING_SPACING_MM = 3.0
CLOSING_MM = 15.0
SECOND_LUNG_MIN_FRACTION = 0.02
AIRWAY_MARGIN_MM = 5.0
MAX_SPLIT_EROSIONS = 6


def _factors(spacing_zyx, target_mm: float) -> tuple[int, int, int]:
    """Whole-number subsampling factors (z, y, x) that bring the spacing near ``target_mm``."""
    return tuple(max(1, int(target_mm / s + 0.25)) for s in spacing_zyx)


def _box_around(mask: np.ndarray, pad) -> tuple[slice, ...]:
    first, last = _extent(mask)
    return tuple(slice(max(a - p, 0), min(b + p + 1, n)) for a, b, p, n in zip(first, last, pad, mask.shape))


def _select(labels: np.ndarray, n: int, ids: np.ndarray) -> np.ndarray:
    """Voxels whose label is one of ``ids`` (a lookup table: faster than np.isin on volumes)."""
    table = np.zeros(n + 1, bool)
    table[ids] = True
    table[0] = False
    return table[labels]


def _drop_outside_air(air: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(air)
    border = np.unique(np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(),
                                       labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    return air & ~_select(labels, n, border)


def _drop_airways(candidate: np.ndarray, hu: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    slices = np.flatnonzero(candidate.any(axis=(1, 2)))
    if slices.size == 0:
        return candidate
    dark = (ndimage.gaussian_filter(hu, 0.7) < AIRWAY_BELOW_HU) & candidate
    labels, n = ndimage.label(dark)
    # scans run feet→head or head→feet; the trachea reaches the superior end, the highest index
    # when +z (superior) grows with the index, as in our volumes; check both ends.
    ends = [labels[slices[0]], labels[slices[-1]]]
    ids = np.unique(np.concatenate([e.ravel() for e in ends]))
    airway = _select(labels, n, ids)
    if not airway.any():
        return candidate
    # the lumen's partial-volume rind is air too: take AIRWAY_MARGIN_MM around the dark core
    box = _box_around(airway, np.ceil(AIRWAY_MARGIN_MM / spacing_zyx).astype(int) + 1)
    near = ndimage.distance_transform_edt(~airway[box], sampling=spacing_zyx) <= AIRWAY_MARGIN_MM
    out = candidate.copy()
    out[box] &= ~near
    return out


def _largest(labels: np.ndarray, n: int, k: int) -> list[int]:
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = [int(i) + 1 for i in np.argsort(sizes)[::-1][:k]]
    return [i for i in order if sizes[i - 1] >= SECOND_LUNG_MIN_FRACTION * sizes[order[0] - 1]]


def _split(component: np.ndarray) -> list[np.ndarray]:
    """Lungs touching at a junction line: erode until two large parts appear, then give every
    voxel of the component to the nearer part."""
    eroded = component
    for _ in range(MAX_SPLIT_EROSIONS):
        eroded = ndimage.binary_erosion(eroded)
        labels, n = ndimage.label(eroded)
        parts = _largest(labels, n, 2)
        if len(parts) == 2:
            seeds = np.where(np.isin(labels, parts), labels, 0)
            nearest = ndimage.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
            owner = seeds[tuple(nearest)]
            a, b = (component & (owner == p) for p in parts)
            return [a & ~ndimage.binary_dilation(b), b]  # a one-voxel seam keeps them apart
    return [component]


def _two_largest(candidate: np.ndarray) -> list[np.ndarray]:
    labels, n = ndimage.label(candidate)
    if n == 0:
        return []
    parts = [labels == i for i in _largest(labels, n, 2)]
    return _split(parts[0]) if len(parts) == 1 else parts


def _territories(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Where each lung may grow when closed: the cells nearer to it than to the other lung, less
    a one-cell seam, so two closed lungs never touch."""
    if len(parts) < 2:
        return [np.ones_like(p) for p in parts]
    seeds = parts[0].astype(np.uint8) + 2 * parts[1].astype(np.uint8)
    nearest = ndimage.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
    owner = seeds[tuple(nearest)]
    return [ndimage.binary_erosion(owner == k + 1) | p for k, p in enumerate(parts)]


def _closing(lung: np.ndarray, spacing_zyx: np.ndarray, radius_mm: float) -> np.ndarray:
    """Closing by a ball (via distance transforms), in the lung's box padded with empty cells so
    that nothing closes against the array edge."""
    pad = np.ceil(radius_mm / spacing_zyx).astype(int) + 2
    box = _box_around(lung, pad)
    sub = np.pad(lung[box], [(p, p) for p in pad])
    dilated = ndimage.distance_transform_edt(~sub, sampling=spacing_zyx) <= radius_mm
    closed = ndimage.distance_transform_edt(dilated, sampling=spacing_zyx) > radius_mm
    out = np.zeros_like(lung)
    out[box] = (closed | sub)[tuple(slice(p, -p) for p in pad)]
    return out


def _pool_any(mask: np.ndarray, factors) -> np.ndarray:
    """Block max-pooling: a cell is set if any voxel of its block is."""
    padded = np.pad(mask, [(0, -n % f) for n, f in zip(mask.shape, factors)])
    (a, b, c), (fz, fy, fx) = padded.shape, factors
    return padded.reshape(a // fz, fz, b // fy, fy, c // fx, fx).any(axis=(1, 3, 5))


def _closing_additions(parts: list[np.ndarray], spacing_zyx: np.ndarray, radius_mm: float) -> list[np.ndarray]:
    """Per lung, the cells a closing adds (on a ≈ 3 mm grid), back on the working grid. The
    added cells grow by one cell so the partly-lung cells along a filled dent (where a
    juxtapleural nodule meets the pleura) come too."""
    k = _factors(spacing_zyx, CLOSING_SPACING_MM)
    pooled = [_pool_any(p, k) for p in parts]
    out = []
    for p, territory in zip(pooled, _territories(pooled)):
        added = _closing(p, spacing_zyx * np.array(k), radius_mm) & ~p & territory
        if k != (1, 1, 1):
            added = ndimage.binary_dilation(added) & territory
        out.append(_upsample(added, parts[0].shape, k))
    return out


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """Per axial slice hole fill, within the mask's box."""
    if not mask.any():
        return mask
    bz, by, bx = _box_around(mask, (0, 1, 1))
    for k in range(bz.start, bz.stop):
        mask[k, by, bx] = ndimage.binary_fill_holes(mask[k, by, bx])
    return mask


def _upsample(coarse: np.ndarray, shape: tuple[int, int, int], factors) -> np.ndarray:
    idx = [np.minimum(np.arange(n) // f, c - 1) for n, f, c in zip(shape, factors, coarse.shape)]
    return coarse[np.ix_(*idx)]


def lung_mask(volume: CTVolume, closing_mm: float = CLOSING_MM) -> np.ndarray:
    """Boolean [z, y, x] mask of both lungs, with their vessels, airways and nodules (incl.
    juxtapleural ones); trachea and main bronchi excluded. Empty if no lung-like air is found."""
    f = _factors(volume.spacing_mm[::-1], WORK_SPACING_MM)
    hu = np.asarray(volume.hu, np.float32)[::f[0], ::f[1], ::f[2]]
    spacing_zyx = np.array(volume.spacing_mm[::-1]) * np.array(f)
    candidate = _drop_airways(_drop_outside_air(hu < AIR_BELOW_HU), hu, spacing_zyx)
    parts = _two_largest(candidate)
    lungs = np.zeros(hu.shape, bool)
    for part, added in zip(parts, _closing_additions(parts, spacing_zyx, closing_mm)):
        lungs |= _fill_slices(part | added)
    return _upsample(lungs, volume.hu.shape, f)


def lung_bbox(mask: np.ndarray, margin_mm: float = 10.0,
              spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[slice, slice, slice]:
    """Index slices (z, y, x) of the mask's bounding box grown by ``margin_mm`` (spacing (x, y, z)),
    clipped to the array. An empty mask gives the whole array (nothing to restrict to)."""
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    pad = np.ceil(margin_mm / np.array(spacing_mm[::-1], float)).astype(int)
    first, last = _extent(mask)
    lo = np.maximum(first - pad, 0)
    hi = np.minimum(last + 1 + pad, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _extent(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of True along each axis (z, y, x), from projections (fast)."""
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        lo.append(present[0])
        hi.append(present[-1])
    return np.array(lo), np.array(hi)
