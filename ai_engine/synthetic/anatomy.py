"""An analytic chest: body, fat, chest wall, ribs, spine, sternum, mediastinum, heart, aorta,
diaphragm with liver/spleen below, and two lungs with low-frequency parenchymal texture.

Shapes are closed-form functions of patient mm (x, y, z), so lung membership can be asked of
single points (vessel growth, nodule placement) and of the whole grid alike. Sizes are those of an
adult chest (body ≈ 300 × 215 mm, lungs ≈ 230 mm craniocaudal) scaled down to fit a smaller field
of view; a thin slab (< 60 mm) shows a slice through mid-chest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ai_engine.synthetic.grid import Grid

BODY_SEMI_AXES_MM = (155.0, 110.0)  # x, y at scale 1
LUNG_LENGTH_MM = 230.0
SLAB_MM = 60.0
RIGHT, LEFT = 1, 2  # lung labels; right lung is at -x (LPS)


@dataclass(frozen=True)
class Anatomy:
    scale: float  # in-plane scale of the adult chest
    fat_mm: float
    z_base_mm: float  # lowest lung point (costophrenic recess)
    lung_length_mm: float
    dome_mm: tuple[float, float]  # diaphragm dome height under the right, left lung
    lung_hu: float
    rib_hu: float
    rib_period_mm: float
    rib_phase_mm: float

    @property
    def body_axes(self) -> tuple[float, float]:
        return BODY_SEMI_AXES_MM[0] * self.scale, BODY_SEMI_AXES_MM[1] * self.scale

    @property
    def cavity_axes(self) -> tuple[float, float]:
        """Semi-axes of the thoracic cavity (inside fat, muscle and ribs)."""
        ax, ay = self.body_axes
        wall = self.fat_mm + 16.0 * self.scale
        return ax - wall, ay - wall

    def t(self, z):
        """Craniocaudal position: 0 at the lung base, 1 at the apex."""
        return (z - self.z_base_mm) / self.lung_length_mm

    def hilum_mm(self, side: int) -> np.ndarray:
        tx, ty = self.cavity_axes
        s = -1.0 if side == RIGHT else 1.0
        return np.array([s * (0.12 * tx + 14.0 * self.scale), 0.10 * ty, self.z_base_mm + 0.55 * self.lung_length_mm])

    def carina_mm(self) -> np.ndarray:
        tx, ty = self.cavity_axes
        return np.array([0.0, 0.25 * ty, self.z_base_mm + 0.63 * self.lung_length_mm])

    # -- lung membership (broadcasting over x, y, z arrays) -------------------------------------
    def _apex_taper_sq(self, z):
        u = np.clip((self.t(z) - 0.55) / 0.45, 0.0, None)
        return np.clip(1.0 - u * u, 0.0, None)

    def _static_in_plane(self, x, y, s: float):
        """Cavity minus mediastinum strip, spine and aorta (independent of z)."""
        tx, ty = self.cavity_axes
        cavity = (x / tx) ** 2 + (y / ty) ** 2 <= 1.0
        spine = x**2 + (y - 0.8 * ty) ** 2 <= (0.22 * ty + 4.0 * self.scale) ** 2
        aorta = (x - 0.2 * tx) ** 2 + (y - 0.55 * ty) ** 2 <= (0.14 * ty + 2.0) ** 2
        return cavity & (s * x > 0.12 * tx) & ~spine & ~aorta

    def dome_height(self, x, y, side: int):
        tx, ty = self.cavity_axes
        s = -1.0 if side == RIGHT else 1.0
        q = ((x - s * 0.52 * tx) / (0.5 * tx)) ** 2 + ((y - 0.1 * ty) / (0.9 * ty)) ** 2
        return self.z_base_mm + self.dome_mm[side - 1] * np.clip(1.0 - q, 0.0, None)

    def lung_planes(self, x, y) -> tuple:
        """The z-independent parts of lung membership: per side (q, dome height, static mask)."""
        tx, ty = self.cavity_axes
        planes = []
        for side in (RIGHT, LEFT):
            s = -1.0 if side == RIGHT else 1.0
            q = ((x - s * 0.52 * tx) / (0.5 * tx)) ** 2 + ((y - 0.08 * ty) / (0.95 * ty)) ** 2
            planes.append((q, self.dome_height(x, y, side), self._static_in_plane(x, y, s)))
        heart2d = ((x - 0.12 * tx) / (0.42 * tx)) ** 2 + ((y + 0.2 * ty) / (0.55 * ty)) ** 2
        return tuple(planes), heart2d

    def lung_label_from_planes(self, planes: tuple, z) -> np.ndarray:
        """0 outside the lungs, RIGHT (1) or LEFT (2) inside; z broadcasts against the planes."""
        sides, heart2d = planes
        hz = ((z - (self.z_base_mm + 0.22 * self.lung_length_mm)) / (0.25 * self.lung_length_mm)) ** 2
        out = np.zeros(np.broadcast_shapes(np.shape(heart2d), np.shape(z)), np.uint8)
        taper = self._apex_taper_sq(z)
        below_apex = self.t(z) <= 1.0
        for label, (q, dome, static) in zip((RIGHT, LEFT), sides):
            inside = (q <= taper) & (z > dome) & static & below_apex
            out[inside] = label
        out[heart2d + hz <= 1.0] = 0
        return out


def draw_anatomy(rng: np.random.Generator, grid: Grid) -> Anatomy:
    """Draw a chest that fits the grid's field of view."""
    fov_x, fov_y, fov_z = grid.extent_mm
    scale = min(float(rng.uniform(0.92, 1.05)), 0.94 * fov_x / (2 * BODY_SEMI_AXES_MM[0]),
                0.94 * fov_y / (2 * BODY_SEMI_AXES_MM[1]))
    natural = LUNG_LENGTH_MM * float(rng.uniform(0.9, 1.05))
    length = natural if fov_z < SLAB_MM else min(natural, 0.84 * fov_z)
    z_mid = float(np.mean(grid.axis_mm(0)[[0, -1]])) + (0.0 if fov_z < SLAB_MM else 0.02 * fov_z)
    dome = 0.2 * length * float(rng.uniform(0.85, 1.15))
    return Anatomy(
        scale=scale,
        fat_mm=float(rng.uniform(8.0, 20.0)) * scale,
        z_base_mm=z_mid - length / 2,
        lung_length_mm=length,
        dome_mm=(dome * 1.1, dome * 0.95),  # right hemidiaphragm sits higher (liver)
        lung_hu=float(rng.uniform(-875.0, -835.0)),
        rib_hu=float(rng.uniform(600.0, 800.0)),
        rib_period_mm=float(rng.uniform(24.0, 30.0)) * (length / LUNG_LENGTH_MM),
        rib_phase_mm=float(rng.uniform(0.0, 30.0)),
    )


# -- rendering ------------------------------------------------------------------------------------
def _ellipse(x, y, ax, ay, cx=0.0, cy=0.0):
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def _base_slice(a: Anatomy, x, y) -> np.ndarray:
    """One axial slice of the torso without lungs, ribs, diaphragm: air, fat, muscle, mediastinum."""
    ax, ay = a.body_axes
    tx, ty = a.cavity_axes
    hu = np.full(np.broadcast_shapes(x.shape, y.shape), -1000.0, np.float32)
    hu[_ellipse(x, y, ax, ay)] = -100.0  # subcutaneous fat
    hu[_ellipse(x, y, ax - a.fat_mm, ay - a.fat_mm)] = 45.0  # chest wall muscle
    hu[_ellipse(x, y, tx, ty)] = 35.0  # mediastinal soft tissue
    hu[_ellipse(x, y, 0.28 * tx, 0.35 * ty, 0.0, -0.55 * ty)] = -90.0  # anterior mediastinal fat
    hu[_ellipse(x, y, 0.14 * ty, 0.14 * ty, 0.2 * tx, 0.55 * ty)] = 40.0  # descending aorta
    hu[_ellipse(x, y, 6.0 * a.scale, 6.0 * a.scale, 0.05 * tx, 0.6 * ty)] = 40.0  # oesophagus
    return hu


def _spine_slice(a: Anatomy, x, y, hu2d: np.ndarray) -> None:
    tx, ty = a.cavity_axes
    r = 0.22 * ty
    cy = 0.8 * ty
    canal_y = cy + r + 9.0 * a.scale
    hu2d[_ellipse(x, y, r + 2.0, r + 2.0, 0.0, cy)] = 700.0  # cortical shell
    hu2d[_ellipse(x, y, r, r, 0.0, cy)] = 300.0  # cancellous body
    hu2d[_ellipse(x, y, 13.0 * a.scale, 13.0 * a.scale, 0.0, canal_y)] = 550.0  # neural arch
    hu2d[_ellipse(x, y, 7.0 * a.scale, 7.0 * a.scale, 0.0, canal_y)] = 20.0  # canal


def _rib_band(a: Anatomy, x, y):
    """In-plane ribs band (chest wall), sternum, and how much lower each rib point sits (mm)."""
    tx, ty = a.cavity_axes
    s = a.scale
    band = ~_ellipse(x, y, tx + 2 * s, ty + 2 * s) & _ellipse(x, y, tx + 12 * s, ty + 12 * s)
    band &= ~((y < -0.45 * ty) & (np.abs(x) < 0.35 * tx))  # costal cartilage gap by the sternum
    sternum = (np.abs(x) < 14 * s) & (y > -(ty + 14 * s)) & (y < -(ty + 1 * s))
    slope = (35.0 * s * (1.0 - (y / ty + 1.0) / 2.0)) * np.ones_like(x)  # anterior ends lower
    return band, sternum, slope.astype(np.float32)


@dataclass(frozen=True)
class _SlicePlan:
    """Everything in-plane that rendering needs, computed once and reused for every slice.

    Shapes that change with z are kept as flat pixel indices plus per-pixel values, so each
    slice only touches the pixels that can change.
    """

    base: np.ndarray
    band: tuple[np.ndarray, np.ndarray]  # rib band pixels, their anterior drop (mm)
    sternum: np.ndarray
    disc: np.ndarray
    abdomen: tuple  # per side: (pixels, dome height there, HU)
    heart: tuple[np.ndarray, np.ndarray]  # pixels, in-plane ellipsoid term
    lungs: tuple  # per side: (pixels, q, dome height there)
    gravity: np.ndarray
    fields: tuple


def _pixels(mask: np.ndarray, *values) -> tuple:
    idx = np.flatnonzero(mask)
    return (idx, *(np.broadcast_to(v, mask.shape).ravel()[idx].astype(np.float32) for v in values))


def _plan(a: Anatomy, grid: Grid, rng: np.random.Generator) -> _SlicePlan:
    _, y, x = grid.zyx_mm
    y, x = y[0], x[0]  # [ny,1], [1,nx]
    tx, ty = a.cavity_axes
    base = _base_slice(a, x, y)
    _spine_slice(a, x, y, base)
    band, sternum, slope = _rib_band(a, x, y)
    r = 0.22 * ty + 2.0
    cavity = _ellipse(x, y, tx, ty) & ~_ellipse(x, y, r + 4, r + 4, 0.0, 0.8 * ty)
    abdomen = tuple((*_pixels(cavity & sel, a.dome_height(x, y, side)), v)
                    for side, sel, v in ((RIGHT, x < 0, 58.0), (LEFT, x >= 0, 42.0)))
    (q_r, dome_r, static_r), (q_l, dome_l, static_l) = a.lung_planes(x, y)[0]
    heart2d = a.lung_planes(x, y)[1]
    return _SlicePlan(
        base=base, band=_pixels(band, slope), sternum=np.flatnonzero(sternum),
        disc=np.flatnonzero(_ellipse(x, y, r, r, 0.0, 0.8 * ty)), abdomen=abdomen,
        heart=_pixels(heart2d <= 1.0, heart2d),
        lungs=(_pixels(static_r, q_r, dome_r), _pixels(static_l, q_l, dome_l)),
        gravity=_gravity(a, y, x).ravel(), fields=tuple(f.ravel() for f in _texture_fields(grid, rng)),
    )


def _slice_lungs(a: Anatomy, plan: _SlicePlan, z: float, out: np.ndarray) -> None:
    """Lung labels of one slice, written into ``out`` (flat, zeroed)."""
    if a.t(z) > 1.0:
        return
    taper = a._apex_taper_sq(z)
    for label, (idx, q, dome) in zip((RIGHT, LEFT), plan.lungs):
        out[idx[(q <= taper) & (z > dome)]] = label
    hz = ((z - (a.z_base_mm + 0.22 * a.lung_length_mm)) / (0.25 * a.lung_length_mm)) ** 2
    if hz <= 1.0:
        idx, h2 = plan.heart
        out[idx[h2 + hz <= 1.0]] = 0


def _render_slice(a: Anatomy, plan: _SlicePlan, z: float, lungs: np.ndarray, tex_w) -> np.ndarray:
    """One axial slice (flat) of the chest; ``lungs`` is that slice's flat lung label map."""
    hu = plan.base.ravel().copy()
    t = a.t(z)
    if (z - a.rib_phase_mm) % a.rib_period_mm < 5.0 * a.scale:
        hu[plan.disc] = 80.0
    if -0.1 < t < 1.05:
        idx, drop = plan.band
        hu[idx[((z + drop - a.rib_phase_mm) % a.rib_period_mm) < 9.0 * a.scale]] = a.rib_hu
    if 0.3 < t < 1.0:
        hu[plan.sternum] = 400.0
    hz = ((z - (a.z_base_mm + 0.22 * a.lung_length_mm)) / (0.25 * a.lung_length_mm)) ** 2
    if hz <= 1.0:
        idx, h2 = plan.heart
        hu[idx[h2 + hz <= 1.0]] = 40.0
    for idx, dome, value in plan.abdomen:
        hu[idx[z < dome]] = value
    idx = np.flatnonzero(lungs)
    hu[idx] = plan.gravity[idx] + 12.0 * (tex_w[0] * plan.fields[0][idx] + tex_w[1] * plan.fields[1][idx])
    return hu


def _gravity(a: Anatomy, y, x) -> np.ndarray:
    """Lung base HU with the dependent (posterior) lung denser."""
    ty = a.cavity_axes[1]
    return ((a.lung_hu + 30.0 * np.clip(y / ty, -1, 1)) * np.ones_like(x)).astype(np.float32)


def _texture_fields(grid: Grid, rng: np.random.Generator) -> tuple:
    ny, nx = grid.shape_zyx[1:]
    sy, sx = grid.spacing_mm[1], grid.spacing_mm[0]
    fields = [ndimage.gaussian_filter(rng.normal(size=(ny, nx)), (15.0 / sy, 15.0 / sx)) for _ in range(2)]
    return tuple((f / max(float(f.std()), 1e-6)).astype(np.float32) for f in fields)


def render_anatomy(a: Anatomy, grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """HU volume of the chest (no vessels, airways, nodules, noise) and the lung label map.

    Drawn slice by slice: every in-plane shape is computed once, so a 512² × 300 volume takes
    about a second.
    """
    plan = _plan(a, grid, rng)
    nz = grid.shape_zyx[0]
    hu = np.empty((nz, plan.base.size), np.float32)
    lungs = np.zeros((nz, plan.base.size), np.uint8)
    phase = rng.uniform(0.0, 2 * np.pi)
    for k, z in enumerate(grid.axis_mm(0).astype(float)):
        _slice_lungs(a, plan, z, lungs[k])
        w = (np.cos(z / 40.0 + phase), np.sin(z / 40.0 + phase))
        hu[k] = _render_slice(a, plan, z, lungs[k], w)
    return hu.reshape(grid.shape_zyx), lungs.reshape(grid.shape_zyx)
